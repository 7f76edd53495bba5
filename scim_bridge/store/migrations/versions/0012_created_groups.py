"""The id of each GitLab group the bridge created, so it never fills someone else's at that path.

``group_targets.created_by_bridge`` says a path is the bridge's; if that group is deleted by hand
and someone makes another at the same path, the path alone would lead the bridge to add members
to it. The id recorded at creation (or, for groups made before this revision, when the bridge
next finds its group) tells them apart.

Written out, not imported: a migration must do the same thing forever.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "created_groups",
        sa.Column("gitlab_group", sa.Text(), primary_key=True),
        sa.Column("gitlab_group_id", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("created_groups")
