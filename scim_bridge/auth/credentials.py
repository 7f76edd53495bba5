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
from dataclasses import field
from datetime import datetime
from typing import Any
from typing import Protocol
from typing import TypeVar

from scim_bridge import clock
from scim_bridge.store.credentials import HashedSecret
from scim_bridge.store.credentials import Lifetime as StoredLifetime

_DUMMY_HASH = hashlib.sha256(b"scim-bridge: no such credential").hexdigest()


@dataclass(frozen=True)
class Issued:
    """A new credential: what to store (lookup, hash) and what to show once (presented)."""

    stored: HashedSecret
    presented: str = field(repr=False)


class Hashed(Protocol):
    @property
    def secret_hash(self) -> str: ...


Found = TypeVar("Found", bound=Hashed)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue(prefix: str) -> Issued:
    lookup = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return Issued(HashedSecret(lookup, digest(secret)), f"{prefix}_{lookup}_{secret}")


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
    prefix: str, presented: str, find_by_lookup: Callable[[str], Found | None]
) -> Found | None:
    """The record ``find_by_lookup(lookup)`` returns for ``presented``, if its hash matches.

    The lookup and the comparison run whether or not the credential is well formed or a record
    was found, so a wrong lookup and a wrong secret cost the same.
    """
    lookup, secret = split(prefix, presented)
    found = find_by_lookup(lookup)
    if not matches(secret, found.secret_hash if found is not None else None):
        return None
    return found


def expired(expires_at: datetime | None) -> bool:
    """Whether a stored expiry (naive from SQLite, aware from PostgreSQL) has passed."""
    at = clock.aware(expires_at)
    return at is not None and at <= clock.now()


@dataclass(frozen=True, kw_only=True)
class Lifetime(StoredLifetime):
    """When a stored credential was made, ends and was last used, and so its status."""

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if expired(self.expires_at) else "active"


def lifetime(record: StoredLifetime) -> dict[str, Any]:
    """A stored record's lifetime: ``Info(**lifetime(record), name=...)``."""
    names = ("created_at", "expires_at", "revoked_at", "last_used_at")
    return {name: getattr(record, name) for name in names}
