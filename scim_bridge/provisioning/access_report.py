"""The access review: who holds what in each mapped GitLab group, why, and since when.

An auditor asks "who can reach what, and why?". The answer joins three sources: the store (which
Entra groups contain each user, and what the bridge manages, with the level it found in place),
the rules (which rule maps each Entra group), and GitLab (the levels actually held, and who else
holds one). This module joins them and yields :class:`Row`s as it goes, for the CLI to print:

1. **memberships**: for each mapped GitLab group, the SCIM users a grant or a managed membership
   ties to it, 100 at a time, with their actual levels looked up by ``user_ids``;
2. **orphans**: active accounts with an identity under the provider whose SCIM user is gone or
   was never there (GitLab's users, a page at a time);
3. **unexplained members**: direct members of mapped groups that no grant and no managed
   membership explains (the group's members, a page at a time), marked ``manual``.

Nothing is held beyond a chunk (100 SCIM users, or a page of GitLab's); since when the bridge
holds a membership at its level is stored with it (``Managed.since``). The report
reads GitLab only, through the same client as everything else, and audits each read like any
other call, as the actor ``access-report``. In dry-run it shows the store's side only.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import astuple
from dataclasses import dataclass
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from functools import partial
from itertools import islice
from typing import Literal
from typing import TypeVar

from scim_bridge import context
from scim_bridge.gitlab.access import LEVEL_NAMES
from scim_bridge.gitlab.api import GitLabApi
from scim_bridge.gitlab.members import held
from scim_bridge.gitlab.types import GitLabGroup
from scim_bridge.gitlab.types import GitLabUser
from scim_bridge.gitlab.types import Member
from scim_bridge.provisioning.access_plan import NO_ACCESS
from scim_bridge.provisioning.access_plan import decide
from scim_bridge.provisioning.journal import Journal
from scim_bridge.provisioning.reconciling import gitlab_trouble_is_retry
from scim_bridge.provisioning.rules import GroupMapper
from scim_bridge.settings import GroupsSettings
from scim_bridge.store.access_review import AccessRecords
from scim_bridge.store.access_review import Grant
from scim_bridge.store.access_review import Holder
from scim_bridge.store.gitlab_memberships import Managed

ACTOR = "access-report"
# SCIM users (and GitLab accounts) looked at per store query and per GitLab lookup.
CHUNK = 100
# The audit events of the report's reads are written once this many are kept.
EVENTS_PER_WRITE = 500

T = TypeVar("T")
Kind = Literal["membership", "orphan", "manual", "notice"]
FIELDS = ("kind", "scim_user", "scim_id", "gitlab_user", "gitlab_group", "level", "reason", "since")

DRY_RUN_NOTICE = (
    "dry-run: GitLab is not configured, so this shows the bridge's side only (the levels the "
    "rules grant); GitLab's side (orphans, unexplained members, actual levels) could not be read"
)
MANUAL = "manual: no rule explains it"


@dataclass(frozen=True)
class Row:
    """One line of the report; empty strings where a field does not apply."""

    kind: Kind
    scim_user: str = ""
    scim_id: str = ""
    gitlab_user: str = ""
    gitlab_group: str = ""
    level: str = ""
    reason: str = ""
    since: str = ""

    def values(self) -> tuple[str, ...]:
        """In the order of ``FIELDS``."""
        return astuple(self)


def notice(text: str) -> Row:
    return Row("notice", reason=text)


class AccessReport:
    """One report, narrowed to a GitLab group and/or a user if asked."""

    def __init__(
        self,
        records: AccessRecords,
        gitlab: GitLabApi,
        groups: GroupsSettings,
        provider: str,
        *,
        gitlab_group: str | None = None,
        user: str | None = None,
    ) -> None:
        self.records = records
        self.gitlab = gitlab
        self.rules = groups.rules
        self.mapper = GroupMapper(groups)
        self.provider = provider
        self.only_group = gitlab_group
        self.only_user = user
        self._journal = Journal()
        self._run = context.RequestContext(request_id=f"{ACTOR}-{uuid.uuid4().hex}", actor=ACTOR)
        self._scim_ids: set[str] | None = None
        self._accounts: set[int] | None = None

    @property
    def reads_gitlab(self) -> bool:
        """False in dry-run: only the store's side can be shown."""
        return not self.gitlab.dry_run

    def groups(self) -> list[str]:
        """The mapped GitLab groups the report covers (``gitlab_group`` matched as GitLab
        matches paths, case-insensitively)."""
        mapped = self.records.mapped_groups()
        if self.only_group is None:
            return mapped
        wanted = self.only_group.strip("/").lower()
        return [path for path in mapped if path.lower() == wanted]

    # -- The three sections ----------------------------------------------------------------

    def memberships(self) -> Iterator[Row]:
        """Every membership held by a provisioned user in a mapped group, with its reason."""
        for path in self.groups():
            yield from self._reading(partial(self._group_memberships, path))

    def orphans(self) -> Iterator[Row]:
        """Active accounts with an identity under the provider and no SCIM user (any more)."""
        if not self.reads_gitlab or self.only_group is not None:
            return
        yield from self._reading(self._orphans)

    def unexplained(self) -> Iterator[Row]:
        """Direct members of mapped groups that no grant or managed membership explains."""
        if not self.reads_gitlab:
            return
        for path in self.groups():
            yield from self._reading(partial(self._group_unexplained, path))

    # -- Memberships -------------------------------------------------------------------------

    def _group_memberships(self, path: str) -> Iterator[Row]:
        group = self._group(path)
        if self.reads_gitlab and group is None:
            yield notice(f"GitLab group {path} does not exist: no membership in it is held")
            return
        only = self._only_scim_ids()
        after: str | None = None
        while True:
            holders = self.records.holders(path, after=after, limit=CHUNK, only=only)
            if not holders:
                return
            after = holders[-1].user_id
            direct, effective = self._levels(group, holders)
            for holder in holders:
                row = self._membership(path, holder, direct, effective)
                if row is not None:
                    yield row
            if len(holders) < CHUNK:
                return

    def _levels(
        self, group: GitLabGroup | None, holders: list[Holder]
    ) -> tuple[dict[int, Member], dict[int, Member]]:
        """The direct and the effective membership of each holder's account that GitLab has,
        looked up as the reconciler looks them up (``gitlab.members.held``)."""
        accounts = sorted({h.gitlab_user_id for h in holders if h.gitlab_user_id})
        if group is None or not accounts:
            return {}, {}
        return held(self.gitlab.members, group.id, accounts)

    def _membership(
        self,
        path: str,
        holder: Holder,
        direct: dict[int, Member],
        effective: dict[int, Member],
    ) -> Row | None:
        desired = max((grant.level for grant in holder.grants), default=NO_ACCESS)
        granted = self._grants(path, holder.grants)
        managed = holder.managed
        account = holder.gitlab_user_id
        row = Row(
            "membership",
            scim_user=_scim_user(holder.user_name, holder.live),
            scim_id=holder.user_id,
            gitlab_user=holder.gitlab_username or "",
            gitlab_group=path,
        )
        if not self.reads_gitlab:
            level = max(desired, managed.level if managed else NO_ACCESS)
            if level == NO_ACCESS:
                return None
            reason = self._reason(managed, granted, desired, direct=None)
            since = managed.since if managed is not None else None
            return replace(row, level=_level(level), reason=reason, since=_iso(since))
        if account is None:
            return None  # no account yet: nothing is held
        member = direct.get(account)
        inherited = member is None
        if inherited:
            member = effective.get(account)
        if member is None:
            return None  # granted, not (yet) held: `scim-bridge reconcile` shows it as drift
        if inherited:
            reason = f"inherited from a parent group; {granted}" if granted else "inherited"
        else:
            reason = self._reason(managed, granted, desired, direct=member.access_level)
        decision = decide(
            desired,
            managed,
            direct[account].access_level if account in direct else None,
            effective[account].access_level if account in effective else None,
        )
        if decision.action != "none":
            wanted = "no direct membership"
            if decision.action == "set" and decision.level is not None:
                wanted = _level(decision.level)
            reason += f"; not yet as the rules say ({wanted}): see `scim-bridge reconcile`"
        since = managed.since if managed is not None and not inherited else None
        return replace(
            row,
            level=_level(member.access_level),
            reason=reason,
            since=_iso(since) or _iso(member.created_at),
        )

    def _reason(
        self, managed: Managed | None, granted: str, desired: int, *, direct: int | None
    ) -> str:
        """Why the membership is held: the grants, a level found in place and kept, or one
        raised from it."""
        if managed is not None and managed.prior is not None:
            prior = _level(managed.prior)
            return f"raised from {prior} by {granted}" if granted else f"in place at {prior}"
        if managed is None and direct is not None and direct >= desired:
            kept = "in place before the bridge (level kept)"
            return f"{kept}; {granted}" if granted else kept
        return granted or "no grant any more: the bridge removes it"

    def _grants(self, path: str, grants: list[Grant]) -> str:
        """``Entra group "Devs" (rule 1) → developer; ...``, the highest level first."""
        return "; ".join(self._grant(path, grant) for grant in grants)

    def _grant(self, path: str, grant: Grant) -> str:
        level = _level(grant.level)
        if grant.created_by_bridge:
            how = "its own group, unmapped = create"
        else:
            numbers = [
                str(self.rules.index(rule) + 1)
                for rule in self.mapper.matching_rules(grant.display_name, grant.external_id)
                if rule.gitlab_group.lower() == path.lower()
            ]
            how = f"rule {', '.join(numbers)}" if numbers else "a rule since changed"
        return f'Entra group "{grant.display_name}" ({how}) → {level}'

    # -- Orphans -----------------------------------------------------------------------------

    def _orphans(self) -> Iterator[Row]:
        accounts: Iterable[GitLabUser]
        if self.only_user is None:
            accounts = self.gitlab.users.each_with_identity(self.provider)
        else:
            accounts = [a for a in self._only_accounts_in_gitlab() if a.state == "active"]
            accounts = [a for a in accounts if a.identity(self.provider) is not None]
        for page in _chunks(accounts, CHUNK):
            linked = self.records.linked_users([account.id for account in page])
            uids = {a.id: a.identity(self.provider) for a in page}
            carried = self.records.live_external_ids(
                [uid.extern_uid for uid in uids.values() if uid is not None]
            )
            for account in page:
                identity = uids[account.id]
                assert identity is not None
                link = linked.get(account.id)
                if (link is not None and link.live) or identity.extern_uid in carried:
                    continue
                said = f'identity {self.provider} "{identity.extern_uid}"; '
                if link is not None:
                    reason, since = said + "its SCIM user was deleted", _iso(link.retired_at)
                else:
                    reason, since = said + "no SCIM user was ever linked to it", ""
                yield Row(
                    "orphan",
                    scim_user=_scim_user(link.user_name, False) if link else "",
                    scim_id=link.user_id if link else "",
                    gitlab_user=account.username,
                    reason=reason,
                    since=since or _iso(account.created_at),
                )

    # -- Unexplained members -----------------------------------------------------------------

    def _group_unexplained(self, path: str) -> Iterator[Row]:
        group = self._group(path)
        if group is None:
            return
        members: Iterable[Member]
        if self.only_user is None:
            members = self.gitlab.members.each_direct(group.id)
        else:
            members = self.gitlab.members.list_direct(group.id, sorted(self._only_accounts()))
        for page in _chunks(members, CHUNK):
            explained = self.records.explained(path, [m.user_id for m in page])
            unexplained = [m for m in page if m.user_id not in explained]
            linked = self.records.linked_users([m.user_id for m in unexplained])
            for member in unexplained:
                link = linked.get(member.user_id)
                yield Row(
                    "manual",
                    scim_user=_scim_user(link.user_name, link.live) if link else "",
                    scim_id=link.user_id if link else "",
                    gitlab_user=member.username or str(member.user_id),
                    gitlab_group=path,
                    level=_level(member.access_level),
                    reason=MANUAL,
                    since=_iso(member.created_at),
                )

    # -- Helpers -----------------------------------------------------------------------------

    def _group(self, path: str) -> GitLabGroup | None:
        if not self.reads_gitlab:
            return None
        return self.gitlab.groups.find(path)

    def _only_scim_ids(self) -> set[str] | None:
        if self.only_user is None:
            return None
        if self._scim_ids is None:
            self._scim_ids, self._accounts = self.records.matching(self.only_user)
        return self._scim_ids

    def _only_accounts(self) -> set[int]:
        """The accounts ``--user`` designates: linked ones, and GitLab's own by that username."""
        self._only_scim_ids()
        assert self._accounts is not None
        if self.reads_gitlab:
            assert self.only_user is not None
            account = self.gitlab.users.find_by_username(self.only_user)
            if account is not None:
                self._accounts.add(account.id)
        return self._accounts

    def _only_accounts_in_gitlab(self) -> list[GitLabUser]:
        found = []
        for account in sorted(self._only_accounts()):
            found.append(self.gitlab.users.get(account))
        return found

    def _reading(self, rows: Callable[[], Iterator[Row]]) -> Iterator[Row]:
        """Run a section's generator with its GitLab reads audited as ``access-report``, written
        ``EVENTS_PER_WRITE`` at a time (and the rest when the section ends); GitLab trouble
        comes out as ``Retry``."""
        with context.bound(self._run):
            try:
                with self._journal.kept(), gitlab_trouble_is_retry():
                    produced = rows()
                    for row in produced:
                        self._write_events(keep=EVENTS_PER_WRITE - 1)
                        yield row
            finally:
                self._write_events(keep=0)

    def _write_events(self, *, keep: int) -> None:
        self._journal.spill(self.records.db, per_transaction=EVENTS_PER_WRITE, keep=keep)


def _level(level: int) -> str:
    """``developer``, as operators write levels; the number for a level without a name."""
    return LEVEL_NAMES.get(level, str(level))


def _scim_user(name: str | None, live: bool) -> str:
    if name is None:
        return "(deleted)" if not live else ""
    return name if live else f"{name} (deleted)"


def _iso(value: datetime | str | None) -> str:
    """UTC, to the second: ``2024-05-01T12:00:00Z``; empty when unknown."""
    if not value:
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


__all__ = ["FIELDS", "AccessReport", "Row"]
