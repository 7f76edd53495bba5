"""What the store keeps of the credentials the bridge issues, whatever their kind.

Only a lookup and a hash of each secret reach the store (``HashedSecret``): it never sees a secret
in plain text; the format, the hashing and the constant-time check are ``scim_bridge.auth``'s. The
repositories, one per kind (``store/api_tokens.py``, ``store/oauth_clients.py``), run each method
as one unit of work in a transaction of its own (or the caller's, when one is open) and record its
audit event there, so the event and the change commit together or not at all. Records come back
with aware datetimes, whichever database holds them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from scim_bridge import clock


class NameTaken(Exception):
    """Another credential has the name (or, by a vanishing chance, the id or lookup) already."""


class NotActive(Exception):
    """No unrevoked credential has the name."""


@dataclass(frozen=True)
class HashedSecret:
    """What is stored of a secret: the half that finds its row, and a hash of the other half."""

    lookup: str
    secret_hash: str = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class Lifetime:
    """When a stored credential was made, ends and was last used (aware; None: not yet, never)."""

    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


def lifetime_columns(row: Any) -> dict[str, Any]:
    """A row's lifetime columns, aware: ``Record(**lifetime_columns(row), ...)``."""
    names = ("created_at", "expires_at", "revoked_at", "last_used_at")
    return {name: clock.aware(row[name]) for name in names}


def aware(value: datetime) -> datetime:
    """A NOT NULL timestamp column's value, aware."""
    at = clock.aware(value)
    assert at is not None
    return at


@contextmanager
def unique_name(name: str) -> Iterator[None]:
    """Turn a unique constraint's refusal into :class:`NameTaken`, after the rollback.

    Enclose the whole transaction, so a refused name leaves no row and no audit event.
    """
    try:
        yield
    except IntegrityError:
        raise NameTaken(name) from None
