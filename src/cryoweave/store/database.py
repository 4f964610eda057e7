"""Connecting to the instance database, migrating it, and the transactions every change runs in.

Writers never lose each other's updates: every change to a project runs in one transaction
that first locks the project. On PostgreSQL that is a row lock (``SELECT ... FOR UPDATE``); on
SQLite a write transaction (``BEGIN IMMEDIATE``) holds the database's single write lock, and
waiting writers queue behind it (busy timeout) instead of failing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError

from cryoweave.errors import StoreError
from cryoweave.store.schema import instance_meta

MIGRATIONS = Path(__file__).parent / "migrations"
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
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (creating it in an empty database)."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    try:
        with engine.connect() as conn:
            if MigrationContext.configure(conn.execution_options(cryoweave_read=True)).get_current_revision() == head:
                return
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except OperationalError as err:
        raise StoreError(f"cannot open the database: {err.orig}") from None


def instance_id(conn: Connection) -> str:
    """This instance's identity, created with the database: it names the holder in project locks."""
    value = conn.execute(select(instance_meta.c.value).where(instance_meta.c.key == "instance_id")).scalar()
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
        raise StoreError(f"database error: {err.orig}") from None
    except SQLAlchemyError as err:
        raise StoreError(f"database error: {err}") from None
