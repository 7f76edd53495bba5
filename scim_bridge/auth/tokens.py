"""Long-lived bearer tokens for Entra's "Secret Token" field.

A token reads ``sbt_<lookup>_<secret>``. The lookup half finds the row; only a SHA-256 of the secret
half is stored. The secret carries 256 random bits, so a fast hash is enough (there is nothing to
brute-force), and the comparison is constant-time. An unknown lookup is compared against a dummy
hash, so a wrong token costs the same time whichever half was wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from scim_bridge import clock
from scim_bridge.store import audit
from scim_bridge.store.db import Database
from scim_bridge.store.schema import api_tokens

PREFIX = "sbt"
LAST_USED_GRANULARITY = timedelta(minutes=1)
_DUMMY_HASH = hashlib.sha256(b"scim-bridge: no such token").hexdigest()


class TokenError(ValueError):
    """A token command that cannot be carried out (duplicate name, unknown name)."""


@dataclass(frozen=True)
class TokenInfo:
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= clock.now():
            return "expired"
        return "active"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _split(presented: str) -> tuple[str, str] | None:
    parts = presented.split("_", 2)  # the secret half may itself contain "_"
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


class TokenStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, name: str, *, expires_in_days: int | None = None) -> str:
        """Create a token and return it; it is never shown again."""
        lookup = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = clock.now()
        expires_at = now + timedelta(days=expires_in_days) if expires_in_days else None
        try:
            with self.db.transaction(write=True) as tx:
                tx.connection.execute(
                    insert(api_tokens).values(
                        name=name,
                        lookup=lookup,
                        secret_hash=_hash(secret),
                        created_at=now,
                        expires_at=expires_at,
                    )
                )
                audit.record(
                    "token.create", name, {"expires_at": expires_at and expires_at.isoformat()}
                )
        except IntegrityError:
            raise TokenError(f"a token named {name!r} already exists") from None
        return f"{PREFIX}_{lookup}_{secret}"

    def list(self) -> list[TokenInfo]:
        with self.db.transaction(write=False) as tx:
            rows = tx.connection.execute(select(api_tokens).order_by(api_tokens.c.id)).mappings()
            return [
                TokenInfo(
                    name=row["name"],
                    created_at=clock.aware(row["created_at"]),  # type: ignore[arg-type]
                    expires_at=clock.aware(row["expires_at"]),
                    revoked_at=clock.aware(row["revoked_at"]),
                    last_used_at=clock.aware(row["last_used_at"]),
                )
                for row in rows
            ]

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
        parts = _split(presented)
        lookup, secret = parts if parts else ("", presented)
        with self.db.transaction(write=False) as tx:
            row = (
                tx.connection.execute(select(api_tokens).where(api_tokens.c.lookup == lookup))
                .mappings()
                .first()
            )
        expected = row["secret_hash"] if row is not None else _DUMMY_HASH
        matches = hmac.compare_digest(_hash(secret), expected)
        if row is None or not matches or row["revoked_at"] is not None:
            return None
        now = clock.now()
        expires_at = clock.aware(row["expires_at"])
        if expires_at is not None and expires_at <= now:
            return None
        last_used = clock.aware(row["last_used_at"])
        if last_used is None or now - last_used >= LAST_USED_GRANULARITY:
            with self.db.transaction(write=True) as tx:
                tx.connection.execute(
                    update(api_tokens).where(api_tokens.c.id == row["id"]).values(last_used_at=now)
                )
        return str(row["name"])
