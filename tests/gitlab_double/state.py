"""The double's in-memory database: rows, id counters, and the lookups GitLab's models make.

All access goes through `State.lock` (the HTTP server is threaded).
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from tests.gitlab_double.ratelimit import RollingLimiter
from tests.gitlab_double.records import USER_TYPES
from tests.gitlab_double.records import EmailRecord
from tests.gitlab_double.records import GroupRecord
from tests.gitlab_double.records import IdentityRecord
from tests.gitlab_double.records import MailRecord
from tests.gitlab_double.records import MemberRecord
from tests.gitlab_double.records import TokenRecord
from tests.gitlab_double.records import UserRecord
from tests.gitlab_double.records import now_iso

OWNER = 50
ACCESS_LEVELS = {
    5: "Minimal Access",
    10: "Guest",
    15: "Planner",
    20: "Reporter",
    25: "Security Manager",
    30: "Developer",
    40: "Maintainer",
    50: "Owner",
}
USER_STATES = ("active", "blocked", "deactivated", "banned", "ldap_blocked")
# banned and ldap_blocked are "blocked?" states in GitLab's state machine (gitlab.md §1.5).
BLOCKED_STATES = ("blocked", "ldap_blocked", "banned")


@dataclass
class InstanceSettings:
    """What `/version` and `/metadata` report, and whether Admin Mode is on (gitlab.md §1.1)."""

    version: str = "18.6.0-ee"
    revision: str = "abc"
    enterprise: bool = True
    admin_mode: bool = False  # when on, admin rights need the token's `admin_mode` scope


class State:
    """Users, emails, identities, groups, members, tokens and the mails GitLab would send."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.settings = InstanceSettings()
        self.users: dict[int, UserRecord] = {}
        self.groups: dict[int, GroupRecord] = {}
        self.members: dict[int, dict[int, MemberRecord]] = {}
        self.tokens: dict[str, TokenRecord] = {}
        self.mails: list[MailRecord] = []
        self.member_delete_limiter = RollingLimiter(limit=60, window=60.0)
        self._user_ids = itertools.count(1)
        self._group_ids = itertools.count(1)
        self._email_ids = itertools.count(1)
        self._token_ids = itertools.count(1)

    # -- ids ---------------------------------------------------------------------------

    def next_user_id(self) -> int:
        return next(self._user_ids)

    def next_group_id(self) -> int:
        return next(self._group_ids)

    def next_email_id(self) -> int:
        return next(self._email_ids)

    # -- users -------------------------------------------------------------------------

    def user_by_username(self, username: str) -> UserRecord | None:
        """`User.by_username`: case-insensitive (gitlab.md §1.2)."""
        wanted = username.lower()
        for user in self.users.values():  # plain loops: the benchmarks scan thousands of users
            if user.username.lower() == wanted:
                return user
        return None

    def users_by_any_email(self, email: str) -> list[UserRecord]:
        """`User.by_any_email`: primary or confirmed secondary email, case-insensitive."""
        wanted = email.lower()
        return [
            u
            for u in self.users.values()
            if u.email.lower() == wanted
            or any(e.email.lower() == wanted and e.confirmed_at for e in u.emails)
        ]

    def email_row_exists(self, email: str) -> bool:
        """Whether any primary email or any secondary row (confirmed or not) holds it."""
        wanted = email.lower()
        for user in self.users.values():
            if user.email.lower() == wanted:
                return True
            for row in user.emails:
                if row.email.lower() == wanted:
                    return True
        return False

    def identity_owner(self, provider: str, extern_uid: str) -> UserRecord | None:
        """The user holding an identity; extern_uid is unique per provider, case-insensitively."""
        wanted = extern_uid.lower()
        for user in self.users.values():
            for identity in user.identities:
                if identity.provider == provider and identity.extern_uid.lower() == wanted:
                    return user
        return None

    def add_mail(self, user: UserRecord, kind: str, to: str | None = None) -> None:
        self.mails.append(MailRecord(to=to or user.email, kind=kind, user_id=user.id))

    def seed_user(
        self,
        username: str,
        email: str,
        *,
        name: str | None = None,
        is_admin: bool = False,
        state: str = "active",
        identities: Iterable[dict[str, str] | tuple[str, str]] = (),
        emails: Iterable[str] = (),
        last_activity_on: dt.date | None = None,
        user_type: str = "human",
    ) -> UserRecord:
        """A confirmed user, created without validation (tests set up what they need)."""
        if state not in USER_STATES:
            raise ValueError(f"unknown state {state!r}")
        if user_type not in USER_TYPES:
            raise ValueError(f"unknown user type {user_type!r}")
        user = UserRecord(
            id=self.next_user_id(),
            username=username,
            name=name or username,
            email=email,
            state=state,
            is_admin=is_admin,
            confirmed_at=now_iso(),
            last_activity_on=last_activity_on,
            user_type=user_type,
        )
        for identity in identities:
            provider, extern_uid = (
                (identity["provider"], identity["extern_uid"])
                if isinstance(identity, dict)
                else identity
            )
            user.identities.append(IdentityRecord(provider=provider, extern_uid=extern_uid))
        for secondary in emails:
            user.emails.append(EmailRecord(self.next_email_id(), secondary, now_iso()))
        self.users[user.id] = user
        return user

    def add_token(self, token: str, user_id: int, scopes: Iterable[str]) -> TokenRecord:
        record = TokenRecord(
            id=next(self._token_ids),
            token=token,
            user_id=user_id,
            name=f"token-{user_id}",
            scopes=list(scopes),
        )
        self.tokens[token] = record
        return record

    def remove_user(self, user: UserRecord) -> None:
        self.users.pop(user.id, None)
        for members in self.members.values():
            members.pop(user.id, None)
        for token in [t for t, r in self.tokens.items() if r.user_id == user.id]:
            del self.tokens[token]

    # -- groups ------------------------------------------------------------------------

    def full_path(self, group: GroupRecord) -> str:
        parts = [group.path]
        parent_id = group.parent_id
        while parent_id is not None:
            parent = self.groups[parent_id]
            parts.append(parent.path)
            parent_id = parent.parent_id
        return "/".join(reversed(parts))

    def full_name(self, group: GroupRecord) -> str:
        return " / ".join(g.name for g in [*reversed(self.ancestors(group)), group])

    def ancestors(self, group: GroupRecord) -> list[GroupRecord]:
        """Parent first, root last."""
        chain: list[GroupRecord] = []
        parent_id = group.parent_id
        while parent_id is not None:
            parent = self.groups[parent_id]
            chain.append(parent)
            parent_id = parent.parent_id
        return chain

    def group_by_ref(self, ref: str | int) -> GroupRecord | None:
        """`find_group`: a numeric id or a full path (case-insensitive, like `Routable`)."""
        text = str(ref)
        if text.isdigit():
            return self.groups.get(int(text))
        wanted = text.lower()
        return next((g for g in self.groups.values() if self.full_path(g).lower() == wanted), None)

    def children(self, parent_id: int | None) -> list[GroupRecord]:
        return [g for g in self.groups.values() if g.parent_id == parent_id]

    def seed_group(
        self, path: str, parent: GroupRecord | None = None, *, name: str | None = None
    ) -> GroupRecord:
        group = GroupRecord(
            id=self.next_group_id(),
            name=name or path,
            path=path,
            parent_id=parent.id if parent else None,
        )
        self.groups[group.id] = group
        self.members[group.id] = {}
        return group

    def remove_group(self, group: GroupRecord) -> None:
        for child in self.children(group.id):
            self.remove_group(child)
        self.groups.pop(group.id, None)
        self.members.pop(group.id, None)

    # -- members -----------------------------------------------------------------------

    def direct_member(self, group: GroupRecord, user_id: int) -> MemberRecord | None:
        return self.members[group.id].get(user_id)

    def inherited(self, group: GroupRecord, user_id: int) -> tuple[int, GroupRecord] | None:
        """The highest level the user holds in an ancestor of the group, and where."""
        best: tuple[int, GroupRecord] | None = None
        for ancestor in self.ancestors(group):
            member = self.members[ancestor.id].get(user_id)
            if member and (best is None or member.access_level > best[0]):
                best = (member.access_level, ancestor)
        return best

    def effective_level(self, group: GroupRecord, user_id: int) -> int | None:
        """Highest of direct and inherited levels (what `/members/all` reports)."""
        levels = [m.access_level for m in [self.members[group.id].get(user_id)] if m]
        inherited = self.inherited(group, user_id)
        if inherited:
            levels.append(inherited[0])
        return max(levels) if levels else None

    def sole_owned_groups(self, user_id: int) -> list[GroupRecord]:
        """Groups where the user is the only direct Owner (`User#solo_owned_groups`)."""
        owned = []
        for group in self.groups.values():
            owners = [m for m in self.members[group.id].values() if m.access_level == OWNER]
            if len(owners) == 1 and owners[0].user_id == user_id:
                owned.append(group)
        return owned
