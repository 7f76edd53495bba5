"""Long-lived bearer tokens for Entra's "Secret Token" field (entra.md §3.1).

A token reads ``sbt_<lookup>_<secret>`` and is stored as described in ``auth/credentials.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from scim_bridge import clock
from scim_bridge.auth import credentials
from scim_bridge.store import audit
from scim_bridge.store.db import Database
from scim_bridge.store.schema import api_tokens

PREFIX = "sbt"
LAST_USED_GRANULARITY = timedelta(minutes=1)


class TokenError(ValueError):
    """A token command that cannot be carried out (duplicate name, unknown name)."""


@dataclass(frozen=True, kw_only=True)
class TokenInfo(credentials.Lifetime):
    name: str


class TokenStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, name: str, *, expires_in_days: int | None = None) -> str:
        """Create a token and return it; it is never shown again."""
        issued = credentials.issue(PREFIX)
        now = clock.now()
        expires_at = now + timedelta(days=expires_in_days) if expires_in_days else None
        try:
            with self.db.transaction(write=True) as tx:
                tx.connection.execute(
                    insert(api_tokens).values(
                        name=name,
                        lookup=issued.lookup,
                        secret_hash=issued.secret_hash,
                        created_at=now,
                        expires_at=expires_at,
                    )
                )
                audit.record(
                    "token.create", name, {"expires_at": expires_at and expires_at.isoformat()}
                )
        except IntegrityError:
            raise TokenError(f"a token named {name!r} already exists") from None
        return issued.presented

    def list(self) -> list[TokenInfo]:
        with self.db.transaction(write=False) as tx:
            rows = tx.connection.execute(select(api_tokens).order_by(api_tokens.c.id)).mappings()
            return [TokenInfo(name=row["name"], **credentials.lifetime(row)) for row in rows]

    def revoke(self, name: str) -> None:
        with self.db.transaction(write=True) as tx:
            revoked = tx.connection.execute(
                update(api_tokens)
                .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=clock.now())
            ).rowcount
            if not revoked:
                raise TokenError(f"no active token named {name!r}")
            audit.record("token.revoke", name)

    def verify(self, presented: str) -> str | None:
        """Return the token's name when ``presented`` is a valid, unexpired, unrevoked token."""
        row = credentials.find(
            self.db,
            PREFIX,
            presented,
            lambda lookup: api_tokens.select().where(api_tokens.c.lookup == lookup),
        )
        if row is None or row["revoked_at"] is not None or credentials.expired(row["expires_at"]):
            return None
        now = clock.now()
        last_used = clock.aware(row["last_used_at"])
        if last_used is None or now - last_used >= LAST_USED_GRANULARITY:
            with self.db.transaction(write=True) as tx:
                tx.connection.execute(
                    update(api_tokens).where(api_tokens.c.id == row["id"]).values(last_used_at=now)
                )
        return str(row["name"])
