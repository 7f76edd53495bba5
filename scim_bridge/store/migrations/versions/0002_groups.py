"""Groups: SCIM groups and their members, and what the bridge maps and manages in GitLab.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JsonDocument = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "groups",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("display_name_key", sa.Text, nullable=False, unique=True),
        sa.Column("external_id", sa.Text, nullable=True, index=True),
        sa.Column("data", JsonDocument, nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_modified", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "group_members",
        sa.Column(
            "group_id",
            sa.String(36),
            sa.ForeignKey("groups.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("member_id", sa.String(64), primary_key=True),
        sa.Column("display", sa.Text, nullable=True),
    )
    op.create_index("ix_group_members_member_id", "group_members", ["member_id"])
    op.create_table(
        "group_member_changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("group_id", sa.String(36), nullable=False, index=True),
        sa.Column("user_id", sa.String(64), nullable=False),
    )
    op.create_table(
        "group_targets",
        sa.Column("group_id", sa.String(36), primary_key=True),
        sa.Column("gitlab_group", sa.Text, primary_key=True),
        sa.Column("access_level", sa.Integer, nullable=False),
        sa.Column("created_by_bridge", sa.Boolean, nullable=False),
    )
    op.create_table(
        "membership_dirty",
        sa.Column("gitlab_group", sa.Text, primary_key=True),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "managed_memberships",
        sa.Column("gitlab_group", sa.Text, primary_key=True),
        sa.Column("gitlab_user_id", sa.Integer, primary_key=True),
        sa.Column("access_level", sa.Integer, nullable=False),
        sa.Column("prior_level", sa.Integer, nullable=True),
    )
    # Jobs now also name GitLab groups by full path.
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("key", type_=sa.String(600), existing_nullable=False)
        batch.alter_column("entity_id", type_=sa.String(512), existing_nullable=False)
    op.create_table(
        "bridge_state",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("key", type_=sa.String(128), existing_nullable=False)
        batch.alter_column("entity_id", type_=sa.String(64), existing_nullable=False)
    for table in (
        "bridge_state",
        "managed_memberships",
        "membership_dirty",
        "group_targets",
        "group_member_changes",
        "group_members",
        "groups",
    ):
        op.drop_table(table)
