"""Long-lived bearer tokens (Entra's Secret Token) as the store keeps them: the ``api_tokens`` table.

See ``store/credentials.py`` for what is stored of a secret, and ``auth/tokens.py`` for the checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import update

from scim_bridge import clock
from scim_bridge.store import audit
from scim_bridge.store.credentials import HashedSecret
from scim_bridge.store.credentials import Lifetime
from scim_bridge.store.credentials import NotActive
from scim_bridge.store.credentials import lifetime_columns
from scim_bridge.store.credentials import unique_name
from scim_bridge.store.db import Database
from scim_bridge.store.prepared import Prepared
from scim_bridge.store.schema import api_tokens


@dataclass(frozen=True, kw_only=True)
class ApiToken(Lifetime):
    id: int
    name: str
    secret_hash: str = field(repr=False)


def _api_token(row: Any) -> ApiToken:
    return ApiToken(
        id=row["id"], name=row["name"], secret_hash=row["secret_hash"], **lifetime_columns(row)
    )


# Built once: every authenticated request runs it (SQLAlchemy caches its compiled form).
BY_LOOKUP = Prepared(select(api_tokens).where(api_tokens.c.lookup == bindparam("lookup")))


class ApiTokenRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, name: str, secret: HashedSecret, lifetime: timedelta | None) -> None:
        """Store a new token, for ``lifetime`` or for good; :class:`NameTaken` when in use."""
        now = clock.now()
        expires_at = now + lifetime if lifetime else None
        with unique_name(name), self.db.transaction(write=True) as tx:
            tx.connection.execute(
                insert(api_tokens).values(
                    name=name,
                    lookup=secret.lookup,
                    secret_hash=secret.secret_hash,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
            audit.record(
                "token.create", name, {"expires_at": expires_at and expires_at.isoformat()}
            )

    def all(self) -> list[ApiToken]:
        with self.db.transaction(write=False) as tx:
            rows = tx.connection.execute(select(api_tokens).order_by(api_tokens.c.id)).mappings()
            return [_api_token(row) for row in rows]

    def revoke(self, name: str) -> None:
        """Revoke the live token ``name``; :class:`NotActive` when there is none."""
        with self.db.transaction(write=True) as tx:
            revoked = tx.connection.execute(
                update(api_tokens)
                .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=clock.now())
            ).rowcount
            if not revoked:
                raise NotActive(name)
            audit.record("token.revoke", name)

    def find_by_lookup(self, lookup: str) -> ApiToken | None:
        """The token whose lookup half is ``lookup``, live or not: the caller checks the rest."""
        with self.db.transaction(write=False) as tx:
            row = BY_LOOKUP.first(tx.connection, {"lookup": lookup})
        return None if row is None else _api_token(row)

    def mark_used(self, token_id: int, at: datetime) -> None:
        with self.db.transaction(write=True) as tx:
            tx.connection.execute(
                update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=at)
            )
