"""The test databases really work: SQLite files and a real PostgreSQL server, through SQLAlchemy."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from support import selected_databases
from support.postgres import PostgresError, PostgresServer, find_pg_bin

# Tests of the server itself need PostgreSQL too, unless the developer opted out of it.
needs_postgres = pytest.mark.skipif(
    "postgresql" not in selected_databases(), reason="CRYOWEAVE_TEST_DATABASES excludes postgresql"
)


def _jobs_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "jobs",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("title", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("size", sa.Float),
    )


def _create_jobs(engine: sa.Engine, *rows: dict) -> sa.Table:
    metadata = sa.MetaData()
    jobs = _jobs_table(metadata)
    metadata.create_all(engine)
    if rows:
        with engine.begin() as conn:
            conn.execute(jobs.insert(), list(rows))
    return jobs


def _pg_connect(port: int) -> psycopg.Connection:
    return psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", connect_timeout=5)


@needs_postgres
def test_find_pg_bin_holds_the_server_tools():
    bin_dir = find_pg_bin()
    assert (bin_dir / "initdb").exists()
    assert (bin_dir / "pg_ctl").exists()


def test_fresh_database_round_trip(database_url: str, request: pytest.FixtureRequest):
    engine = sa.create_engine(database_url)
    try:
        assert engine.dialect.name == request.node.callspec.id
        assert sa.inspect(engine).get_table_names() == []  # fresh and empty
        jobs = _create_jobs(
            engine,
            {"id": 1, "title": "J1 import movies", "status": "completed", "size": 1.5},
            {"id": 2, "title": "J2 日本", "status": "queued", "size": None},
        )
        with engine.connect() as conn:
            rows = conn.execute(sa.select(jobs).order_by(jobs.c.id)).all()
        assert [tuple(row) for row in rows] == [
            (1, "J1 import movies", "completed", 1.5),
            (2, "J2 日本", "queued", None),
        ]
    finally:
        engine.dispose()


def test_databases_are_independent(postgres_server: PostgresServer):
    first_url = postgres_server.create_database("independent_first")
    second_url = postgres_server.create_database("independent_second")
    first, second = sa.create_engine(first_url), sa.create_engine(second_url)
    try:
        _create_jobs(first, {"id": 1, "title": "J1", "status": "queued"})
        assert first_url != second_url
        assert sa.inspect(first).get_table_names() == ["jobs"]
        assert sa.inspect(second).get_table_names() == []
    finally:
        first.dispose()
        second.dispose()
        postgres_server.drop_database("independent_first")
        postgres_server.drop_database("independent_second")


def test_select_for_update_blocks_a_second_connection_until_commit(postgres_server: PostgresServer):
    """The row locking the store relies on to hand each queued job to exactly one worker."""
    url = postgres_server.create_database("row_locks")
    engine = sa.create_engine(url)
    try:
        jobs = _create_jobs(engine, {"id": 1, "title": "J1", "status": "queued"})
        job_1 = sa.select(jobs).where(jobs.c.id == 1)
        with engine.connect() as holder, engine.connect() as waiter:
            assert holder.execute(job_1.with_for_update()).one().status == "queued"

            # Plain readers are not blocked; SKIP LOCKED passes the row over.
            assert waiter.execute(job_1).one().status == "queued"
            assert waiter.execute(job_1.with_for_update(skip_locked=True)).all() == []

            waiter.execute(sa.text("SET lock_timeout = '200ms'"))
            started = time.perf_counter()
            with pytest.raises(sa.exc.OperationalError) as error:
                waiter.execute(job_1.with_for_update())
            assert isinstance(error.value.orig, psycopg.errors.LockNotAvailable)
            assert time.perf_counter() - started >= 0.15  # it waited for the lock, then gave up
            waiter.rollback()

            holder.execute(jobs.update().where(jobs.c.id == 1).values(status="launched"))
            holder.commit()

            waiter.execute(sa.text("SET lock_timeout = '200ms'"))  # the rollback undid the SET
            assert waiter.execute(job_1.with_for_update()).one().status == "launched"
            waiter.commit()
    finally:
        engine.dispose()
        postgres_server.drop_database("row_locks")


@needs_postgres
def test_stop_removes_the_directory_and_the_server():
    with PostgresServer() as server:
        root, port = server.root, server.port
        assert root is not None and port is not None
        assert (root / "data" / "PG_VERSION").is_file()
        assert server.url() == f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        with _pg_connect(port) as conn:
            assert conn.execute("SHOW fsync").fetchone() == ("off",)
            assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)
    assert not root.exists()
    assert server.root is None
    with pytest.raises(psycopg.OperationalError):
        _pg_connect(port)
    server.stop()  # a second stop does nothing


@needs_postgres
def test_failed_start_reports_the_server_log_and_cleans_up(monkeypatch: pytest.MonkeyPatch):
    made: list[Path] = []
    mkdtemp = tempfile.mkdtemp

    def recording_mkdtemp(*args, **kwargs):
        made.append(Path(mkdtemp(*args, **kwargs)))
        return str(made[-1])

    monkeypatch.setattr(tempfile, "mkdtemp", recording_mkdtemp)
    server = PostgresServer(settings={"shared_buffers": "plenty"})
    with pytest.raises(PostgresError, match=r"(?s)did not start.*postgres\.log.*shared_buffers"):
        server.start()
    assert len(made) == 1
    assert not made[0].exists()
    assert server.root is None
