"""The instance database: the live index and queue of every attached project.

Whole job records are kept as JSON text next to the columns that lists filter and sort by; the
project directory holds the same records as files, and is the source of truth on attach.
Changes to this schema go through an Alembic migration in ``migrations/versions``.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

instance_meta = Table(
    "instance_meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

projects = Table(
    "projects", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("number", Integer, nullable=False, unique=True),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("directory", Text, nullable=False, unique=True),
    Column("archived", Boolean, nullable=False, default=False),
    Column("keep_final_only", Boolean, nullable=False, default=False),
    Column("next_workspace", Integer, nullable=False, default=1),
    Column("next_job", Integer, nullable=False, default=1),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

workspaces = Table(
    "workspaces", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("project_id", "number"),
)

jobs = Table(
    "jobs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("type", String(128), nullable=False),
    Column("title", Text, nullable=False, default=""),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("record", Text, nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("project_id", "number"),
    Index("ix_jobs_project_status", "project_id", "status"),
)

lanes = Table(
    "lanes", metadata,
    Column("name", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("config", Text, nullable=False),
)
"""Where queued jobs run: each lane's configuration as JSON (see :mod:`cryoweave.model.lanes`)."""

job_workspaces = Table(
    "job_workspaces", metadata,
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("workspace_id", Integer, ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_job_workspaces_workspace", "workspace_id"),
)

job_parents = Table(
    "job_parents", metadata,
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("child", Integer, primary_key=True),
    Column("parent", Integer, primary_key=True),
    Index("ix_job_parents_parent", "project_id", "parent"),
)
"""The jobs each job takes inputs from (by number), so ancestry is one recursive query."""

events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("record", Text, nullable=False),
    UniqueConstraint("job_id", "seq"),
)

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
"""The people who log in to ``cryoweave serve`` (an instance's accounts, not a project's records)."""

sessions = Table(
    "sessions", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
"""Logged-in browsers: the SHA-256 of each session cookie (the cookie itself is never stored)."""

project_members = Table(
    "project_members", metadata,
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("access", String(16), nullable=False),
)
"""Who may read or change a project on this instance: its owner and members."""
