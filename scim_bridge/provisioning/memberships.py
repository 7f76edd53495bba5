"""Entra groups to GitLab group memberships, in two level-triggered steps.

1. :class:`ScimGroupReconciler` (job ``scim_group:<id>``): which GitLab groups a SCIM group maps
   to now (rules, or a group the bridge creates), compared with what it mapped to last time; the
   members whose grant may have changed are marked in each GitLab group concerned.
2. :class:`GitLabGroupReconciler` (job ``gitlab_group:<path>``): for the marked users of one GitLab
   group, the desired level (the highest among the mapped Entra groups that contain them) against
   GitLab's direct and inherited memberships, decided by :func:`access_plan.decide`. Adds and level
   changes go out batched per level (100 users per call); removals one by one until GitLab's
   60-per-minute limit answers 429, then the rest waits for ``Retry-After``.

Work is per marked user, so adding one member to a group of 50,000 costs one user's worth.

Each batch of users writes one ``reconcile.memberships`` audit event that names every user whose
membership it changed, by SCIM id and GitLab user id (:class:`BatchReport`), as soon as GitLab has
confirmed each call: a run that GitLab stops part-way still records what it did.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Any
from typing import Protocol

from sqlalchemy import Connection
from sqlalchemy import delete
from sqlalchemy import select

from scim_bridge import clock
from scim_bridge.gitlab.access import LEVEL_NAMES
from scim_bridge.gitlab.access import access_level_name
from scim_bridge.gitlab.api import GitLabApi
from scim_bridge.gitlab.errors import InvalidError
from scim_bridge.gitlab.members import chunks as member_chunks
from scim_bridge.gitlab.types import GitLabGroup
from scim_bridge.provisioning.access_plan import Decision
from scim_bridge.provisioning.access_plan import Managed
from scim_bridge.provisioning.access_plan import decide
from scim_bridge.provisioning.reconciler import Deadline
from scim_bridge.provisioning.reconciler import Outcome
from scim_bridge.provisioning.reconciler import Rejected
from scim_bridge.provisioning.reconciler import Retry
from scim_bridge.provisioning.reconciler import gitlab_trouble_is_retry
from scim_bridge.provisioning.rules import GroupMapper
from scim_bridge.provisioning.rules import created_group_candidates
from scim_bridge.provisioning.rules import full_path
from scim_bridge.settings import GroupsSettings
from scim_bridge.store import jobs
from scim_bridge.store import memberships as member_rows
from scim_bridge.store.db import Database
from scim_bridge.store.db import current_transaction
from scim_bridge.store.db import upsert
from scim_bridge.store.schema import group_member_changes
from scim_bridge.store.schema import group_members
from scim_bridge.store.schema import group_targets
from scim_bridge.store.schema import groups
from scim_bridge.store.schema import managed_memberships
from scim_bridge.store.schema import membership_dirty
from scim_bridge.store.schema import user_links

log = logging.getLogger(__name__)

GITLAB_GROUP_JOB = "gitlab_group"
BATCH_USERS = 500
Audit = Callable[[str, str | None, dict[str, Any] | None], None]


class Pacer(Protocol):
    """A per-key rate (``scim_bridge.guards.RateLimiter``): None, or the seconds to wait."""

    def take(self, key: str) -> float | None: ...


def mark_dirty(gitlab_group: str, user_ids: Iterable[str]) -> None:
    """Mark users of a GitLab group for a new look; a newer mark survives a run that read an older."""
    rows = [
        {"gitlab_group": gitlab_group, "user_id": user_id, "marked_at": clock.now()}
        for user_id in dict.fromkeys(user_ids)
    ]
    if rows:
        upsert(membership_dirty, rows, ["gitlab_group", "user_id"], ["marked_at"])
        jobs.enqueue(GITLAB_GROUP_JOB, gitlab_group)


def membership_state(
    connection: Connection, path: str, users: list[str] | None = None
) -> tuple[dict[str, int], dict[str, int], dict[int, Managed]]:
    """Desired levels and GitLab ids of SCIM users in a GitLab group, and what the bridge manages.

    ``users`` None means everyone the group concerns: its mapped members and the accounts whose
    membership the bridge manages there.
    """
    levels: dict[str, int] = defaultdict(int)
    desired = select(group_members.c.member_id, group_targets.c.access_level).join(
        group_targets, group_targets.c.group_id == group_members.c.group_id
    )
    desired = desired.where(group_targets.c.gitlab_group == path)
    if users is not None:
        desired = desired.where(group_members.c.member_id.in_(users))
    for row in connection.execute(desired):
        levels[row.member_id] = max(levels[row.member_id], row.access_level)
    linked = select(user_links.c.user_id, user_links.c.gitlab_user_id).where(
        user_links.c.gitlab_user_id.is_not(None)
    )
    if users is not None:
        linked = linked.where(user_links.c.user_id.in_(users))
    else:
        managed_ids = select(managed_memberships.c.gitlab_user_id).where(
            managed_memberships.c.gitlab_group == path
        )
        linked = linked.where(
            user_links.c.user_id.in_(list(levels)) | user_links.c.gitlab_user_id.in_(managed_ids)
        )
    accounts = {row.user_id: row.gitlab_user_id for row in connection.execute(linked)}
    managed_rows = select(managed_memberships).where(managed_memberships.c.gitlab_group == path)
    if users is not None:
        managed_rows = managed_rows.where(
            managed_memberships.c.gitlab_user_id.in_(list(accounts.values()))
        )
    managed = {
        row.gitlab_user_id: Managed(row.access_level, row.prior_level)
        for row in connection.execute(managed_rows)
    }
    return dict(levels), accounts, managed


class ScimGroupReconciler:
    """Step 1: one SCIM group's mapping, and the members whose grant may have changed."""

    def __init__(
        self,
        db: Database,
        documents: Callable[[str], dict[str, Any] | None],
        settings: GroupsSettings,
        gitlab: GitLabApi,
        audit: Audit,
    ) -> None:
        self.db = db
        self.documents = documents
        self.settings = settings
        self.mapper = GroupMapper(settings)
        self.creator = GroupCreator(gitlab, settings.parent, audit)
        self.audit = audit

    def reconcile(self, group_id: str, deadline: Deadline | None = None) -> Outcome:
        deadline = deadline or Deadline()
        document = self.documents(group_id)
        old = self._recorded(group_id)
        new = self._targets(group_id, document, old, deadline)
        outcome = Outcome()
        with self.db.transaction(write=True) as tx:
            connection = tx.connection
            last, changed_users = self._changes(group_id)
            everyone: list[str] | None = None
            for path in sorted(set(old) | set(new)):
                same = old.get(path, (None, False))[0] == new.get(path, (None, False))[0]
                if same:
                    users = changed_users
                else:
                    if everyone is None:
                        everyone = list(
                            dict.fromkeys([*member_rows.member_ids(group_id), *changed_users])
                        )
                    users = everyone
                if users:
                    mark_dirty(path, users)
                    outcome.follow_up.append(jobs.job_key(GITLAB_GROUP_JOB, path))
            if old != new:
                connection.execute(
                    delete(group_targets).where(group_targets.c.group_id == group_id)
                )
                if new:
                    connection.execute(
                        group_targets.insert(),
                        [
                            {
                                "group_id": group_id,
                                "gitlab_group": path,
                                "access_level": level,
                                "created_by_bridge": created,
                            }
                            for path, (level, created) in new.items()
                        ],
                    )
                outcome.actions.append(f"maps to {_describe(new) or 'nothing'}")
                # In the same transaction: the new mapping and its record commit together.
                self.audit(
                    "reconcile.group",
                    group_id,
                    {"targets": _describe(new), "before": _describe(old)},
                )
            if last is not None:
                connection.execute(
                    delete(group_member_changes).where(
                        group_member_changes.c.group_id == group_id,
                        group_member_changes.c.id <= last,
                    )
                )
        return outcome

    def _recorded(self, group_id: str) -> dict[str, tuple[int, bool]]:
        with self.db.transaction(write=False) as tx:
            rows = tx.connection.execute(
                select(group_targets).where(group_targets.c.group_id == group_id)
            ).mappings()
            return {
                row["gitlab_group"]: (row["access_level"], row["created_by_bridge"]) for row in rows
            }

    def _changes(self, group_id: str) -> tuple[int | None, list[str]]:
        rows = (
            current_transaction()
            .connection.execute(
                select(group_member_changes.c.id, group_member_changes.c.user_id)
                .where(group_member_changes.c.group_id == group_id)
                .order_by(group_member_changes.c.id)
            )
            .all()
        )
        if not rows:
            return None, []
        return rows[-1].id, list(dict.fromkeys(row.user_id for row in rows))

    def _targets(
        self,
        group_id: str,
        document: dict[str, Any] | None,
        old: dict[str, tuple[int, bool]],
        deadline: Deadline,
    ) -> dict[str, tuple[int, bool]]:
        """GitLab path → (level, created by the bridge) for the group as it is now."""
        if document is None:
            return {}
        display_name, external_id = document.get("displayName"), document.get("externalId")
        mapped = self.mapper.targets(display_name, external_id)
        if mapped:
            return {path: (level, False) for path, level in mapped.items()}
        if self.settings.unmapped != "create":
            return {}
        created = [path for path, (_, by_bridge) in old.items() if by_bridge]
        level = self.settings.default_access_level
        if created:
            return {created[0]: (level, True)}
        return {self.creator.create_for(str(display_name), deadline): (level, True)}


class GroupCreator:
    """Creates the GitLab groups the bridge owns (``unmapped = "create"``) under ``parent``."""

    def __init__(self, gitlab: GitLabApi, parent: str, audit: Audit) -> None:
        self.gitlab = gitlab
        self.parent = parent
        self.audit = audit

    def create_for(self, display_name: str, deadline: Deadline) -> str:
        """A new group for an Entra group: its path from the display name, suffixed on collision."""
        with gitlab_trouble_is_retry():
            parent = self._parent(deadline)
            for slug in created_group_candidates(display_name):
                path = full_path(self.parent, slug)
                deadline.check()
                if self.gitlab.groups.find(path) is not None:
                    continue
                if self._create(display_name, slug, parent, path):
                    return path
        raise Rejected(
            "conflict", f"no free GitLab group path for {display_name!r}", tell_client=False
        )

    def recreate(self, path: str, name: str, deadline: Deadline) -> GitLabGroup:
        """A group the bridge recorded but GitLab lacks (say, planned in dry-run): make it now."""
        with gitlab_trouble_is_retry():
            parent = self._parent(deadline)
            slug = path.removeprefix(f"{self.parent}/")
            deadline.check()
            self._create(name, slug, parent, path)
            group: GitLabGroup = self.gitlab.groups.get(path)
            return group

    def _create(self, name: str, slug: str, parent: GitLabGroup, path: str) -> bool:
        try:
            self.gitlab.groups.create(name=name, path=slug, parent_id=parent.id)
        except InvalidError as error:
            if "taken" in error.message.lower():
                return False  # created meanwhile, or a reserved name
            raise Rejected(
                "invalid", f"GitLab refused group {path!r}: {error.message}", tell_client=False
            ) from error
        self.audit("gitlab.group.create", path, {"name": name})
        return True

    def _parent(self, deadline: Deadline) -> GitLabGroup:
        deadline.check()
        found: GitLabGroup | None = self.gitlab.groups.find(self.parent)
        if found is not None:
            return found
        if "/" in self.parent:
            raise Rejected(
                "invalid",
                f"the parent group {self.parent!r} for created groups does not exist in GitLab",
                tell_client=False,
            )
        deadline.check()
        created: GitLabGroup = self.gitlab.groups.create(
            name=self.parent, path=self.parent, parent_id=None
        )
        self.audit(
            "gitlab.group.create", self.parent, {"name": self.parent, "for": "[groups] parent"}
        )
        return created


@dataclass
class BatchReport:
    """What one batch of marked users did in one GitLab group, for its ``reconcile.memberships``
    event: every affected user named by SCIM id and GitLab user id, whatever their number.

    Each change reads ``{"users": [SCIM ids], "gitlab_user_id": N, "action": A, ...}``, where A is

    - ``set``: a membership the bridge manages made or changed to ``level``;
    - ``raised``: a membership found in place at ``before`` raised to ``level`` (it is restored to
      ``prior`` when the grant goes);
    - ``restored``: set back to the level it was found at, ``level``;
    - ``removed``: the direct membership removed;
    - ``refused``: GitLab refused ``level`` (``reason``), typically below an inherited level;

    with ``before``, the direct level GitLab had (None: no direct membership, or dry-run), and
    ``prior`` whenever the bridge remembers a level found in place. ``users`` is a list because
    two SCIM users may share one account. Ids are identifiers, not values: never redacted.
    """

    scim_ids: dict[int, list[str]]
    direct: dict[int, int]
    changes: list[dict[str, Any]] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)

    def carried_out(self, account: int, decision: Decision) -> None:
        """Name one account whose decision GitLab confirmed."""
        before = self.direct.get(account)
        remember = decision.remember
        if decision.action == "remove":
            action = "removed"
        elif remember is None:
            action = "restored"  # only a return to the level found in place forgets it
        elif remember.prior is not None and before == remember.prior:
            action = "raised"
        else:
            action = "set"
        facts: dict[str, Any] = {"action": action}
        if decision.action == "set":
            facts["level"] = _level_name(decision.level)
        facts["before"] = _level_name(before)
        if remember is not None and remember.prior is not None:
            facts["prior"] = _level_name(remember.prior)
        self._add(account, facts)

    def refused(self, account: int, level: int, reason: str) -> None:
        before = _level_name(self.direct.get(account))
        self._add(
            account,
            {"action": "refused", "level": _level_name(level), "before": before, "reason": reason},
        )

    def _add(self, account: int, facts: dict[str, Any]) -> None:
        users = self.scim_ids.get(account, [])
        self.changes.append({"users": users, "gitlab_user_id": account, **facts})

    def detail(self, planned: bool) -> dict[str, Any]:
        return {"actions": self.actions, "changes": self.changes, "planned": planned}


class GitLabGroupReconciler:
    """Step 2: the marked users of one GitLab group, made to hold exactly their desired level.

    Each batch of marked users writes one ``reconcile.memberships`` event naming every user it
    changed (:class:`BatchReport`), also when GitLab fails part-way through the batch.
    """

    def __init__(
        self,
        db: Database,
        gitlab: GitLabApi,
        creator: GroupCreator,
        audit: Audit,
        *,
        deletions: Pacer | None = None,
    ) -> None:
        self.db = db
        self.gitlab = gitlab
        self.creator = creator
        self.audit = audit
        self.deletions = deletions

    def reconcile(self, path: str, deadline: Deadline | None = None) -> Outcome:
        deadline = deadline or Deadline()
        outcome = Outcome()
        with gitlab_trouble_is_retry():
            group: GitLabGroup | None = None
            while True:
                batch = self._marked(path)
                if not batch:
                    break
                if group is None:
                    deadline.check()
                    group = self._group(path, deadline)
                self._apply(path, group, batch, deadline, outcome)
        return outcome

    def _marked(self, path: str) -> dict[str, datetime]:
        with self.db.transaction(write=False) as tx:
            rows = tx.connection.execute(
                select(membership_dirty.c.user_id, membership_dirty.c.marked_at)
                .where(membership_dirty.c.gitlab_group == path)
                .order_by(membership_dirty.c.user_id)
                .limit(BATCH_USERS)
            ).all()
        return {row.user_id: row.marked_at for row in rows}

    def _group(self, path: str, deadline: Deadline) -> GitLabGroup:
        group: GitLabGroup | None = self.gitlab.groups.find(path)
        if group is not None:
            return group
        if self.gitlab.dry_run:
            return GitLabGroup(0, path, path, None)
        name = self._created_for(path)
        if name is not None:
            return self.creator.recreate(path, name, deadline)
        raise Rejected(
            "invalid",
            f"GitLab group {path!r} does not exist: create it, or fix the rule that names it",
            tell_client=False,
        )

    def _created_for(self, path: str) -> str | None:
        """The display name of the Entra group the bridge created ``path`` for, if it did."""
        with self.db.transaction(write=False) as tx:
            row = tx.connection.execute(
                select(groups.c.display_name)
                .join(group_targets, group_targets.c.group_id == groups.c.id)
                .where(group_targets.c.gitlab_group == path, group_targets.c.created_by_bridge)
            ).first()
        return None if row is None else str(row.display_name)

    def _apply(
        self,
        path: str,
        group: GitLabGroup,
        marked: dict[str, datetime],
        deadline: Deadline,
        outcome: Outcome,
    ) -> None:
        users = list(marked)
        with self.db.transaction(write=False) as tx:
            levels, accounts, managed = membership_state(tx.connection, path, users)
        ids = list(dict.fromkeys(accounts.values()))
        direct: dict[int, int] = {}
        effective: dict[int, int] = {}
        if ids and not self.gitlab.dry_run:
            deadline.check()
            direct = {
                m.user_id: m.access_level for m in self.gitlab.members.list_direct(group.id, ids)
            }
            deadline.check()
            effective = {
                m.user_id: m.access_level for m in self.gitlab.members.list_all(group.id, ids)
            }
        wanted: dict[int, int] = defaultdict(int)  # two SCIM users may share one account
        scim_ids: dict[int, list[str]] = defaultdict(list)
        for user_id, account in accounts.items():
            wanted[account] = max(wanted[account], levels.get(user_id, 0))
            scim_ids[account].append(user_id)
        decisions = {
            account: decide(
                level, managed.get(account), direct.get(account), effective.get(account)
            )
            for account, level in wanted.items()
        }
        # Write ahead what the bridge is about to own, so a crash after GitLab's answer cannot
        # turn a membership it created into one it believes it found in place.
        self._save(path, {a: d for a, d in decisions.items() if d.action == "set" and d.remember})
        report = BatchReport(dict(scim_ids), direct)
        done: set[int] = set()
        try:
            self._execute(group, decisions, deadline, report, done)
        finally:
            outcome.actions.extend(report.actions)
            # Users without a GitLab account yet are settled: linking their account marks them again.
            settled = {u: marked[u] for u in users if u not in accounts or accounts[u] in done}
            try:
                # Also when GitLab failed part-way: what it did must reach the audit trail.
                if report.changes:
                    self.audit("reconcile.memberships", path, report.detail(self.gitlab.dry_run))
            finally:
                self._save(path, {a: decisions[a] for a in done}, settled)

    def _execute(
        self,
        group: GitLabGroup,
        decisions: dict[int, Decision],
        deadline: Deadline,
        report: BatchReport,
        done: set[int],
    ) -> None:
        """Make the calls, adding each account whose decision was carried out to ``done`` and to
        ``report`` as soon as GitLab confirms it."""
        done.update(account for account, decision in decisions.items() if decision.action == "none")
        by_level: dict[int, list[int]] = defaultdict(list)
        for account, decision in decisions.items():
            if decision.action == "set" and decision.level is not None:
                by_level[decision.level].append(account)
        for level, accounts in sorted(by_level.items()):
            self._set_level(group, accounts, level, decisions, deadline, report, done)
        removals = [
            account for account, decision in decisions.items() if decision.action == "remove"
        ]
        removed = 0
        try:
            for account in removals:
                deadline.check()
                self._pace_deletion(group.full_path)
                self.gitlab.members.remove(group.id, account)
                done.add(account)
                report.carried_out(account, decisions[account])
                removed += 1
        finally:
            if removed:
                report.actions.append(f"removed {removed} member(s) from {group.full_path}")

    def _pace_deletion(self, path: str) -> None:
        """GitLab allows 60 member deletions a minute per group (gitlab.md): wait before the 61st
        rather than meet its 429; the job comes back when the next deletion is allowed."""
        if self.deletions is None or self.gitlab.dry_run:
            return
        wait = self.deletions.take(path)
        if wait is not None:
            detail = f"pacing member deletions in {path} (GitLab allows 60 a minute)"
            raise Retry(detail, wait, paced=True)

    def _set_level(
        self,
        group: GitLabGroup,
        accounts: list[int],
        level: int,
        decisions: dict[int, Decision],
        deadline: Deadline,
        report: BatchReport,
        done: set[int],
    ) -> None:
        """One upsert per 100 users; if GitLab refuses some, find which, one by one.

        The calls go chunk by chunk, so when GitLab fails part-way the chunks it took are known.
        """
        name = access_level_name(level)
        taken = refusals = 0
        one_by_one = False

        def took(account: int) -> None:
            nonlocal taken
            report.carried_out(account, decisions[account])
            done.add(account)
            taken += 1

        def refused(account: int, error: InvalidError) -> None:
            # Typically a level below one inherited from a parent group, which GitLab refuses:
            # the inherited membership already gives at least as much.
            nonlocal refusals
            report.refused(account, level, error.message)
            done.add(account)
            refusals += 1

        try:
            for chunk in member_chunks(accounts):
                deadline.check()
                try:
                    self.gitlab.members.add_many(group.id, chunk, level)
                except InvalidError as error:
                    if len(chunk) == 1:
                        refused(chunk[0], error)
                        continue
                    log.info("batched member add refused (%s); retrying one by one", error.message)
                    one_by_one = True
                    for account in chunk:
                        deadline.check()
                        try:
                            self.gitlab.members.add_many(group.id, [account], level)
                        except InvalidError as single:
                            refused(account, single)
                        else:
                            took(account)
                else:
                    for account in chunk:
                        took(account)
        finally:
            if taken:
                how = ", one by one" if one_by_one else ""
                report.actions.append(f"set {taken} member(s) of {group.full_path} to {name}{how}")
            if refusals:
                report.actions.append(
                    f"GitLab refused {refusals} member(s) of {group.full_path} at {name}"
                )

    def _save(
        self,
        path: str,
        decisions: dict[int, Decision],
        settled: dict[str, datetime] | None = None,
    ) -> None:
        """Remember (or forget) managed memberships, and clear the marks that were dealt with."""
        with self.db.transaction(write=True) as tx:
            connection = tx.connection
            if not self.gitlab.dry_run:
                for account, decision in decisions.items():
                    connection.execute(
                        delete(managed_memberships).where(
                            managed_memberships.c.gitlab_group == path,
                            managed_memberships.c.gitlab_user_id == account,
                        )
                    )
                    if decision.remember is not None:
                        connection.execute(
                            managed_memberships.insert().values(
                                gitlab_group=path,
                                gitlab_user_id=account,
                                access_level=decision.remember.level,
                                prior_level=decision.remember.prior,
                            )
                        )
            for user_id, marked_at in (settled or {}).items():
                connection.execute(
                    delete(membership_dirty).where(
                        membership_dirty.c.gitlab_group == path,
                        membership_dirty.c.user_id == user_id,
                        membership_dirty.c.marked_at <= marked_at,
                    )
                )


def _level_name(level: int | None) -> str | None:
    """``developer``, as operators write levels; the number for a level GitLab has no name for."""
    return None if level is None else LEVEL_NAMES.get(level, str(level))


def _describe(targets: dict[str, tuple[int, bool]]) -> str:
    return ", ".join(
        f"{path} as {access_level_name(level)}" for path, (level, _) in sorted(targets.items())
    )
