"""Claims on GitLab accounts being adopted, so two SCIM users' runs never both write to one.

Both runs used to find an account adoptable while neither link was saved, and both wrote to it
(name, identity, email, state) before the loser's link was refused. A run now claims the account
before its first write (``store.links.LinkStore.claim_account``).

Written out, not imported: a migration must do the same thing forever.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_claims",
        sa.Column("gitlab_user_id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.String(36), nullable=False, index=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("account_claims")
