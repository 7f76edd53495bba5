"""Entra groups to GitLab group memberships, in two level-triggered steps.

1. ``group_mapping.ScimGroupReconciler`` (job ``scim_group:<id>``): which GitLab groups a SCIM
   group maps to now (rules, or a group the bridge creates), compared with what it mapped to last
   time; the members whose grant may have changed are marked in each GitLab group concerned.
2. :class:`GitLabGroupReconciler` (job ``gitlab_group:<path>``): for the marked users of one GitLab
   group, the desired level (the highest among the mapped Entra groups that contain them) against
   GitLab's direct and inherited memberships, decided by :func:`access_plan.decide`. Adds and level
   changes go out batched per level (100 users per call); removals one by one until GitLab's
   60-per-minute limit answers 429, then the rest waits for ``Retry-After``.

Work is per marked user, so adding one member to a group of 50,000 costs one user's worth: the
group is never listed, only the marked users' memberships are looked up (``user_ids``, 100 per
call), and a new member costs one lookup and its share of one add. No run needs the whole group:
step 1 marks every member whose grant may have changed (a group mapped for the first time, a rule
changed, a member added or removed), and what other memberships the group holds is not the
bridge's to touch. (The drift report, ``drift.py``, looks at every user the store knows instead.)

Each batch of users writes one ``reconcile.memberships`` audit event that names every user whose
membership it changed, by SCIM id and GitLab user id (:class:`BatchReport`), as soon as GitLab has
confirmed each call: a run that GitLab stops part-way still records what it did. The event and
the settling of the run's last batch are written with the job's end, in one transaction
(``journal.at_end``); a membership about to be made is written ahead, on its own, before the call.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Any
from typing import Protocol

from scim_bridge.gitlab.access import LEVEL_NAMES
from scim_bridge.gitlab.access import access_level_name
from scim_bridge.gitlab.api import GitLabApi
from scim_bridge.gitlab.errors import InvalidError
from scim_bridge.gitlab.errors import NotFoundError
from scim_bridge.gitlab.errors import group_missing
from scim_bridge.gitlab.members import chunks as member_chunks
from scim_bridge.gitlab.members import held
from scim_bridge.gitlab.types import GitLabGroup
from scim_bridge.provisioning.access_plan import Decision
from scim_bridge.provisioning.access_plan import decide
from scim_bridge.provisioning.group_mapping import GroupCreator
from scim_bridge.provisioning.journal import at_end
from scim_bridge.provisioning.reconciling import Audit
from scim_bridge.provisioning.reconciling import Deadline
from scim_bridge.provisioning.reconciling import Outcome
from scim_bridge.provisioning.reconciling import Rejected
from scim_bridge.provisioning.reconciling import Retry
from scim_bridge.provisioning.reconciling import gitlab_trouble_is_retry
from scim_bridge.store.gitlab_memberships import GitLabMemberships
from scim_bridge.store.gitlab_memberships import Managed
from scim_bridge.store.group_targets import GroupTargets

log = logging.getLogger(__name__)

BATCH_USERS = 500


class Pacer(Protocol):
    """A per-key rate (``scim_bridge.guards.RateLimiter``): None, or the seconds to wait."""

    def take(self, key: str) -> float | None: ...


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
        memberships: GitLabMemberships,
        targets: GroupTargets,
        gitlab: GitLabApi,
        creator: GroupCreator,
        audit: Audit,
        *,
        deletions: Pacer | None = None,
    ) -> None:
        self.memberships = memberships
        self.targets = targets
        self.gitlab = gitlab
        self.creator = creator
        self.audit = audit
        self.deletions = deletions

    def reconcile(self, path: str, deadline: Deadline | None = None) -> Outcome:
        deadline = deadline or Deadline()
        outcome = Outcome()
        with gitlab_trouble_is_retry():
            group: GitLabGroup | None = None
            resolved_again = False
            while True:
                batch = self.memberships.marked(path, BATCH_USERS)
                if not batch:
                    break
                if group is None:
                    deadline.check()
                    group = self._group(path, deadline)
                # A short batch is the last: its marks are settled when the run ends. A full one
                # is settled at once, so the next read of the marks finds the users after it.
                last = len(batch) < BATCH_USERS
                try:
                    self._apply(path, group, batch, deadline, outcome, last=last)
                except NotFoundError as error:
                    # The id the path led to is gone (the group deleted, or moved away, since
                    # GitLab resolved the path): resolve it once more; the marks are still there.
                    if resolved_again or not group_missing(error):
                        raise
                    log.info(
                        "GitLab group %s (id %s) answered 404; resolving it again", path, group.id
                    )
                    group, resolved_again = None, True
                    continue
                if last:
                    break
        return outcome

    def _group(self, path: str, deadline: Deadline) -> GitLabGroup:
        group: GitLabGroup | None = self.gitlab.groups.find(path)
        name = self.targets.created_for(path)
        if group is not None:
            if name is not None and not self.gitlab.dry_run:
                self._check_created(path, group)
            return group
        if self.gitlab.dry_run:
            return GitLabGroup(0, path, path, None)
        if name is not None:
            return self.creator.recreate(path, name, deadline)
        raise Rejected(
            "invalid",
            f"GitLab group {path!r} does not exist: create it, or fix the rule that names it",
            tell_client=False,
        )

    def _check_created(self, path: str, group: GitLabGroup) -> None:
        """A group the bridge created is filled only while it is the one it created: after it is
        deleted by hand, a group someone makes at its path is theirs. Groups created before ids
        were recorded are recorded when first found (the one there then is the bridge's)."""
        recorded = self.targets.created_id(path)
        if recorded is None:
            self.targets.record_created(path, group.id)
        elif recorded != group.id:
            raise Rejected(
                "conflict",
                f"GitLab group {path!r} (id {group.id}) is not the group the bridge created there "
                f"(id {recorded}, since removed): it is left alone; move or delete it, and the "
                "bridge makes its own again",
                tell_client=False,
            )

    def _apply(
        self,
        path: str,
        group: GitLabGroup,
        marked: dict[str, datetime],
        deadline: Deadline,
        outcome: Outcome,
        *,
        last: bool = False,
    ) -> None:
        users = list(marked)
        state = self.memberships.of_users(path, users)
        levels, accounts, managed = state.levels, state.accounts, state.managed
        direct, effective = self._levels(group, list(dict.fromkeys(accounts.values())), deadline)
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
                done_decisions = {a: decisions[a] for a in done}
                if last:
                    at_end(lambda: self._save(path, done_decisions, settled))
                else:
                    self._save(path, done_decisions, settled)

    def _levels(
        self, group: GitLabGroup, ids: list[int], deadline: Deadline
    ) -> tuple[dict[int, int], dict[int, int]]:
        """The direct and the effective level of each of ``ids`` that GitLab has
        (``gitlab.members.held``)."""
        if not ids or self.gitlab.dry_run:
            return {}, {}
        deadline.check()
        direct, effective = held(self.gitlab.members, group.id, ids, between=deadline.check)
        return (
            {user: m.access_level for user, m in direct.items()},
            {user: m.access_level for user, m in effective.items()},
        )

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
        """Remember (or forget) managed memberships, and clear the marks that were dealt with;
        in dry-run nothing was made, so there is nothing to remember."""
        remembered: dict[int, Managed | None] = {}
        if not self.gitlab.dry_run:
            remembered = {account: decision.remember for account, decision in decisions.items()}
        if remembered or settled:  # nothing to write costs no transaction
            self.memberships.settle(path, remembered, settled or {})


def _level_name(level: int | None) -> str | None:
    """``developer``, as operators write levels; the number for a level GitLab has no name for."""
    return None if level is None else LEVEL_NAMES.get(level, str(level))
