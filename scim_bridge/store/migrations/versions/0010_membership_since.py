"""When the bridge set each managed membership's level: the access review's "since" (issue 14).

The report read it from the audit trail before, scanning every ``reconcile.memberships`` event
of each group and holding a map of the group's members; a column read with each chunk of the
report keeps its memory flat. Memberships set before this revision have none (the report then
gives GitLab's own date for the membership).

Written out, not imported: a migration must do the same thing forever.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("managed_memberships") as table:
        table.add_column(sa.Column("since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("managed_memberships") as table:
        table.drop_column("since")
