"""Connecting to the instance database, migrating it, and the transactions every change runs in.

Writers never lose each other's updates: every change to a project runs in one transaction
that first locks the project. On PostgreSQL that is a row lock (``SELECT ... FOR UPDATE``); on
SQLite a write transaction (``BEGIN IMMEDIATE``) holds the database's single write lock, and
waiting writers queue behind it (busy timeout) instead of failing.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, ProgrammingError, SQLAlchemyError

from cryoweave.errors import StoreError
from cryoweave.store.schema import instance_meta

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD = "0005"
"""The newest migration (a test checks it against ``migrations/versions``): when the database is
already there, opening it costs one query instead of loading Alembic."""
BUSY_TIMEOUT_MS = 60_000


def connect(url: str) -> Engine:
    """An engine for a SQLite or PostgreSQL URL, set up for safe concurrent writers."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"{url!r} is not a database URL; write e.g. sqlite:////path/cryoweave.db or "
                         "postgresql+psycopg://user@host/dbname") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "isolation_level": None})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise StoreError(f"database {parsed.get_backend_name()!r} is not supported; use SQLite or PostgreSQL")
    try:
        return create_engine(url, pool_pre_ping=True)
    except (NoSuchModuleError, ModuleNotFoundError) as err:
        raise StoreError(f"cannot use {parsed.render_as_string(hide_password=True)}: {err}") from None


def _sqlite_begin(conn: Connection) -> None:
    # Writers take SQLite's write lock at once, so their reads see the state they will change;
    # readers (WAL) run beside them without it.
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("cryoweave_read") else "BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    _use_wal(cursor)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _use_wal(cursor) -> None:
    """Put the database in WAL mode (readers do not block the writer); it stays so in the file.

    Switching needs the database to itself, and SQLite reports "locked" at once, without its busy
    timeout, when another process is opening the same new database: so wait here as it would.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at (None for an empty database)."""
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(cryoweave_read=True)
            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    except (OperationalError, ProgrammingError):
        return None


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (creating it in an empty database)."""
    if current_revision(engine) == HEAD:
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as conn:
            first_use_lock(conn)
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except OperationalError as err:
        raise StoreError(f"cannot open the database: {one_line(err.orig)}") from None


def first_use_lock(conn: Connection) -> None:
    """Serialise the setup of a new database between processes (SQLite's write lock already does)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7209514)")


def instance_id(engine: Engine) -> str:
    """This instance's identity, created with the database: it names the holder in project locks."""
    query = select(instance_meta.c.value).where(instance_meta.c.key == "instance_id")
    with transaction(engine, write=False) as conn:
        value = conn.execute(query).scalar()
    if value is None:
        with transaction(engine) as conn:
            first_use_lock(conn)
            value = conn.execute(query).scalar()
            if value is None:
                value = uuid.uuid4().hex
                conn.execute(instance_meta.insert().values(key="instance_id", value=value))
    return value


@contextmanager
def transaction(engine: Engine, *, write: bool = True) -> Iterator[Connection]:
    """One transaction, committed on success and rolled back on any error; ``write=False`` for reads."""
    try:
        with engine.connect() as conn:
            if not write:
                conn = conn.execution_options(cryoweave_read=True)
            with conn.begin():
                yield conn
    except OperationalError as err:
        raise StoreError(f"database error: {one_line(err.orig)}") from None
    except SQLAlchemyError as err:
        raise StoreError(f"database error: {one_line(err)}") from None


def one_line(error: object) -> str:
    """A driver's message on one line (psycopg's span several)."""
    return "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
