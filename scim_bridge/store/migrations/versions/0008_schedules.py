"""Schedules: work done once per interval by one instance of several (drift repair, issue 14).

One row per schedule: when its next turn is due, and who took the last. An instance takes a turn
by moving ``due_at`` forward where it has come; the database lets one such update through.

Written out, not imported: a migration must do the same thing forever.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("taken_by", sa.Text, nullable=True),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("schedules")
