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
from dataclasses import dataclass

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
