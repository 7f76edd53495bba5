"""Paced calls: GitLab's rolling-window limits counted in the database, shared by every instance.

The member deletions of a GitLab group (60 a minute) were counted per process, so gunicorn's
workers and the background worker together could exceed GitLab's limit and meet its 429s.

Written out, not imported: a migration must do the same thing forever.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "paced_calls",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_paced_calls_key_taken_at", "paced_calls", ["key", "taken_at"])


def downgrade() -> None:
    op.drop_index("ix_paced_calls_key_taken_at", table_name="paced_calls")
    op.drop_table("paced_calls")
