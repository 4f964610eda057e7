"""A throwaway PostgreSQL server for the tests, started from the installed binaries.

Each :class:`PostgresServer` owns a fresh temporary directory holding its data directory, log
and Unix socket; it listens on a free TCP port on 127.0.0.1, trusts every local connection
and is tuned for speed rather than durability (``fsync=off``). ``stop()`` removes everything.

PostgreSQL refuses to run as root, so when the tests run as root (CI) the binaries run as the
``postgres`` user that the Debian package creates, and the directory is handed to that user.
``scripts/test-services.sh`` installs the binaries.

Example
-------
>>> with PostgresServer() as server:  # doctest: +SKIP
...     url = server.create_database("demo")
...     engine = sqlalchemy.create_engine(url)
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

#: Where Debian and Ubuntu put each major version's server binaries.
PG_LIB_ROOT = Path("/usr/lib/postgresql")

#: The system user that runs the server when the tests run as root.
SERVER_USER = "postgres"

#: Settings for a disposable server: nothing needs to survive a crash.
FAST_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}

START_TIMEOUT_S = 30
LOG_TAIL_LINES = 20
MAX_IDENTIFIER_BYTES = 63  # PostgreSQL silently truncates longer names


class PostgresError(RuntimeError):
    """PostgreSQL is missing, or the test server could not be started or used."""


def find_pg_bin() -> Path:
    """Return the directory holding ``initdb`` and ``pg_ctl``.

    The newest version under ``/usr/lib/postgresql/*/bin`` wins; otherwise ``initdb`` on PATH.

    Example
    -------
    >>> find_pg_bin()  # doctest: +SKIP
    PosixPath('/usr/lib/postgresql/15/bin')
    """
    versions = [d for d in PG_LIB_ROOT.glob("*/bin") if (d / "initdb").is_file()]
    if versions:
        return max(versions, key=lambda d: _version_key(d.parent.name))
    on_path = shutil.which("initdb")
    if on_path and (Path(on_path).parent / "pg_ctl").exists():
        return Path(on_path).parent
    raise PostgresError(
        f"PostgreSQL server binaries (initdb, pg_ctl) not found in {PG_LIB_ROOT}/*/bin or on PATH; "
        "run `bash scripts/test-services.sh` (installs them as root) or install PostgreSQL"
    )


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name))


def _free_port() -> int:
    # Another process may take the port before the server binds it; start() retries then.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _conf_value(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class PostgresServer:
    """One PostgreSQL server in a temporary directory; a context manager.

    Parameters
    ----------
    bin_dir
        Directory holding ``initdb`` and ``pg_ctl``; :func:`find_pg_bin` when omitted.
    settings
        Extra server settings (``postgresql.conf`` names), applied after :data:`FAST_SETTINGS`.

    Example
    -------
    >>> server = PostgresServer().start()  # doctest: +SKIP
    >>> server.url()  # doctest: +SKIP
    'postgresql+psycopg://postgres@127.0.0.1:41235/postgres'
    >>> server.stop()  # doctest: +SKIP
    """

    def __init__(self, bin_dir: Path | None = None, settings: Mapping[str, str] | None = None) -> None:
        self.bin_dir = bin_dir
        self.settings = {**FAST_SETTINGS, **(settings or {})}
        self.root: Path | None = None
        self.port: int | None = None
        self._as_server_user = os.geteuid() == 0

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> PostgresServer:
        """Create the cluster and start the server; wait until it accepts connections."""
        if self.root is not None:
            raise PostgresError(f"server already started in {self.root}")
        bin_dir = self.bin_dir = self.bin_dir or find_pg_bin()
        self.root = Path(tempfile.mkdtemp(prefix="cryoweave-pg-"))
        atexit.register(self.stop)  # a crashed test session must not leave the server running
        try:
            if self._as_server_user:
                self._hand_over(self.root)
            self._run(
                bin_dir / "initdb", "-D", self.data_dir, "-A", "trust", "-U", "postgres",
                "-E", "UTF8", "--locale=C", "--no-sync",
            )  # fmt: skip
            self._write_settings()
            self._start_server(bin_dir)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its directory; safe to call twice."""
        if self.root is None:
            return
        atexit.unregister(self.stop)
        try:
            if (self.data_dir / "postmaster.pid").exists():
                pg_ctl = (self.bin_dir or find_pg_bin()) / "pg_ctl"
                stopped = self._run(pg_ctl, "-D", self.data_dir, "-m", "fast", "-w", "stop", check=False)
                if stopped.returncode != 0:
                    self._run(pg_ctl, "-D", self.data_dir, "-m", "immediate", "-w", "stop", check=False)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
            self.port = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- use --------------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self._require_root() / "data"

    @property
    def log_file(self) -> Path:
        return self._require_root() / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of ``database`` on this server (psycopg 3 driver)."""
        if self.port is None:
            raise PostgresError("server not started")
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database called ``name`` and return its SQLAlchemy URL."""
        self._admin_sql("CREATE DATABASE {}", name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, closing any connections still open to it."""
        self._admin_sql("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)

    # -- internals --------------------------------------------------------------------------

    def _require_root(self) -> Path:
        if self.root is None:
            raise PostgresError("server not started")
        return self.root

    def _hand_over(self, path: Path) -> None:
        try:
            user = pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise PostgresError(
                f"running as root, PostgreSQL needs a {SERVER_USER!r} user to run as, and there is none"
            ) from None
        os.chown(path, user.pw_uid, user.pw_gid)

    def _run(self, program: Path, *args: object, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(program), *map(str, args)]
        if self._as_server_user:
            argv = ["runuser", "-u", SERVER_USER, "--", *argv]
        # PG* variables of the developer's shell (PGDATA, PGPORT...) must not steer our server.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        result = subprocess.run(
            argv, cwd=self.root, env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S + 30
        )
        if check and result.returncode != 0:
            raise PostgresError(
                f"{' '.join(argv)} failed with exit status {result.returncode}:\n"
                f"{result.stdout}{result.stderr}{self._log_tail()}"
            )
        return result

    def _write_settings(self) -> None:
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.root),
            **self.settings,
        }
        # Later lines override the defaults above them; the file stays the server user's.
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n# cryoweave test server\n")
            conf.writelines(f"{key} = {_conf_value(value)}\n" for key, value in settings.items())

    def _start_server(self, bin_dir: Path) -> None:
        for _attempt in range(3):
            self.port = _free_port()
            started = self._run(
                bin_dir / "pg_ctl", "-D", self.data_dir, "-l", self.log_file, "-w",
                "-t", START_TIMEOUT_S, "-o", f"-p {self.port}", "start",
                check=False,
            )  # fmt: skip
            if started.returncode == 0:
                return
            if "already in use" not in self._log_tail():
                break
        raise PostgresError(
            f"PostgreSQL did not start (pg_ctl exit status {started.returncode}):\n"
            f"{started.stdout}{started.stderr}{self._log_tail()}"
        )

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except (OSError, PostgresError):
            return ""
        return f"--- last lines of {self.log_file} ---\n" + "\n".join(lines[-LOG_TAIL_LINES:])

    def _admin_sql(self, statement: str, database: str) -> None:
        # Imported here so that the SQLite-only test runs need no PostgreSQL driver.
        import psycopg
        from psycopg import sql

        if len(database.encode()) > MAX_IDENTIFIER_BYTES:
            raise ValueError(f"database name longer than {MAX_IDENTIFIER_BYTES} bytes: {database!r}")
        if self.port is None:
            raise PostgresError("server not started")
        # CREATE/DROP DATABASE cannot run inside a transaction block, hence autocommit.
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql.SQL(statement).format(sql.Identifier(database)))
