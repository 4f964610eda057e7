"""The settings of an instance, read from the environment in one place.

- ``CRYOWEAVE_HOME``: where the instance keeps its files (default ``~/.cryoweave``): the SQLite
  database when no other is named, and logs.
- ``CRYOWEAVE_DATABASE_URL``: a SQLAlchemy URL of the database, e.g.
  ``postgresql+psycopg://cryoweave@db.facility.org/cryoweave`` for a server shared by many
  users. Default: ``sqlite:///$CRYOWEAVE_HOME/cryoweave.db``.

>>> Settings.from_env({"CRYOWEAVE_HOME": "/tmp/cw"}).database_url
'sqlite:////tmp/cw/cryoweave.db'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, home: str | os.PathLike | None = None,
                 database_url: str | None = None) -> Settings:
        """Settings from explicit values, else the environment, else the defaults."""
        env = os.environ if env is None else env
        root = Path(home or env.get("CRYOWEAVE_HOME") or Path.home() / ".cryoweave").expanduser().absolute()
        url = database_url or env.get("CRYOWEAVE_DATABASE_URL") or f"sqlite:///{root / 'cryoweave.db'}"
        return cls(home=root, database_url=url)

    @property
    def database_display(self) -> str:
        """The database URL with any password hidden."""
        from sqlalchemy.engine import make_url

        try:
            return make_url(self.database_url).render_as_string(hide_password=True)
        except Exception:
            return "<unparsable database URL>"
