"""A project's disk policy: keep only the final version of iterative jobs' outputs.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (SQLite has it): a batch "move and copy" of the projects table would drop the old
    # table, and with foreign keys on, its jobs with it.
    op.add_column("projects", sa.Column("keep_final_only", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("keep_final_only")
