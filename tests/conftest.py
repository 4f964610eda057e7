"""Fixtures for tests that run on every database the store supports.

A test that takes ``database_url`` runs once per database (ids ``sqlite`` and ``postgresql``),
each time on a fresh, empty database. The PostgreSQL server starts once per session, and only
when a test asks for it.

CRYOWEAVE_TEST_DATABASES=sqlite runs only the SQLite cases: it is for developers without
PostgreSQL. Otherwise a missing or broken PostgreSQL fails the ``postgresql`` cases with the
reason; they are never skipped.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import selected_databases
from support.postgres import PostgresServer

DATABASES = selected_databases()
_database_numbers = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server, started at first use."""
    if "postgresql" not in DATABASES:
        pytest.skip("CRYOWEAVE_TEST_DATABASES excludes postgresql")
    server = PostgresServer()
    try:
        server.start()
    except Exception as exc:
        error = exc
    else:
        error = None
    if error is not None:  # failed outside the except block, so the report shows the reason once
        pytest.fail(
            f"cannot start the PostgreSQL test server: {error}\n"
            "(CRYOWEAVE_TEST_DATABASES=sqlite runs only the SQLite cases)",
            pytrace=False,
        )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=DATABASES, ids=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty database, once per database kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cryoweave.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"test_{next(_database_numbers)}"
    yield server.create_database(name)
    server.drop_database(name)
