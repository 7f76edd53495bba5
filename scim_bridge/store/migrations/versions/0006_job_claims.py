"""Coalescing runs: ``jobs.claimed_generation``, the generation the latest run of a job claimed.

A run reads the store after its claim, so it covers every write up to that generation; a request
whose write it covers waits for it instead of running the same reconcile again.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("claimed_generation", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("claimed_generation")
