"""Members are Users: membership rows that name no user are deleted.

Older versions stored any ``value`` a client sent as a member: ids of nothing ("phantoms"), and ids
of groups (nested groups, which Entra does not provision and GitLab grants cannot follow). Such a
member was listed with a ``$ref`` that led to a 404 and a guessed ``type``. A member must now be an
existing User, so the rows whose ``member_id`` names no user go, and their groups get a new
version (their member list changed). No membership change is noted for them: those ids never had
GitLab accounts, so there is no grant to take away.

Written out in SQL, not imported: a migration must do the same thing forever.

Revision ID: 0005
Revises: 0004
"""

from datetime import UTC
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    connection = op.get_bind()
    users = sa.table("users", sa.column("id", sa.String))
    groups = sa.table(
        "groups",
        sa.column("id", sa.String),
        sa.column("version", sa.Integer),
        sa.column("last_modified", sa.DateTime(timezone=True)),
    )
    members = sa.table(
        "group_members", sa.column("group_id", sa.String), sa.column("member_id", sa.String)
    )
    no_user = ~sa.exists().where(users.c.id == members.c.member_id)
    changed = sa.select(members.c.group_id).where(no_user).distinct()
    connection.execute(
        sa.update(groups)
        .where(groups.c.id.in_(changed))
        .values(version=groups.c.version + 1, last_modified=datetime.now(UTC))
    )
    connection.execute(sa.delete(members).where(no_user))


def downgrade() -> None:
    """The deleted rows are not restored: they named no user."""
