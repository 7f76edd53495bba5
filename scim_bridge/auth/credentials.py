"""Secrets the bridge issues: ``<prefix>_<lookup>_<secret>``, stored as a lookup and a hash.

The lookup half finds the row; only a SHA-256 of the secret half is stored. The secret carries 256
random bits, so a fast hash is enough (there is nothing to brute-force), and the comparison is
constant-time. An unknown lookup is compared against a dummy hash, so a wrong credential costs the
same whichever half was wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping
from sqlalchemy import Select

from scim_bridge import clock
from scim_bridge.store.db import Database

_DUMMY_HASH = hashlib.sha256(b"scim-bridge: no such credential").hexdigest()


@dataclass(frozen=True)
class Issued:
    """A new credential: what to store (lookup, hash) and what to show once (presented)."""

    lookup: str
    secret_hash: str
    presented: str


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue(prefix: str) -> Issued:
    lookup = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return Issued(lookup, digest(secret), f"{prefix}_{lookup}_{secret}")


def split(prefix: str, presented: str) -> tuple[str, str]:
    """The lookup and secret halves; an ill-formed credential gets a lookup that finds nothing."""
    parts = presented.split("_", 2)  # the secret half may itself contain "_"
    if len(parts) != 3 or parts[0] != prefix or not parts[1] or not parts[2]:
        return "", presented
    return parts[1], parts[2]


def matches(secret: str, stored_hash: str | None) -> bool:
    """Constant-time check; ``stored_hash`` None (no such row) still does the same work."""
    return hmac.compare_digest(digest(secret), stored_hash or _DUMMY_HASH) and bool(stored_hash)


def find(
    db: Database, prefix: str, presented: str, query: Callable[[str], Select[Any]]
) -> RowMapping | None:
    """The row ``query(lookup)`` finds for ``presented``, if its ``secret_hash`` matches.

    The comparison runs whether or not a row was found, so a wrong lookup and a wrong secret
    cost the same.
    """
    lookup, secret = split(prefix, presented)
    with db.transaction(write=False) as tx:
        row = tx.connection.execute(query(lookup)).mappings().first()
    if not matches(secret, row["secret_hash"] if row is not None else None):
        return None
    return row


def expired(expires_at: datetime | None) -> bool:
    """Whether a stored expiry (naive from SQLite, aware from PostgreSQL) has passed."""
    at = clock.aware(expires_at)
    return at is not None and at <= clock.now()


@dataclass(frozen=True)
class Lifetime:
    """When a stored credential was made, ends and was last used, and so its status."""

    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if expired(self.expires_at) else "active"


def lifetime(row: Any) -> dict[str, Any]:
    """A row's lifetime columns as aware datetimes: ``Info(**lifetime(row), name=...)``."""
    names = ("created_at", "expires_at", "revoked_at", "last_used_at")
    return {name: clock.aware(row[name]) for name in names}
