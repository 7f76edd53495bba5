"""Trust: OAuth2 clients, their secrets and access tokens, and the audit hash chain.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


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

    The hash is ``scim_bridge.store.audit.event_hash``, the format new events are chained with.
    """
    from scim_bridge.store.audit import BATCH
    from scim_bridge.store.audit import GENESIS
    from scim_bridge.store.audit import HEAD_ID
    from scim_bridge.store.audit import event_hash

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
            prev_hash, previous = previous, event_hash({**row, "seq": seq, "prev_hash": previous})
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
