"""The GitLab token kept in the database, encrypted, so that a rotation reaches every instance.

One row (``id`` 1): the ciphertexts of the token in use and of the ``SCIM_BRIDGE_GITLAB_TOKEN`` it
came from, a ``version`` each replacement moves, the new token's expiry, who changed it, and
which instance is rotating it now.

Written out, not imported: a migration must do the same thing forever.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gitlab_token",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("token", sa.Text, nullable=False),
        sa.Column("seed", sa.Text, nullable=False),
        sa.Column("expires_on", sa.Date, nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.Text, nullable=False),
        sa.Column("how", sa.String(16), nullable=False),
        sa.Column("rotating_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rotating_by", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("gitlab_token")
