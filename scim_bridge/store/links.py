"""What the bridge knows of each user's GitLab account (DESIGN.md 1: "with its links to GitLab objects").

A link records how it was made (DESIGN.md, Ownership), because that decides what the bridge may
write: ``created`` (the bridge made the account), ``adopted`` (an existing account matched by email
or identity) or ``operator`` (linked by hand with ``scim-bridge users link``; memberships only).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import replace
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import Protocol

from sqlalchemy import Connection
from sqlalchemy import and_
from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy import update

from scim_bridge import clock
from scim_bridge.store.db import Database
from scim_bridge.store.db import upsert
from scim_bridge.store.documents import folded
from scim_bridge.store.prepared import Prepared
from scim_bridge.store.schema import account_claims
from scim_bridge.store.schema import pending_links
from scim_bridge.store.schema import user_links
from scim_bridge.store.schema import users

CREATED = "created"
ADOPTED = "adopted"
OPERATOR = "operator"
ORIGINS = (CREATED, ADOPTED, OPERATOR)
# The first key of the advisory locks that make one live link per GitLab account (PostgreSQL).
LINK_LOCK_SPACE = 7364013
# A claim this old belongs to a run that died: far longer than any run (an inline run's deadline
# is under a minute; a worker run makes a few calls of at most the GitLab timeout each).
CLAIM_LIFETIME = timedelta(minutes=10)


class LinkTaken(Exception):
    """Another SCIM user's live link holds the account already."""


@dataclass(frozen=True)
class UserLink:
    user_id: str
    gitlab_user_id: int | None = None
    gitlab_username: str | None = None
    source_user_name: str | None = None
    origin: str | None = None
    retired_at: datetime | None = None
    create_started_at: datetime | None = None

    def with_(self, **changes: object) -> UserLink:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def linked(self) -> bool:
        return self.gitlab_user_id is not None


@dataclass(frozen=True)
class PendingLink:
    """An operator link waiting for Entra to provision the SCIM user with this userName."""

    user_name: str
    gitlab_user_id: int
    gitlab_username: str


@dataclass(frozen=True)
class LinkListing:
    """One row of ``scim-bridge users list``: the link and the SCIM user's name, if it is kept."""

    link: UserLink
    user_name: str | None


def _link(row: Any) -> UserLink:
    return UserLink(
        user_id=row["user_id"],
        gitlab_user_id=row["gitlab_user_id"],
        gitlab_username=row["gitlab_username"],
        source_user_name=row["source_user_name"],
        origin=row["origin"],
        retired_at=clock.aware(row["retired_at"]),
        create_started_at=clock.aware(row["create_started_at"]),
    )


def _pending(row: Any) -> PendingLink:
    return PendingLink(row["user_name"], row["gitlab_user_id"], row["gitlab_username"])


class UserLinks(Protocol):
    """The links as the user reconciler and drift see them (:class:`LinkStore`, or a fake)."""

    def get(self, user_id: str) -> UserLink | None: ...

    def save(self, link: UserLink, *, consumed: str | None = None) -> None: ...

    def pending(self, user_name: str) -> PendingLink | None: ...

    def pending_for_account(self, gitlab_user_id: int) -> PendingLink | None: ...

    def holder(self, gitlab_user_id: int, other_than: str) -> UserLink | None: ...

    def mark_create_started(self, user_id: str) -> datetime: ...

    def claim_account(self, gitlab_user_id: int, user_id: str, gitlab_username: str) -> None: ...

    def all(self) -> list[UserLink]: ...


# Every run reads and writes links: these statements are built once, not per call (building one
# costs more than SQLite's work on it). Bind names differ from the columns they set.
_BY_USER = Prepared(select(user_links).where(user_links.c.user_id == bindparam("link_user")))
_ACCOUNT_OF_USER = Prepared(
    select(user_links.c.gitlab_user_id).where(user_links.c.user_id == bindparam("link_user"))
)
_LIVE_HOLDER = Prepared(
    select(user_links.c.user_id).where(
        user_links.c.gitlab_user_id == bindparam("account"),
        user_links.c.user_id != bindparam("link_user"),
        user_links.c.retired_at.is_(None),
    )
)
_RELEASE_RETIRED = Prepared(
    update(user_links)
    .where(
        user_links.c.gitlab_user_id == bindparam("account"),
        user_links.c.user_id != bindparam("link_user"),
        user_links.c.retired_at.is_not(None),
    )
    .values(gitlab_user_id=None, updated_at=bindparam("now"))
)
_PENDING = Prepared(
    select(pending_links).where(pending_links.c.user_name_key == bindparam("user_name_key"))
)
_DROP_PENDING = Prepared(
    delete(pending_links).where(pending_links.c.user_name_key == bindparam("user_name_key"))
)
_LINK_FIELDS = (
    "gitlab_user_id",
    "gitlab_username",
    "source_user_name",
    "origin",
    "retired_at",
    "create_started_at",
    "updated_at",
)
_UPDATE_LINK = Prepared(
    update(user_links)
    .where(user_links.c.user_id == bindparam("link_user"))
    .values({field: bindparam(f"new_{field}") for field in _LINK_FIELDS})
)
_MARK = Prepared(
    update(user_links)
    .where(user_links.c.user_id == bindparam("link_user"))
    .values(create_started_at=bindparam("now"), updated_at=bindparam("now"))
)
_INSERT_LINK = insert(user_links)
_CLAIM_OF = Prepared(
    select(account_claims.c.user_id, account_claims.c.claimed_at).where(
        account_claims.c.gitlab_user_id == bindparam("account")
    )
)
_RELEASE_CLAIMS = Prepared(
    delete(account_claims).where(account_claims.c.user_id == bindparam("link_user"))
)


class LinkStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, user_id: str) -> UserLink | None:
        with self.db.transaction(write=False) as tx:
            row = _BY_USER.first(tx.connection, {"link_user": user_id})
        return None if row is None else _link(row)

    def save(self, link: UserLink, *, consumed: str | None = None) -> None:
        """Write the link; another SCIM user's *retired* link to the same account lets go of it.

        A live link of another user to the account is never overwritten here: the reconciler
        refuses such an account before it gets this far (see :meth:`holder`). ``consumed`` names
        the userName of a pending link this link replaces, removed in the same transaction.
        """
        values = {
            "gitlab_user_id": link.gitlab_user_id,
            "gitlab_username": link.gitlab_username,
            "source_user_name": link.source_user_name,
            "origin": link.origin,
            "retired_at": link.retired_at,
            "create_started_at": link.create_started_at,
            "updated_at": clock.now(),
        }
        with self.db.transaction(write=True) as tx:
            if (
                link.gitlab_user_id is not None
                and link.retired_at is None
                and self._claim(tx.connection, link)
            ):
                _RELEASE_RETIRED.rowcount(
                    tx.connection,
                    {"account": link.gitlab_user_id, "link_user": link.user_id, "now": clock.now()},
                )
                # The account is this user's now: its claim (``claim_account``) has done its job.
                # Only a link to a new account can follow a claim, so an update deletes nothing.
                _RELEASE_CLAIMS.rowcount(tx.connection, {"link_user": link.user_id})
            changed = _UPDATE_LINK.rowcount(
                tx.connection,
                {"link_user": link.user_id, **{f"new_{k}": v for k, v in values.items()}},
            )
            if not changed:
                tx.connection.execute(_INSERT_LINK, {"user_id": link.user_id, **values})
            if consumed is not None:
                self.drop_pending(consumed)

    def _claim(self, connection: Connection, link: UserLink) -> bool:
        """Refuse a new live link to an account another SCIM user holds, even from two concurrent
        runs; True when the account is new to this user's link (its old retired links let go).

        SQLite already serialises writers (BEGIN IMMEDIATE); on PostgreSQL a transaction-scoped
        advisory lock per account makes the check and the write one step.
        """
        assert link.gitlab_user_id is not None
        held = _ACCOUNT_OF_USER.scalar(connection, {"link_user": link.user_id})
        if held == link.gitlab_user_id:
            return False  # this user's already (links made before this rule stay as they are)
        self._refuse_if_held(connection, link.gitlab_user_id, link.user_id, link.gitlab_username)
        return True

    def _refuse_if_held(
        self, connection: Connection, gitlab_user_id: int, user_id: str, username: str | None
    ) -> None:
        """Raise :class:`LinkTaken` when another SCIM user's live link or unexpired claim holds
        the account. On PostgreSQL a transaction-scoped advisory lock per account makes this
        check and the caller's write one step; SQLite serialises writers already."""
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:space, :account)"),
                {"space": LINK_LOCK_SPACE, "account": gitlab_user_id},
            )
        other = _LIVE_HOLDER.scalar(connection, {"account": gitlab_user_id, "link_user": user_id})
        if other is not None:
            raise LinkTaken(f"GitLab account {username!r} is linked to another SCIM user")
        claim = _CLAIM_OF.first(connection, {"account": gitlab_user_id})
        if (
            claim is not None
            and claim["user_id"] != user_id
            and clock.aware(claim["claimed_at"]) > clock.now() - CLAIM_LIFETIME
        ):
            raise LinkTaken(
                f"GitLab account {username!r} is being linked to another SCIM user right now"
            )

    def claim_account(self, gitlab_user_id: int, user_id: str, gitlab_username: str) -> None:
        """Take an account for this SCIM user's run before the run's first write to it.

        Two runs can find one account adoptable while neither has saved its link; the claim,
        checked and written in one step, lets only one of them write to it. Raises
        :class:`LinkTaken` when another user's live link or unexpired claim holds it. Saving
        this user's link releases the claim.
        """
        with self.db.transaction(write=True) as tx:
            self._refuse_if_held(tx.connection, gitlab_user_id, user_id, gitlab_username)
            row = {"gitlab_user_id": gitlab_user_id, "user_id": user_id, "claimed_at": clock.now()}
            upsert(account_claims, [row], ["gitlab_user_id"], ["user_id", "claimed_at"])

    # -- Pending operator links ---------------------------------------------------------

    def add_pending(self, user_name: str, gitlab_user_id: int, gitlab_username: str) -> None:
        row = {
            "user_name_key": folded(user_name),
            "user_name": user_name,
            "gitlab_user_id": gitlab_user_id,
            "gitlab_username": gitlab_username,
            "created_at": clock.now(),
        }
        with self.db.transaction(write=True):
            upsert(
                pending_links, [row], ["user_name_key"], [k for k in row if k != "user_name_key"]
            )

    def pending(self, user_name: str) -> PendingLink | None:
        with self.db.transaction(write=False) as tx:
            row = _PENDING.first(tx.connection, {"user_name_key": folded(user_name)})
        return None if row is None else _pending(row)

    def pending_for_account(self, gitlab_user_id: int) -> PendingLink | None:
        with self.db.transaction(write=False) as tx:
            row = (
                tx.connection.execute(
                    select(pending_links).where(pending_links.c.gitlab_user_id == gitlab_user_id)
                )
                .mappings()
                .first()
            )
        return None if row is None else _pending(row)

    def drop_pending(self, user_name: str) -> bool:
        with self.db.transaction(write=True) as tx:
            removed = _DROP_PENDING.rowcount(tx.connection, {"user_name_key": folded(user_name)})
        return bool(removed)

    def all_pending(self) -> list[PendingLink]:
        with self.db.transaction(write=False) as tx:
            rows = (
                tx.connection.execute(select(pending_links).order_by(pending_links.c.user_name))
                .mappings()
                .all()
            )
        return [_pending(row) for row in rows]

    # -- Creating ------------------------------------------------------------------------

    def mark_create_started(self, user_id: str) -> datetime:
        """Remember, before asking GitLab, that the bridge is creating this user's account."""
        now = clock.now()
        with self.db.transaction(write=True) as tx:
            changed = _MARK.rowcount(tx.connection, {"link_user": user_id, "now": now})
            if not changed:
                tx.connection.execute(
                    _INSERT_LINK, {"user_id": user_id, "create_started_at": now, "updated_at": now}
                )
        return now

    def holder(self, gitlab_user_id: int, other_than: str) -> UserLink | None:
        """Another SCIM user's link to this account, live or retired (live ones first)."""
        with self.db.transaction(write=False) as tx:
            rows = (
                tx.connection.execute(
                    select(user_links).where(
                        user_links.c.gitlab_user_id == gitlab_user_id,
                        user_links.c.user_id != other_than,
                    )
                )
                .mappings()
                .all()
            )
        links = sorted((_link(row) for row in rows), key=lambda link: link.retired_at is not None)
        return links[0] if links else None

    def forget(self, user_id: str) -> None:
        with self.db.transaction(write=True) as tx:
            tx.connection.execute(delete(user_links).where(user_links.c.user_id == user_id))

    def to_operator(self, gitlab_user_ids: Iterable[int]) -> list[UserLink]:
        """Turn the created/adopted links to these accounts into operator links; returns them."""
        ids = list(dict.fromkeys(gitlab_user_ids))
        if not ids:
            return []
        condition = and_(
            user_links.c.gitlab_user_id.in_(ids),
            user_links.c.origin.is_distinct_from("operator"),
        )
        with self.db.transaction(write=True) as tx:
            rows = tx.connection.execute(select(user_links).where(condition)).mappings().all()
            if rows:
                tx.connection.execute(
                    update(user_links)
                    .where(condition)
                    .values(origin=OPERATOR, updated_at=clock.now())
                )
        return [_link(row).with_(origin=OPERATOR) for row in rows]

    def user_id_for(self, user_name_key: str) -> str | None:
        """The SCIM user whose folded userName is ``user_name_key``."""
        with self.db.transaction(write=False) as tx:
            found: str | None = tx.connection.execute(
                select(users.c.id).where(users.c.user_name_key == user_name_key)
            ).scalar()
        return found

    def listing(self) -> list[LinkListing]:
        """Every link with an account, and the SCIM user's name when it is still kept."""
        statement = (
            select(user_links, users.c.user_name)
            .select_from(user_links.outerjoin(users, users.c.id == user_links.c.user_id))
            .where(user_links.c.gitlab_user_id.is_not(None))
            .order_by(users.c.user_name, user_links.c.user_id)
        )
        with self.db.transaction(write=False) as tx:
            rows = tx.connection.execute(statement).mappings().all()
        return [LinkListing(_link(row), row["user_name"]) for row in rows]

    def all(self) -> list[UserLink]:
        with self.db.transaction(write=False) as tx:
            rows = tx.connection.execute(select(user_links)).mappings().all()
        return [_link(row) for row in rows]
