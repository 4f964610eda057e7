"""Alembic migrations of the instance database (run by :func:`cryoweave.store.database.upgrade`)."""
