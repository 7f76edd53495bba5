"""The tables of the store. Alembic migrations in ``migrations/`` create and evolve them.

Each SCIM resource is kept whole (``data``) so a GET returns exactly what Entra wrote; the columns
beside it are the indexed values that filters and uniqueness checks need.
"""

from __future__ import annotations

from sqlalchemy import JSON
from sqlalchemy import BigInteger
from sqlalchemy import Boolean
from sqlalchemy import Column
from sqlalchemy import Date
from sqlalchemy import DateTime
from sqlalchemy import ForeignKey
from sqlalchemy import Index
from sqlalchemy import Integer
from sqlalchemy import MetaData
from sqlalchemy import String
from sqlalchemy import Table
from sqlalchemy import Text
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

JsonDocument = JSON().with_variant(JSONB(), "postgresql")

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_name", Text, nullable=False),
    # userName folded for comparison (NFC, lower case): uniqueness and filters are case-insensitive.
    Column("user_name_key", Text, nullable=False, unique=True),
    Column("external_id", Text, nullable=True, index=True),
    Column("active", Boolean, nullable=True),
    Column("data", JsonDocument, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("last_modified", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
)

# What the bridge knows of a user's GitLab account. It outlives the SCIM resource, so that the
# delete policy can still be applied to the account after Entra deleted the user.
user_links = Table(
    "user_links",
    metadata,
    Column("user_id", String(36), primary_key=True),
    Column("gitlab_user_id", Integer, nullable=True, index=True),
    Column("gitlab_username", Text, nullable=True),
    # The SCIM userName the GitLab username was derived from: a rename happens only when it changes.
    Column("source_user_name", Text, nullable=True),
    # How the link was made (DESIGN.md, Ownership): created | adopted | operator.
    Column("origin", String(16), nullable=True),
    Column("retired_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Set before the bridge asks GitLab for a new account: an account found later whose creation
    # answer was lost (a crash, a timeout) is still known as the bridge's own.
    Column("create_started_at", DateTime(timezone=True), nullable=True),
)

# Operator links (``scim-bridge users link``) made before Entra provisioned the user: the user's
# first provisioning takes the link instead of looking for an account.
pending_links = Table(
    "pending_links",
    metadata,
    Column("user_name_key", Text, primary_key=True),  # the SCIM userName, folded
    Column("user_name", Text, nullable=False),
    Column("gitlab_user_id", Integer, nullable=False),
    Column("gitlab_username", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# A GitLab account a run is about to adopt, or to recognise as its own lost create: claimed
# before the run's first write to it. Two SCIM users' runs can find one account adoptable at once
# (neither link saved yet); only the run holding the claim may write to it. Saving the link
# releases it; a claim older than ``links.CLAIM_LIFETIME`` is a dead run's.
account_claims = Table(
    "account_claims",
    metadata,
    Column("gitlab_user_id", Integer, primary_key=True),
    Column("user_id", String(36), nullable=False, index=True),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
)

# GitLab accounts the bridge never writes to, by id (DESIGN.md, Ownership): administrators, and
# ``[users] protected_usernames`` resolved once, so a rename cannot move the protection.
protected_accounts = Table(
    "protected_accounts",
    metadata,
    Column("gitlab_user_id", Integer, primary_key=True),
    Column("reason", String(32), primary_key=True),  # admin | protected_usernames
    Column("name", Text, nullable=True),  # the configured name it was resolved from
    Column("username", Text, nullable=False),  # the account's username when resolved
    Column("resolved_at", DateTime(timezone=True), nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # One row per entity: pending work for the same entity coalesces into it.
    Column("key", String(600), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("entity_id", String(512), nullable=False),  # a user or group id, or a GitLab path
    # Bumped by every enqueue, so a run that started before a newer write does not complete it.
    Column("generation", Integer, nullable=False, default=1),
    Column("state", String(16), nullable=False, index=True),  # pending | parked
    Column("attempts", Integer, nullable=False, default=0),
    Column("run_after", DateTime(timezone=True), nullable=False, index=True),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    # The generation the latest run claimed: that run covers every write up to it (coalescing).
    Column("claimed_generation", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Who caused the work (the newest enqueuer), so the events the worker writes name them.
    Column("actor", Text, nullable=True),
    Column("request_id", String(128), nullable=True),
    Column("source", Text, nullable=True),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("request_id", String(128), nullable=True),
    Column("actor", Text, nullable=True),
    Column("source", Text, nullable=True),
    Column("action", String(64), nullable=False),
    Column("target", Text, nullable=True),
    Column("detail", JsonDocument, nullable=True),
    # The hash chain (store/audit.py): position, the previous event's hash, and this event's.
    Column("seq", BigInteger, nullable=True, unique=True),
    Column("prev_hash", String(64), nullable=True),
    Column("hash", String(64), nullable=True),
)

# The end of the audit chain: one row, locked by each appender so events chain in commit order.
audit_chain_head = Table(
    "audit_chain_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    # The public half of the secret, used to find the row; the secret itself is only hashed.
    Column("lookup", String(32), nullable=False, unique=True),
    Column("secret_hash", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
)

# OAuth 2.0 clients for Entra's "OAuth2 client credentials grant" (RFC 6749 §4.4).
oauth_clients = Table(
    "oauth_clients",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("client_id", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

# A client holds several secrets at once while one is rotated out; each is stored hashed.
oauth_client_secrets = Table(
    "oauth_client_secrets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client", Integer, ForeignKey("oauth_clients.id"), nullable=False, index=True),
    Column("lookup", String(32), nullable=False, unique=True),
    Column("secret_hash", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
)

# Access tokens issued at /oauth2/token: opaque, hashed, and checked against their client and
# secret on every use, so revoking either ends the token at once.
oauth_access_tokens = Table(
    "oauth_access_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("lookup", String(32), nullable=False, unique=True),
    Column("secret_hash", String(128), nullable=False),
    Column("client", Integer, ForeignKey("oauth_clients.id"), nullable=False, index=True),
    Column("client_secret", Integer, ForeignKey("oauth_client_secrets.id"), nullable=False),
    Column("issuer", Text, nullable=False),
    Column("audience", Text, nullable=False),
    Column("scope", Text, nullable=True),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)

groups = Table(
    "groups",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("display_name", Text, nullable=False),
    # Entra needs displayName unique, compared case-insensitively (entra.md §1.8).
    Column("display_name_key", Text, nullable=False, unique=True),
    Column("external_id", Text, nullable=True, index=True),
    # The group without its members: they live in group_members, so that adding one member to a
    # group of 50,000 writes one row instead of rewriting the document.
    Column("data", JsonDocument, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("last_modified", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", String(36), ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("member_id", String(64), primary_key=True),
    Column("display", Text, nullable=True),
    Index("ix_group_members_member_id", "member_id"),
)

# Members whose membership changed, per SCIM group, since the mapping last looked: the
# provisioning layer turns them into per-GitLab-group work (kept apart from the SCIM writes so the
# store stays ignorant of rules and GitLab).
group_member_changes = Table(
    "group_member_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("group_id", String(36), nullable=False, index=True),
    Column("user_id", String(64), nullable=False),
)

# The GitLab groups (and levels) each SCIM group was last mapped to.
group_targets = Table(
    "group_targets",
    metadata,
    Column("group_id", String(36), primary_key=True),
    Column("gitlab_group", Text, primary_key=True),
    Column("access_level", Integer, nullable=False),
    Column("created_by_bridge", Boolean, nullable=False),
)

# The id of each GitLab group the bridge created (``unmapped = "create"``), by path: a group someone
# else makes at that path later (after the bridge's was deleted) is not the bridge's to fill.
created_groups = Table(
    "created_groups",
    metadata,
    Column("gitlab_group", Text, primary_key=True),
    Column("gitlab_group_id", Integer, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

# (GitLab group, SCIM user) pairs whose GitLab membership must be looked at again.
membership_dirty = Table(
    "membership_dirty",
    metadata,
    Column("gitlab_group", Text, primary_key=True),
    Column("user_id", String(64), primary_key=True),
    # Marked again by a newer change while a run looks at it: that run must not clear it.
    Column("marked_at", DateTime(timezone=True), nullable=False),
)

# The memberships the bridge manages: the level it set and, for a membership it found in place,
# the level to restore when its grant goes.
managed_memberships = Table(
    "managed_memberships",
    metadata,
    Column("gitlab_group", Text, primary_key=True),
    Column("gitlab_user_id", Integer, primary_key=True),
    Column("access_level", Integer, nullable=False),
    Column("prior_level", Integer, nullable=True),
    # When the bridge set this level (migration 0010): the access review's "since"; None for a
    # membership set before the column existed.
    Column("since", DateTime(timezone=True), nullable=True),
)

bridge_state = Table(
    "bridge_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# Calls counted against a rolling-window limit of GitLab's (member deletions per group), one row
# per call, shared by every process and instance; rows older than the window are pruned.
paced_calls = Table(
    "paced_calls",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", Text, nullable=False),
    Column("taken_at", DateTime(timezone=True), nullable=False),
    Index("ix_paced_calls_key_taken_at", "key", "taken_at"),
)


# Work done once per interval by one instance (migration 0008): a turn is taken by moving
# ``due_at`` forward where it has come (``store/schedules.py``).
schedules = Table(
    "schedules",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("taken_by", Text, nullable=True),
    Column("taken_at", DateTime(timezone=True), nullable=True),
)

# The bridge's GitLab token, when the operator keeps it in the database (migration 0009): one row,
# its ciphertexts made by ``scim_bridge.token_vault`` (never the token itself), ``version`` moved
# by every replacement so that each instance sees a new token at its next GitLab call.
gitlab_token = Table(
    "gitlab_token",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("token", Text, nullable=False),  # ciphertext of the token in use
    Column("seed", Text, nullable=False),  # ciphertext of the SCIM_BRIDGE_GITLAB_TOKEN it came from
    Column("expires_on", Date, nullable=True),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("changed_by", Text, nullable=False),  # the actor: an operator's command, or the worker
    Column("how", String(16), nullable=False),  # seeded, rotated, stored
    # Set while one instance rotates: every other holds its GitLab calls until the new version.
    Column("rotating_since", DateTime(timezone=True), nullable=True),
    Column("rotating_by", Text, nullable=True),
)
