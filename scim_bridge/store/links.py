"""What the bridge knows of each user's GitLab account (DESIGN.md 1: "with its links to GitLab objects")."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import update

from scim_bridge import clock
from scim_bridge.store.db import Database
from scim_bridge.store.schema import user_links


@dataclass(frozen=True)
class UserLink:
    user_id: str
    gitlab_user_id: int | None = None
    gitlab_username: str | None = None
    source_user_name: str | None = None
    origin: str | None = None
    retired_at: datetime | None = None

    def with_(self, **changes: object) -> UserLink:
        return replace(self, **changes)  # type: ignore[arg-type]


class LinkStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, user_id: str) -> UserLink | None:
        with self.db.transaction(write=False) as tx:
            row = (
                tx.connection.execute(select(user_links).where(user_links.c.user_id == user_id))
                .mappings()
                .first()
            )
        if row is None:
            return None
        return UserLink(
            user_id=row["user_id"],
            gitlab_user_id=row["gitlab_user_id"],
            gitlab_username=row["gitlab_username"],
            source_user_name=row["source_user_name"],
            origin=row["origin"],
            retired_at=clock.aware(row["retired_at"]),
        )

    def save(self, link: UserLink) -> None:
        values = {
            "gitlab_user_id": link.gitlab_user_id,
            "gitlab_username": link.gitlab_username,
            "source_user_name": link.source_user_name,
            "origin": link.origin,
            "retired_at": link.retired_at,
            "updated_at": clock.now(),
        }
        with self.db.transaction(write=True) as tx:
            changed = tx.connection.execute(
                update(user_links).where(user_links.c.user_id == link.user_id).values(**values)
            ).rowcount
            if not changed:
                tx.connection.execute(insert(user_links).values(user_id=link.user_id, **values))

    def all(self) -> list[UserLink]:
        with self.db.transaction(write=False) as tx:
            rows = tx.connection.execute(select(user_links.c.user_id)).all()
        return [link for row in rows if (link := self.get(row.user_id)) is not None]
