"""Helpers for the tests that start real services (PostgreSQL); test files import them explicitly."""

from __future__ import annotations

import os

KNOWN_DATABASES = ("sqlite", "postgresql")


def selected_databases() -> list[str]:
    """The databases the tests run on: CRYOWEAVE_TEST_DATABASES (comma-separated), default all.

    ``CRYOWEAVE_TEST_DATABASES=sqlite`` is for developers without PostgreSQL; by default the
    PostgreSQL cases run, and fail when PostgreSQL is missing.

    Example
    -------
    >>> selected_databases()  # doctest: +SKIP
    ['sqlite', 'postgresql']
    """
    chosen = os.environ.get("CRYOWEAVE_TEST_DATABASES", ",".join(KNOWN_DATABASES))
    names = [name.strip() for name in chosen.split(",") if name.strip()]
    if unknown := sorted(set(names) - set(KNOWN_DATABASES)):
        raise ValueError(f"CRYOWEAVE_TEST_DATABASES: unknown {unknown}, known {list(KNOWN_DATABASES)}")
    return names
