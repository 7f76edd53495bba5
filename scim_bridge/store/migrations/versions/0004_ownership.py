"""Ownership: how each link was made, the accounts protected by GitLab user id, and who caused a job.

- ``user_links.origin`` is ``created``, ``adopted`` or ``operator`` (DESIGN.md, Ownership). Links the
  bridge "found" by identity become ``adopted``: the bridge cannot prove it created them, and an
  adopted account is blocked, never deleted. Links to admins or protected accounts become
  ``operator`` links when the worker next starts (it needs GitLab to know who they are).
- ``user_links.create_started_at``: written before the bridge asks GitLab for an account, so an
  account whose creation answer was lost is still known as the bridge's own.
- ``protected_accounts``: admins and ``[users] protected_usernames`` resolved to GitLab user ids.
- ``pending_links``: operator links made before Entra provisioned the user, by userName.
- ``jobs.actor``/``request_id``/``source``: the SCIM request that queued the work, for the audit
  events the worker writes.
- Stored users lose any ``password`` an earlier version kept under another spelling (upper case,
  URN-qualified, inside a schema object). Audit events that hold one cannot be rewritten without
  breaking the hash chain; the upgrade notes say so.

The scrub is written out here, not imported: a migration must do the same thing forever.

Revision ID: 0004
Revises: 0003
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user_links") as batch:
        batch.add_column(sa.Column("create_started_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE user_links SET origin = 'adopted' "
        "WHERE gitlab_user_id IS NOT NULL AND (origin IS NULL OR origin NOT IN ('created', 'adopted'))"
    )
    op.create_table(
        "protected_accounts",
        sa.Column("gitlab_user_id", sa.Integer, primary_key=True),
        # "admin" or "protected_usernames"
        sa.Column("reason", sa.String(32), primary_key=True),
        # The configured name it was resolved from (protected_usernames), kept so a rename in
        # GitLab cannot move the protection to whoever takes the name next.
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("username", sa.Text, nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "pending_links",
        sa.Column("user_name_key", sa.Text, primary_key=True),
        sa.Column("user_name", sa.Text, nullable=False),
        sa.Column("gitlab_user_id", sa.Integer, nullable=False),
        sa.Column("gitlab_username", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("actor", sa.Text, nullable=True))
        batch.add_column(sa.Column("request_id", sa.String(128), nullable=True))
        batch.add_column(sa.Column("source", sa.Text, nullable=True))
    _scrub_passwords()


def _scrub_passwords() -> None:
    connection = op.get_bind()
    users = sa.table("users", sa.column("id", sa.String), sa.column("data", sa.JSON))
    for row in connection.execute(sa.select(users.c.id, users.c.data)).all():
        data = row.data if isinstance(row.data, dict) else {}
        kept = _without_password(data)
        if kept != data:
            connection.execute(sa.update(users).where(users.c.id == row.id).values(data=kept))


def _without_password(value: Any) -> Any:
    """Every key naming ``password`` (any case, URN-qualified, dotted), at any depth, removed."""
    if isinstance(value, list):
        return [_without_password(item) for item in value]
    if not isinstance(value, dict):
        return value
    return {
        key: _without_password(item)
        for key, item in value.items()
        if key.rsplit(":", 1)[-1].split(".", 1)[0].strip().casefold() != "password"
    }


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("source")
        batch.drop_column("request_id")
        batch.drop_column("actor")
    op.drop_table("pending_links")
    op.drop_table("protected_accounts")
    with op.batch_alter_table("user_links") as batch:
        batch.drop_column("create_started_at")
