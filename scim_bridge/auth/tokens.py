"""Long-lived bearer tokens for Entra's "Secret Token" field (entra.md §3.1).

A token reads ``sbt_<lookup>_<secret>`` and is stored as described in ``auth/credentials.py``.
"""

from __future__ import annotations

import contextvars
import threading
from dataclasses import dataclass
from datetime import datetime
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
        # When this process last wrote each token's use: concurrent requests that all read an
        # old ``last_used_at`` write it once, not once each.
        self._marked: dict[int, datetime] = {}
        self._lock = threading.Lock()

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
        self._note_use(token.id, token.last_used_at)
        return token.name

    def _note_use(self, token_id: int, last_used_at: datetime | None) -> None:
        """Record the use at most once per ``LAST_USED_GRANULARITY`` per token: a write
        transaction per request would cost more than the request's own work."""
        now = clock.now()
        with self._lock:
            seen = max(filter(None, (last_used_at, self._marked.get(token_id))), default=None)
            if seen is not None and now - seen < LAST_USED_GRANULARITY:
                return
            self._marked[token_id] = now
        # A write of its own, outside the transaction a read request checks its credential in
        # (an empty context holds no transaction).
        contextvars.Context().run(self.repository.mark_used, token_id, now)
