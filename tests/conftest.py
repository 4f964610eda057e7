"""Fixtures for tests that run on every database the store supports.

A test that takes ``database_url`` runs once per database (ids ``sqlite`` and ``postgresql``),
each time on a fresh, empty database. The PostgreSQL server starts once per session, and only
when a test asks for it.

CRYOWEAVE_TEST_DATABASES=sqlite runs only the SQLite cases: it is for developers without
PostgreSQL. Otherwise a missing or broken PostgreSQL fails the ``postgresql`` cases with the
reason; they are never skipped.

A test that takes ``slurm_cluster`` gets the session's one-node SLURM cluster, started at first
use; ``SLURM_CONF`` points to it for the session, so ``sbatch`` and friends run by the code under
test find it. CRYOWEAVE_TEST_SLURM=0 skips those tests; otherwise a missing or broken SLURM fails
them with the reason.

The browser tests' fixtures (``live_server``, ``browser_page``) are in ``support/browser.py``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import selected_databases
from support.postgres import PostgresServer
from support.slurm import STEERING_PREFIXES, SlurmCluster

pytest_plugins = ["support.browser"]

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


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """The session's one-node SLURM cluster, started at first use; ``SLURM_CONF`` points to it."""
    if os.environ.get("CRYOWEAVE_TEST_SLURM", "1") == "0":
        pytest.skip("CRYOWEAVE_TEST_SLURM=0 excludes the SLURM tests")
    cluster = SlurmCluster()
    try:
        cluster.start()
    except Exception as exc:
        error = exc
    else:
        error = None
    if error is not None:  # failed outside the except block, so the report shows the reason once
        pytest.fail(
            f"cannot start the SLURM test cluster: {error}\n(CRYOWEAVE_TEST_SLURM=0 skips the SLURM tests)",
            pytrace=False,
        )
    # The developer's SLURM variables (SBATCH_PARTITION, those of an enclosing SLURM job...) must
    # not steer the commands run against the test cluster; all come back at the end.
    saved = {k: v for k, v in os.environ.items() if k.startswith(STEERING_PREFIXES)}
    try:
        for key in saved:
            del os.environ[key]
        os.environ["SLURM_CONF"] = str(cluster.conf)
        yield cluster
    finally:
        os.environ.pop("SLURM_CONF", None)
        os.environ.update(saved)
        cluster.stop()


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
