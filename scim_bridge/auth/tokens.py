"""Long-lived bearer tokens for Entra's "Secret Token" field (entra.md §3.1).

A token reads ``sbt_<lookup>_<secret>`` and is stored as described in ``auth/credentials.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from scim_bridge import clock
from scim_bridge.auth import credentials
from scim_bridge.store.api_tokens import ApiTokenRepository
from scim_bridge.store.credentials import NameTaken
from scim_bridge.store.credentials import NotActive
from scim_bridge.store.db import Database

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
        self.repository = ApiTokenRepository(db)

    def create(self, name: str, *, expires_in_days: int | None = None) -> str:
        """Create a token and return it; it is never shown again."""
        issued = credentials.issue(PREFIX)
        lifetime = timedelta(days=expires_in_days) if expires_in_days else None
        try:
            self.repository.add(name, issued.stored, lifetime)
        except NameTaken:
            raise TokenError(f"a token named {name!r} already exists") from None
        return issued.presented

    def list(self) -> list[TokenInfo]:
        return [
            TokenInfo(name=token.name, **credentials.lifetime(token))
            for token in self.repository.all()
        ]

    def revoke(self, name: str) -> None:
        try:
            self.repository.revoke(name)
        except NotActive:
            raise TokenError(f"no active token named {name!r}") from None

    def verify(self, presented: str) -> str | None:
        """Return the token's name when ``presented`` is a valid, unexpired, unrevoked token."""
        token = credentials.find(PREFIX, presented, self.repository.find_by_lookup)
        if token is None or token.revoked_at is not None or credentials.expired(token.expires_at):
            return None
        now = clock.now()
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_GRANULARITY:
            self.repository.mark_used(token.id, now)
        return token.name
