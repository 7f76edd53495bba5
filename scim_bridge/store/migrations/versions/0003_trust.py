"""Trust: OAuth2 clients, their secrets and access tokens, and the audit hash chain.

The events written before this revision are chained here with a frozen copy of the hash format
(``_event_hash`` and the functions under it), not with ``scim_bridge.store.audit``: a migration
must do tomorrow exactly what it did when it was written, whatever the live code becomes, so it
imports nothing from scim_bridge. The format is a contract (see ``audit.event_hash``): the chains
this revision wrote are verified with the live hash ever after, so the two must agree;
tests/store/test_frozen_migrations.py compares them and fails if the live one changes.

Revision ID: 0003
Revises: 0002
"""

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# As scim_bridge.store.audit had them at this revision: the first prev_hash, the head row's id,
# and the rows read per query.
GENESIS = "0" * 64
HEAD_ID = 1
BATCH = 1000
EVENT_FIELDS = ("at", "request_id", "actor", "source", "action", "target", "detail")


def upgrade() -> None:
    op.create_table(
        "oauth_clients",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("client_id", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "oauth_client_secrets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "client", sa.Integer, sa.ForeignKey("oauth_clients.id"), nullable=False, index=True
        ),
        sa.Column("lookup", sa.String(32), nullable=False, unique=True),
        sa.Column("secret_hash", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "oauth_access_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("lookup", sa.String(32), nullable=False, unique=True),
        sa.Column("secret_hash", sa.String(128), nullable=False),
        sa.Column(
            "client", sa.Integer, sa.ForeignKey("oauth_clients.id"), nullable=False, index=True
        ),
        sa.Column(
            "client_secret",
            sa.Integer,
            sa.ForeignKey("oauth_client_secrets.id"),
            nullable=False,
        ),
        sa.Column("issuer", sa.Text, nullable=False),
        sa.Column("audience", sa.Text, nullable=False),
        sa.Column("scope", sa.Text, nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("seq", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("prev_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_audit_events_seq", ["seq"])
    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    # AUDIT-CHAIN: events written before this revision are chained here (store/audit.py).
    _chain_existing_events()


def _chain_existing_events() -> None:
    """Chain the events written before this revision in id order, and create the chain head.

    The hash is ``_event_hash``, the format new events are chained with (frozen, see above).
    """
    events = _audit_events()
    connection = op.get_bind()
    chain = sa.update(events).where(events.c.id == sa.bindparam("row_id"))
    seq, previous, after = 0, GENESIS, None
    while True:
        statement = sa.select(events).order_by(events.c.id).limit(BATCH)
        if after is not None:
            statement = statement.where(events.c.id > after)
        rows = connection.execute(statement).mappings().all()
        chained = []
        for row in rows:
            seq += 1
            prev_hash, previous = previous, _event_hash({**row, "seq": seq, "prev_hash": previous})
            chained.append(
                {"row_id": row["id"], "seq": seq, "prev_hash": prev_hash, "hash": previous}
            )
        if chained:
            connection.execute(chain, chained)
        if len(rows) < BATCH:
            break
        after = rows[-1]["id"]
    heads = sa.table(
        "audit_chain_head",
        sa.column("id", sa.Integer),
        sa.column("seq", sa.BigInteger),
        sa.column("hash", sa.String),
    )
    connection.execute(sa.insert(heads).values(id=HEAD_ID, seq=seq, hash=previous))


# -- The hash format, frozen: a copy of scim_bridge.store.audit's at this revision ----------------


def _event_hash(event: Mapping[str, Any]) -> str:
    """Hex SHA-256 of ``_canonical(event)``."""
    return hashlib.sha256(_canonical(event)).hexdigest()


def _canonical(event: Mapping[str, Any]) -> bytes:
    """seq, prev_hash and the event fields as JSON: keys sorted, no whitespace, ASCII only."""
    document = {name: event[name] for name in EVENT_FIELDS}
    document["at"] = _instant(event["at"])
    document["detail"] = _normalised_detail(event["detail"])
    document["seq"] = int(event["seq"])
    document["prev_hash"] = event["prev_hash"]
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _instant(value: datetime | str) -> str:
    """ISO 8601 in UTC with microseconds; a naive value (SQLite returns them) is UTC already."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _normalised_detail(detail: Any) -> Any:
    """``detail`` as JSON reads it back, with whole numbers as integers (JSONB prints 1e16 so)."""
    return _whole_numbers(json.loads(json.dumps(detail)))


def _whole_numbers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    return value


def _audit_events() -> sa.TableClause:
    """audit_events as this revision leaves it (the migration must not follow later schemas)."""
    from sqlalchemy.dialects.postgresql import JSONB

    return sa.table(
        "audit_events",
        sa.column("id", sa.Integer),
        sa.column("at", sa.DateTime(timezone=True)),
        sa.column("request_id", sa.String),
        sa.column("actor", sa.Text),
        sa.column("source", sa.Text),
        sa.column("action", sa.String),
        sa.column("target", sa.Text),
        sa.column("detail", sa.JSON().with_variant(JSONB(), "postgresql")),
        sa.column("seq", sa.BigInteger),
        sa.column("prev_hash", sa.String),
        sa.column("hash", sa.String),
    )


def downgrade() -> None:
    op.drop_table("audit_chain_head")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_constraint("uq_audit_events_seq", type_="unique")
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
        batch.drop_column("seq")
    op.drop_table("oauth_access_tokens")
    op.drop_table("oauth_client_secrets")
    op.drop_table("oauth_clients")
