"""In-memory fakes of everything the three reconcilers take: no HTTP, no database, no sleeping.

- :class:`FakeGitLab` satisfies ``GitLabApi``: users, groups and members kept in dicts, every call
  recorded in ``calls`` as ``(method, *arguments)``, and the bridge's own errors
  (``scim_bridge.gitlab.errors``) raised where GitLab answers with one (reference/gitlab.md:
  409 on a taken email or username, 404 on a missing user or group, 400 on a direct level below an
  inherited one, 409 on deleting a sole group owner). With ``dry_run=True`` it stands in for the
  planner: calls are recorded, and nothing changes.
- :class:`FakeLinks`, :class:`FakeMemberships` and :class:`FakeGroupTargets` satisfy the store
  Protocols (``UserLinks``, ``GitLabMemberships``, ``GroupTargets``) with the same unit-of-work
  semantics, kept in dicts.
- :class:`AuditLog` records audit events; :func:`protector` is the real ``Protector`` over a fake
  list of protected accounts; :func:`settings` builds settings through the real schema.
"""

from __future__ import annotations

from collections.abc import Collection
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from typing import Any

from scim_bridge.gitlab.api import GitLabApi
from scim_bridge.gitlab.errors import ConflictError
from scim_bridge.gitlab.errors import InvalidError
from scim_bridge.gitlab.errors import NotFoundError
from scim_bridge.gitlab.types import GitLabGroup
from scim_bridge.gitlab.types import GitLabUser
from scim_bridge.gitlab.types import Identity
from scim_bridge.gitlab.types import Member
from scim_bridge.gitlab.types import Moderation
from scim_bridge.provisioning.protection import Protector
from scim_bridge.settings import Settings
from scim_bridge.settings import settings_from_toml
from scim_bridge.store.gitlab_memberships import GITLAB_GROUP_JOB
from scim_bridge.store.gitlab_memberships import GitLabMemberships
from scim_bridge.store.gitlab_memberships import Managed
from scim_bridge.store.gitlab_memberships import MembershipState
from scim_bridge.store.group_targets import AuditEvent
from scim_bridge.store.group_targets import GroupTargets
from scim_bridge.store.group_targets import Target
from scim_bridge.store.jobs import job_key
from scim_bridge.store.links import LinkTaken
from scim_bridge.store.links import PendingLink
from scim_bridge.store.links import UserLink
from scim_bridge.store.links import UserLinks
from scim_bridge.store.protection import ProtectedAccount
from scim_bridge.store.protection import ProtectedAccounts

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
PROVIDER = "openid_connect"  # the default [gitlab] identity_provider

Call = tuple[Any, ...]
# Calls that change nothing in GitLab.
READS = frozenset(
    {
        "users.get",
        "users.find_by_identity",
        "users.find_by_username",
        "users.find_by_email",
        "users.is_human",
        "users.admins",
        "groups.get",
        "groups.find",
        "members.list_direct",
        "members.list_all",
    }
)
MODERATED_STATE: dict[Moderation, str] = {
    "block": "blocked",
    "unblock": "active",
    "deactivate": "deactivated",
    "activate": "active",
    "ban": "banned",
    "unban": "active",
}


def settings(**sections: dict[str, Any]) -> Settings:
    """Settings as the operator's file gives them, validated by the real schema."""
    return settings_from_toml(sections)


class _Recorder:
    def __init__(self, gitlab: FakeGitLab, area: str) -> None:
        self._gitlab = gitlab
        self._area = area

    def _call(self, method: str, *arguments: Any) -> bool:
        """Record the call; False when it is a write that dry-run must not make."""
        name = f"{self._area}.{method}"
        self._gitlab.calls.append((name, *arguments))
        return name in READS or not self._gitlab.dry_run


class FakeUsers(_Recorder):
    def __init__(self, gitlab: FakeGitLab) -> None:
        super().__init__(gitlab, "users")
        self.accounts: dict[int, GitLabUser] = {}
        self.sole_owners: set[int] = set()  # deleting these is GitLab's 409
        self.internal: set[str] = set()  # usernames GitLab's humans filter leaves out

    def add(self, username: str, **fields: Any) -> GitLabUser:
        """An account that exists in GitLab before the test starts."""
        values: dict[str, Any] = {
            "email": f"{username}@example.com",
            "name": username.title(),
            "state": "active",
            "is_admin": False,
            "created_at": "2020-01-01T00:00:00Z",
        }
        values.update(fields)
        account = GitLabUser(id=self._gitlab.new_id(), username=username, **values)
        self.accounts[account.id] = account
        return account

    def _taken(self, email: str | None, username: str | None, other_than: int | None) -> None:
        for account in self.accounts.values():
            if account.id == other_than:
                continue
            if email is not None and account.email.lower() == email.lower():
                raise ConflictError("Email has already been taken")
            if username is not None and account.username.lower() == username.lower():
                raise ConflictError("Username has already been taken")

    def get(self, user_id: int) -> GitLabUser:
        self._call("get", user_id)
        if user_id not in self.accounts:
            raise NotFoundError("404 User Not Found", status=404)
        return self.accounts[user_id]

    def find_by_identity(self, provider: str, extern_uid: str) -> GitLabUser | None:
        self._call("find_by_identity", provider, extern_uid)
        wanted = Identity(provider, extern_uid)
        return next((a for a in self.accounts.values() if wanted in a.identities), None)

    def find_by_username(self, username: str) -> GitLabUser | None:
        self._call("find_by_username", username)
        return self._named(username)

    def _named(self, username: str) -> GitLabUser | None:
        lowered = username.lower()
        return next((a for a in self.accounts.values() if a.username.lower() == lowered), None)

    def find_by_email(self, email: str) -> GitLabUser | None:
        self._call("find_by_email", email)
        lowered = email.lower()
        return next((a for a in self.accounts.values() if a.email.lower() == lowered), None)

    def is_human(self, username: str) -> bool:
        self._call("is_human", username)
        account = self._named(username)
        return account is not None and not account.bot and username not in self.internal

    def admins(self) -> list[GitLabUser]:
        self._call("admins")
        return [a for a in self.accounts.values() if a.is_admin]

    def create(
        self, *, username: str, email: str, name: str, provider: str | None, extern_uid: str | None
    ) -> GitLabUser:
        made = self._call("create", username, email, name, provider, extern_uid)
        self._taken(email, None, None)  # GitLab checks the email first (gitlab.md §1.2)
        self._taken(None, username, None)
        identities = (Identity(provider, extern_uid),) if provider and extern_uid else ()
        held = {
            (i.provider, i.extern_uid.lower()) for a in self.accounts.values() for i in a.identities
        }
        if identities and (provider, str(extern_uid).lower()) in held:
            # GitLab's validation of the identity it builds with the user (gitlab.md §1.2).
            taken = {"identities.extern_uid": ["has already been taken"]}
            raise InvalidError("identities.extern_uid: has already been taken", errors=taken)
        account = GitLabUser(
            id=self._gitlab.new_id() if made else 0,
            username=username,
            email=email,
            name=name,
            state="active",
            is_admin=False,
            identities=identities,
            created_at=NOW.isoformat(),
        )
        if made:
            self.accounts[account.id] = account
        return account

    def update(
        self, user_id: int, *, name: str | None = None, username: str | None = None
    ) -> GitLabUser:
        changes = {k: v for k, v in {"name": name, "username": username}.items() if v is not None}
        made = self._call("update", user_id, changes)
        if user_id not in self.accounts:
            raise NotFoundError("404 User Not Found", status=404)
        account = self.accounts[user_id]
        self._taken(None, username, user_id)
        account = replace(account, name=name or account.name, username=username or account.username)
        if made:
            self.accounts[user_id] = account
        return account

    def set_identity(self, user_id: int, provider: str, extern_uid: str) -> None:
        if self._call("set_identity", user_id, provider, extern_uid):
            wanted = Identity(provider, extern_uid)
            if any(wanted in a.identities for a in self.accounts.values() if a.id != user_id):
                raise ConflictError("Identity has already been taken")
            account = self.accounts[user_id]
            others = tuple(i for i in account.identities if i.provider != provider)
            self.accounts[user_id] = replace(account, identities=(*others, wanted))

    def change_email(self, user_id: int, email: str) -> None:
        if self._call("change_email", user_id, email):
            self._taken(email, None, user_id)
            self.accounts[user_id] = replace(self.accounts[user_id], email=email)

    def moderate(self, user_id: int, action: Moderation) -> None:
        self._moderated(user_id, action, "moderate", user_id, action)

    def _moderated(self, user_id: int, action: Moderation, *call: Any) -> None:
        """Record ``call``; unless in dry-run, the account takes the state ``action`` leads to."""
        if self._call(*call):
            if user_id not in self.accounts:
                raise NotFoundError("404 User Not Found", status=404)
            state = MODERATED_STATE[action]
            self.accounts[user_id] = replace(self.accounts[user_id], state=state)

    def block(self, user_id: int) -> None:
        self._moderated(user_id, "block", "block", user_id)

    def delete(self, user_id: int, *, hard: bool = False) -> None:
        if self._call("delete", user_id, hard):
            if user_id not in self.accounts:
                raise NotFoundError("404 User Not Found", status=404)
            if user_id in self.sole_owners and not hard:
                raise ConflictError("User cannot be removed while is the sole-owner of a group")
            del self.accounts[user_id]


class FakeGroups(_Recorder):
    def __init__(self, gitlab: FakeGitLab) -> None:
        super().__init__(gitlab, "groups")
        self.by_id: dict[int, GitLabGroup] = {}

    def add(self, full_path: str) -> GitLabGroup:
        """A group (and its missing parents) that exists before the test starts."""
        parent_path, _, slug = full_path.rpartition("/")
        parent = self._lookup(parent_path) or self.add(parent_path) if parent_path else None
        group = GitLabGroup(self._gitlab.new_id(), full_path, slug, parent.id if parent else None)
        self.by_id[group.id] = group
        return group

    def _lookup(self, full_path: str) -> GitLabGroup | None:
        lowered = full_path.lower()  # GitLab compares paths case-insensitively
        return next((g for g in self.by_id.values() if g.full_path.lower() == lowered), None)

    def get(self, id_or_path: int | str) -> GitLabGroup:
        self._call("get", id_or_path)
        if isinstance(id_or_path, int):
            group = self.by_id.get(id_or_path)
        else:
            group = self._lookup(id_or_path)
        if group is None:
            raise NotFoundError("404 Group Not Found", status=404)
        return group

    def find(self, full_path: str) -> GitLabGroup | None:
        self._call("find", full_path)
        return self._lookup(full_path)

    def create(
        self, *, name: str, path: str, parent_id: int | None, visibility: str = "private"
    ) -> GitLabGroup:
        made = self._call("create", name, path, parent_id)
        parent = self.by_id[parent_id].full_path + "/" if parent_id is not None else ""
        if self._lookup(parent + path) is not None:
            raise InvalidError(f"Failed to save group {{:path=>[{path!r} has already been taken]}}")
        group = GitLabGroup(self._gitlab.new_id() if made else 0, parent + path, name, parent_id)
        if made:
            self.by_id[group.id] = group
        return group


class FakeMembers(_Recorder):
    def __init__(self, gitlab: FakeGitLab) -> None:
        super().__init__(gitlab, "members")
        self.direct: dict[int, dict[int, int]] = {}  # group id → GitLab user id → level

    def _of(self, group_id: int) -> dict[int, int]:
        if group_id not in self._gitlab.groups.by_id:
            raise NotFoundError("404 Group Not Found", status=404)
        return self.direct.setdefault(group_id, {})

    def _inherited(self, group_id: int, user_id: int) -> int | None:
        parent = self._gitlab.groups.by_id[group_id].parent_id
        levels = []
        while parent is not None:
            levels.append(self._of(parent).get(user_id))
            parent = self._gitlab.groups.by_id[parent].parent_id
        return max((level for level in levels if level is not None), default=None)

    def list_direct(self, group_id: int, user_ids: list[int] | None = None) -> list[Member]:
        self._call("list_direct", group_id, user_ids)
        members = self._of(group_id)
        wanted = members if user_ids is None else [u for u in user_ids if u in members]
        return [Member(u, members[u]) for u in wanted]

    def list_all(self, group_id: int, user_ids: list[int] | None = None) -> list[Member]:
        self._call("list_all", group_id, user_ids)
        members = self._of(group_id)
        found = []
        for user in self._gitlab.users.accounts if user_ids is None else user_ids:
            levels = [members.get(user), self._inherited(group_id, user)]
            level = max((lv for lv in levels if lv is not None), default=None)
            if level is not None:
                found.append(Member(user, level))
        return found

    def add_many(self, group_id: int, user_ids: list[int], access_level: int) -> None:
        """GitLab's upsert; a direct level below an inherited one is refused (400), and then
        (as in a multi-add answered ``status: error``) the whole call is."""
        if not self._call("add_many", group_id, list(user_ids), access_level):
            return
        members = self._of(group_id)
        for user in user_ids:
            inherited = self._inherited(group_id, user)
            if inherited is not None and inherited > access_level:
                raise InvalidError(
                    f"user {user}: access level should be greater than or equal to "
                    f"{inherited} inherited membership from group"
                )
        members.update(dict.fromkeys(user_ids, access_level))

    def update(self, group_id: int, user_id: int, access_level: int) -> None:
        if self._call("update", group_id, user_id, access_level):
            members = self._of(group_id)
            if user_id not in members:
                raise NotFoundError("404 Member Not Found", status=404)
            members[user_id] = access_level

    def remove(self, group_id: int, user_id: int) -> None:
        if self._call("remove", group_id, user_id):
            self._of(group_id).pop(user_id, None)  # already gone is success


class FakeGitLab:
    """``GitLabApi`` in dicts. ``dry_run``: calls are recorded, none changes anything."""

    def __init__(self, *, dry_run: bool = False) -> None:
        self.dry_run = dry_run
        self.calls: list[Call] = []
        self._ids = 100
        self.users = FakeUsers(self)
        self.groups = FakeGroups(self)
        self.members = FakeMembers(self)

    def new_id(self) -> int:
        self._ids += 1
        return self._ids

    def writes(self) -> list[Call]:
        """The calls that change something in GitLab, in order."""
        return [call for call in self.calls if call[0] not in READS]

    def called(self, method: str) -> list[Call]:
        return [call for call in self.calls if call[0] == method]


class AuditLog:
    """The reconcilers' ``audit`` callable: (action, target, detail), in order."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def __call__(self, action: str, target: str | None, detail: dict[str, Any] | None) -> None:
        self.events.append(AuditEvent(action, target, detail))

    def actions(self) -> list[str]:
        return [event.action for event in self.events]


class FakeProtectedAccounts(ProtectedAccounts):
    """The stored list of protected accounts, in memory (never resolved until asked)."""

    def __init__(self) -> None:
        self.accounts: list[ProtectedAccount] = []
        self.resolved: datetime | None = None

    def all(self) -> list[ProtectedAccount]:
        return list(self.accounts)

    def resolved_at(self) -> datetime | None:
        return self.resolved

    def replace(self, accounts: Iterable[ProtectedAccount]) -> None:
        self.accounts = list(accounts)
        self.resolved = datetime.now(UTC)


def protector(gitlab: GitLabApi, names: tuple[str, ...] = ("root",)) -> Protector:
    """The real ``Protector``: administrators and ``names`` resolved from ``gitlab``."""
    return Protector(gitlab, FakeProtectedAccounts(), names)


class FakeLinks:
    """``UserLinks``: one live link per GitLab account, pending operator links by userName."""

    def __init__(self) -> None:
        self.links: dict[str, UserLink] = {}
        self.pendings: dict[str, PendingLink] = {}  # by userName, lower case

    def get(self, user_id: str) -> UserLink | None:
        return self.links.get(user_id)

    def save(self, link: UserLink, *, consumed: str | None = None) -> None:
        if link.gitlab_user_id is not None and link.retired_at is None:
            other = self.holder(link.gitlab_user_id, link.user_id)
            if other is not None and other.retired_at is None:
                raise LinkTaken(f"GitLab account {link.gitlab_username!r} is linked to another")
        self.links[link.user_id] = link
        if consumed is not None:
            self.pendings.pop(consumed.lower(), None)

    def pending(self, user_name: str) -> PendingLink | None:
        return self.pendings.get(user_name.lower())

    def pending_for_account(self, gitlab_user_id: int) -> PendingLink | None:
        found = (p for p in self.pendings.values() if p.gitlab_user_id == gitlab_user_id)
        return next(found, None)

    def holder(self, gitlab_user_id: int, other_than: str) -> UserLink | None:
        held = [
            link
            for link in self.links.values()
            if link.gitlab_user_id == gitlab_user_id and link.user_id != other_than
        ]
        held.sort(key=lambda link: link.retired_at is not None)  # live ones first
        return held[0] if held else None

    def mark_create_started(self, user_id: str) -> datetime:
        link = self.links.get(user_id) or UserLink(user_id)
        self.links[user_id] = link.with_(create_started_at=NOW)
        return NOW

    def claim_account(self, gitlab_user_id: int, user_id: str, gitlab_username: str) -> None:
        other = self.holder(gitlab_user_id, user_id)
        if other is not None and other.retired_at is None:
            raise LinkTaken(f"GitLab account {gitlab_username!r} is linked to another")

    def all(self) -> list[UserLink]:
        return list(self.links.values())


class FakeMemberships:
    """``GitLabMemberships``: marks, granted levels and managed memberships per GitLab group.

    ``granted`` stands for the SCIM side (group members times their groups' targets): GitLab path →
    SCIM user id → level; accounts come from the links.
    """

    def __init__(self, links: FakeLinks, scim_members: dict[str, list[str]] | None = None) -> None:
        self.links = links
        self.scim_members = scim_members if scim_members is not None else {}
        self.granted: dict[str, dict[str, int]] = {}
        self.marks: dict[str, dict[str, datetime]] = {}
        self.managed: dict[str, dict[int, Managed]] = {}

    def mark(self, gitlab_group: str, user_ids: Iterable[str]) -> list[str]:
        users = list(dict.fromkeys(user_ids))
        self.marks.setdefault(gitlab_group, {}).update(dict.fromkeys(users, NOW))
        return [job_key(GITLAB_GROUP_JOB, gitlab_group)] if users else []

    def marked(self, gitlab_group: str, limit: int) -> dict[str, datetime]:
        marks = self.marks.get(gitlab_group, {})
        return {user: marks[user] for user in sorted(marks)[:limit]}

    def _accounts(self, user_ids: Iterable[str]) -> dict[str, int]:
        links = (self.links.get(user) for user in user_ids)
        return {
            link.user_id: link.gitlab_user_id
            for link in links
            if link is not None and link.gitlab_user_id is not None
        }

    def of_users(self, gitlab_group: str, user_ids: list[str]) -> MembershipState:
        granted = self.granted.get(gitlab_group, {})
        accounts = self._accounts(user_ids)
        managed = self.managed.get(gitlab_group, {})
        return MembershipState(
            {user: granted[user] for user in user_ids if user in granted},
            accounts,
            {a: managed[a] for a in accounts.values() if a in managed},
        )

    def everyone(self, gitlab_group: str) -> MembershipState:
        managed = self.managed.get(gitlab_group, {})
        users = [
            link.user_id
            for link in self.links.all()
            if link.user_id in self.granted.get(gitlab_group, {}) or link.gitlab_user_id in managed
        ]
        state = self.of_users(gitlab_group, users)
        state.managed.update(managed)
        state.usernames.update(
            {
                link.gitlab_user_id: link.gitlab_username or ""
                for link in self.links.all()
                if link.gitlab_user_id
            }
        )
        return state

    def settle(
        self,
        gitlab_group: str,
        managed: Mapping[int, Managed | None],
        settled: Mapping[str, datetime],
    ) -> None:
        remembered = self.managed.setdefault(gitlab_group, {})
        for account, remember in managed.items():
            remembered.pop(account, None)
            if remember is not None:
                remembered[account] = remember
        marks = self.marks.get(gitlab_group, {})
        for user, marked_at in settled.items():
            if user in marks and marks[user] <= marked_at:
                del marks[user]

    def concerned_groups(self) -> list[str]:
        return sorted({*self.granted, *(g for g, m in self.managed.items() if m)})

    def note_user_linked(self, user_id: str) -> list[str]:
        keys = []
        for gitlab_group, users in self.granted.items():
            if user_id in users:
                keys += self.mark(gitlab_group, [user_id])
        return keys


class FakeGroupTargets:
    """``GroupTargets``: the mappings last recorded, the SCIM members and their noted changes.

    A remap marks users through ``memberships`` as the store does: every member in a
    ``retargeted`` GitLab group, the changed members in a ``kept`` one.
    """

    def __init__(self, memberships: FakeMemberships) -> None:
        self.memberships = memberships
        self.mappings: dict[str, dict[str, Target]] = {}
        self.changes: dict[str, list[str]] = {}  # SCIM group id → changed members, noted
        self.display_names: dict[str, str] = {}
        self.events: list[AuditEvent] = []
        self.created_ids: dict[str, int] = {}

    def recorded(self, group_id: str) -> dict[str, Target]:
        return dict(self.mappings.get(group_id, {}))

    def record_created(self, gitlab_group: str, gitlab_group_id: int) -> None:
        self.created_ids[gitlab_group] = gitlab_group_id

    def created_id(self, gitlab_group: str) -> int | None:
        return self.created_ids.get(gitlab_group)

    def remap(
        self,
        group_id: str,
        *,
        retargeted: Collection[str],
        kept: Collection[str],
        targets: Mapping[str, Target] | None,
        event: AuditEvent | None,
    ) -> list[str]:
        changed = list(dict.fromkeys(self.changes.pop(group_id, [])))
        everyone = list(dict.fromkeys([*self.memberships.scim_members.get(group_id, []), *changed]))
        follow_up: list[str] = []
        for path in sorted({*retargeted, *kept}):
            follow_up += self.memberships.mark(path, everyone if path in retargeted else changed)
        if targets is not None:
            self.mappings[group_id] = dict(targets)
        if event is not None:
            self.events.append(event)
        return follow_up

    def created_for(self, gitlab_group: str) -> str | None:
        for group_id, mapping in self.mappings.items():
            target = mapping.get(gitlab_group)
            if target is not None and target.created_by_bridge:
                return self.display_names.get(group_id)
        return None


def _typed(
    gitlab: FakeGitLab, links: FakeLinks, memberships: FakeMemberships, targets: FakeGroupTargets
) -> tuple[GitLabApi, UserLinks, GitLabMemberships, GroupTargets]:
    """mypy checks here that each fake satisfies its Protocol."""
    return gitlab, links, memberships, targets
