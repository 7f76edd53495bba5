"""The stored GitLab token's one row (migration 0009): ciphertexts only, never the token.

``scim_bridge.token_vault`` encrypts and decrypts; this module keeps the row. Every replacement (a
rotation, an operator's ``store-token``) moves ``version`` in the same statement as the new
ciphertext, so an instance that sees the new version reads the new token. A rotation first marks
the row (``rotating_since``), so that no instance sends the old token once GitLab may have
revoked it (``scim_bridge.token_rotation``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import date
from datetime import datetime
from typing import Any

from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite

from scim_bridge import clock
from scim_bridge.store.db import Database
from scim_bridge.store.db import current_transaction
from scim_bridge.store.schema import gitlab_token

ROW_ID = 1


@dataclass(frozen=True)
class StoredTokenRow:
    """The row as stored: ``token`` and ``seed`` are ciphertexts."""

    version: int
    token: str = field(repr=False)
    seed: str = field(repr=False)
    expires_on: date | None
    changed_at: datetime
    changed_by: str
    how: str
    rotating_since: datetime | None = None
    rotating_by: str | None = None

    @classmethod
    def from_row(cls, values: Mapping[Any, Any]) -> StoredTokenRow:
        return cls(
            version=int(values["version"]),
            token=str(values["token"]),
            seed=str(values["seed"]),
            expires_on=values["expires_on"],
            changed_at=clock.aware(values["changed_at"]),
            changed_by=str(values["changed_by"]),
            how=str(values["how"]),
            rotating_since=clock.aware(values["rotating_since"]),
            rotating_by=values["rotating_by"],
        )


_COLUMNS = (
    gitlab_token.c.version,
    gitlab_token.c.token,
    gitlab_token.c.seed,
    gitlab_token.c.expires_on,
    gitlab_token.c.changed_at,
    gitlab_token.c.changed_by,
    gitlab_token.c.how,
    gitlab_token.c.rotating_since,
    gitlab_token.c.rotating_by,
)


@dataclass(frozen=True)
class TokenVersion:
    """What each GitLab call reads first: the version, and whether a rotation is under way."""

    version: int
    rotating_since: datetime | None


class GitLabTokenStore:
    """The row, read and replaced; each method is a transaction of its own, or joins the open one.

    A replacement is a conditional update on the version the caller read (``WHERE version = :v``),
    so of two instances that read the same version, exactly one replaces it: PostgreSQL makes the
    second update wait for the first and then find the version moved; SQLite has one writer.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def peek(self) -> TokenVersion | None:
        """The version and rotation mark (None: nothing stored); read before every GitLab call."""
        with self.db.transaction(write=False) as tx:
            row = tx.connection.execute(_PEEK).first()
        if row is None:
            return None
        return TokenVersion(int(row.version), clock.aware(row.rotating_since))

    def read(self) -> StoredTokenRow | None:
        with self.db.transaction(write=False) as tx:
            row = tx.connection.execute(
                select(*_COLUMNS).where(gitlab_token.c.id == ROW_ID)
            ).first()
        return None if row is None else StoredTokenRow.from_row(row._mapping)

    def seed(self, token: str, seed: str, actor: str) -> bool:
        """In a write transaction: store the first token (version 1) unless one is stored
        already; True if this call did."""
        connection = current_transaction().connection
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        inserted = connection.execute(
            dialect.insert(gitlab_token)
            .values(
                id=ROW_ID,
                version=1,
                token=token,
                seed=seed,
                expires_on=None,
                changed_at=clock.now(),
                changed_by=actor,
                how="seeded",
            )
            .on_conflict_do_nothing()
            .returning(gitlab_token.c.id)  # psycopg's rowcount is not 1 for an upsert's insert
        )
        return inserted.first() is not None

    def claim(self, version: int, owner: str, stale_before: datetime) -> bool:
        """Mark ``version`` as being rotated by ``owner``; False if it moved, or another owner's
        mark is newer than ``stale_before`` (a mark older than that is a rotation that died)."""
        with self.db.transaction(write=True) as tx:
            claimed = tx.connection.execute(
                update(gitlab_token)
                .where(
                    gitlab_token.c.id == ROW_ID,
                    gitlab_token.c.version == version,
                    or_(
                        gitlab_token.c.rotating_since.is_(None),
                        gitlab_token.c.rotating_since < stale_before,
                    ),
                )
                .values(rotating_since=clock.now(), rotating_by=owner)
            )
            return claimed.rowcount == 1

    def release(self, version: int) -> None:
        """Drop the rotation mark on ``version``: the rotation did not happen."""
        with self.db.transaction(write=True) as tx:
            tx.connection.execute(
                update(gitlab_token)
                .where(gitlab_token.c.id == ROW_ID, gitlab_token.c.version == version)
                .values(rotating_since=None, rotating_by=None)
            )

    def replace(
        self,
        version: int,
        token: str,
        *,
        expires_on: date | None,
        actor: str,
        how: str,
        seed: str | None = None,
    ) -> int | None:
        """In a write transaction: ``token`` (a ciphertext) replaces ``version``'s, under the
        next version, and the rotation mark is dropped; None if ``version`` is no longer current."""
        values: dict[str, object] = {
            "version": version + 1,
            "token": token,
            "expires_on": expires_on,
            "changed_at": clock.now(),
            "changed_by": actor,
            "how": how,
            "rotating_since": None,
            "rotating_by": None,
        }
        if seed is not None:
            values["seed"] = seed
        replaced = current_transaction().connection.execute(
            update(gitlab_token)
            .where(gitlab_token.c.id == ROW_ID, gitlab_token.c.version == version)
            .values(values)
        )
        return version + 1 if replaced.rowcount == 1 else None


_PEEK = select(gitlab_token.c.version, gitlab_token.c.rotating_since).where(
    gitlab_token.c.id == ROW_ID
)
