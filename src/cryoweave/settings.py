"""The settings of an instance, read from the environment in one place.

- ``CRYOWEAVE_HOME``: where the instance keeps its files (default ``~/.cryoweave``): the SQLite
  database when no other is named, and logs.
- ``CRYOWEAVE_DATABASE_URL``: a SQLAlchemy URL of the database, e.g.
  ``postgresql+psycopg://cryoweave@db.facility.org/cryoweave`` for a server shared by many
  users. Default: ``sqlite:///$CRYOWEAVE_HOME/cryoweave.db``.
- ``CRYOWEAVE_JOB_PACKAGES``: the installed packages whose job types this instance loads, by
  distribution name, comma-separated (``example-lab-jobs,cryoweave-topaz``). Default: every
  package that declares ``cryoweave.jobs`` entry points.
- ``CRYOWEAVE_HEARTBEAT_S`` (default 10) and ``CRYOWEAVE_HEARTBEAT_TIMEOUT_S`` (default 60): how
  often a worker reports that it is alive, and after how long without a report the scheduler
  marks its job failed (the worker was killed, ran out of memory, or its node was lost).
- ``CRYOWEAVE_CLUSTER_POLL_S`` (default 5): how often the scheduler asks a cluster for the state
  of each job it submitted there.

>>> Settings.from_env({"CRYOWEAVE_HOME": "/tmp/cw"}).database_url
'sqlite:////tmp/cw/cryoweave.db'
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryoweave.errors import ParamError


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    job_packages: frozenset[str] | None = None
    """Normalised distribution names (see :func:`package_name`), or ``None`` for all."""
    heartbeat_s: float = 10.0
    heartbeat_timeout_s: float = 60.0
    cluster_poll_s: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, home: str | os.PathLike | None = None,
                 database_url: str | None = None) -> Settings:
        """Settings from explicit values, else the environment, else the defaults."""
        env = os.environ if env is None else env
        root = Path(home or env.get("CRYOWEAVE_HOME") or Path.home() / ".cryoweave").expanduser().absolute()
        url = database_url or env.get("CRYOWEAVE_DATABASE_URL") or f"sqlite:///{root / 'cryoweave.db'}"
        listed = [package_name(p) for p in env.get("CRYOWEAVE_JOB_PACKAGES", "").split(",") if p.strip()]
        return cls(home=root, database_url=url, job_packages=frozenset(listed) if listed else None,
                   heartbeat_s=_seconds(env, "CRYOWEAVE_HEARTBEAT_S", 10.0),
                   heartbeat_timeout_s=_seconds(env, "CRYOWEAVE_HEARTBEAT_TIMEOUT_S", 60.0),
                   cluster_poll_s=_seconds(env, "CRYOWEAVE_CLUSTER_POLL_S", 5.0))

    @property
    def database_display(self) -> str:
        """The database URL with any password hidden."""
        from sqlalchemy.engine import make_url

        try:
            return make_url(self.database_url).render_as_string(hide_password=True)
        except Exception:
            return "<unparsable database URL>"


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ParamError(f"{name}={text!r} must be a number of seconds above 0")
    return value


def package_name(name: str) -> str:
    """A distribution name as packaging compares them: ``Example_Lab.Jobs`` is ``example-lab-jobs``."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()
