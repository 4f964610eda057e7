"""Job ancestry: a table of (child, parent) job numbers per project, filled from the job records.

Revision ID: 0002
Revises: 0001
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "job_parents",
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("child", sa.Integer, primary_key=True),
        sa.Column("parent", sa.Integer, primary_key=True),
    )
    op.create_index("ix_job_parents_parent", "job_parents", ["project_id", "parent"])
    rows = op.get_bind().execute(sa.text("SELECT project_id, number, record FROM jobs")).all()
    edges = {(project_id, number, int(c["job"][1:]))
             for project_id, number, record in rows
             for conns in json.loads(record).get("inputs", {}).values() for c in conns}
    if edges:
        op.bulk_insert(table, [{"project_id": p, "child": c, "parent": n} for p, c, n in sorted(edges)])


def downgrade() -> None:
    op.drop_table("job_parents")
