"""Drift: where GitLab no longer matches the store, for `scim-bridge reconcile [--apply]`.

Entra only sends changes, and someone may change GitLab by hand (unblock an account, remove a
membership). This compares every stored user and every GitLab group the rules (or the bridge's
own memberships) concern with GitLab as it is, using the same decisions the reconcilers make
(``access_plan.decide``), and repairs by queueing the reconcile jobs that already know how.
Reading only: finding drift never changes GitLab or the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from scim_bridge.gitlab.access import access_level_name
from scim_bridge.gitlab.api import GitLabApi
from scim_bridge.gitlab.errors import NotFoundError
from scim_bridge.gitlab.types import GitLabUser
from scim_bridge.provisioning.access_plan import NO_ACCESS
from scim_bridge.provisioning.access_plan import decide
from scim_bridge.provisioning.accounts import desired_account
from scim_bridge.provisioning.ownership import delete_policy
from scim_bridge.provisioning.ownership import write_refusal
from scim_bridge.provisioning.protection import Protector
from scim_bridge.provisioning.reconciling import gitlab_trouble_is_retry
from scim_bridge.settings import UsersSettings
from scim_bridge.store.drift import DriftRecords
from scim_bridge.store.drift import Repair
from scim_bridge.store.gitlab_memberships import GitLabMemberships
from scim_bridge.store.links import UserLink
from scim_bridge.store.links import UserLinks

# The GitLab state each policy leaves a deactivated account in.
CLOSED_STATES = {"block": "blocked", "deactivate": "deactivated", "ban": "banned"}


@dataclass(frozen=True)
class Drift:
    """One difference, and what repairs it: a user's job, or a new look at a membership."""

    kind: str  # account | membership
    target: str
    desired: str
    actual: str
    user_id: str | None = None  # the SCIM user whose job repairs it
    gitlab_group: str | None = None  # for a membership
    revive: bool = False  # a deleted user's link must be looked at again


class DriftFinder:
    def __init__(
        self,
        records: DriftRecords,
        memberships: GitLabMemberships,
        gitlab: GitLabApi,
        links: UserLinks,
        users: UsersSettings,
        protector: Protector,
    ) -> None:
        self.records = records
        self.memberships = memberships
        self.gitlab = gitlab
        self.links = links
        self.settings = users
        self.protector = protector

    def find(self) -> list[Drift]:
        """Every difference; raises Retry when GitLab cannot be read."""
        with gitlab_trouble_is_retry():
            return [*self._accounts(), *self._memberships()]

    # -- Accounts -------------------------------------------------------------------

    def _accounts(self) -> Iterator[Drift]:
        documents = self.records.user_documents()
        links = {link.user_id: link for link in self.links.all()}
        for user_id, document in documents.items():
            yield from self._present(user_id, document, links.get(user_id))
        for user_id, link in links.items():
            if user_id not in documents:
                yield from self._deleted(link)

    def _present(
        self, user_id: str, document: dict[str, Any], link: UserLink | None
    ) -> Iterator[Drift]:
        desired = desired_account(document)
        target = f"user {desired.user_name}"
        account = self._account(link)
        if account is None:
            yield Drift("account", target, "an account", "none", user_id)
            return
        target = f"{target} (GitLab {account.username})"
        if not self._writable(link, account):
            return
        # Any closed state will do for a deactivated user: GitLab may refuse to deactivate or ban
        # a recently active account, and the reconciler blocks it instead.
        if desired.active != (account.state == "active"):
            wanted = "active" if desired.active else CLOSED_STATES[self.settings.on_deactivate]
            yield Drift("account", target, wanted, account.state, user_id)
        if account.name != desired.name:
            yield Drift("account", target, f"name {desired.name!r}", repr(account.name), user_id)
        if desired.email and account.email and account.email.lower() != desired.email.lower():
            yield Drift("account", target, f"email {desired.email}", account.email, user_id)

    def _deleted(self, link: UserLink) -> Iterator[Drift]:
        """A user Entra deleted: its account must stay closed (or gone) as the policy says."""
        account = self._account(link)
        if account is None or not self._writable(link, account):
            return
        target = f"deleted user (GitLab {account.username})"
        policy = delete_policy(self.settings.on_delete, link.origin)
        if policy == "block" and account.state == "active":
            yield Drift("account", target, "blocked", "active", link.user_id, revive=True)
        elif policy != "block":
            yield Drift("account", target, "deleted", account.state, link.user_id, revive=True)

    def _account(self, link: UserLink | None) -> GitLabUser | None:
        if link is None or link.gitlab_user_id is None:
            return None
        try:
            account: GitLabUser = self.gitlab.users.get(link.gitlab_user_id)
        except NotFoundError:
            return None
        return account

    def _writable(self, link: UserLink | None, account: GitLabUser) -> bool:
        """Drift the bridge may repair: never on an account it must not write (ownership.py)."""
        if link is None:
            return False
        return write_refusal(link, account, self.protector.current()) is None

    # -- Memberships ----------------------------------------------------------------

    def _memberships(self) -> Iterator[Drift]:
        for path in self.memberships.concerned_groups():
            yield from self._group(path)

    def _group(self, path: str) -> Iterator[Drift]:
        group = self.gitlab.groups.find(path)
        if group is None:
            yield Drift("membership", path, "the GitLab group", "none", gitlab_group=path)
            return
        state = self.memberships.everyone(path)
        levels, accounts, managed, names = (
            state.levels,
            state.accounts,
            state.managed,
            state.usernames,
        )
        ids = sorted(set(accounts.values()))
        if not ids:
            return
        direct = {m.user_id: m.access_level for m in self.gitlab.members.list_direct(group.id, ids)}
        effective = {m.user_id: m.access_level for m in self.gitlab.members.list_all(group.id, ids)}
        wanted: dict[int, int] = {}
        owners: dict[int, str] = {}
        for user_id, account in accounts.items():
            wanted[account] = max(wanted.get(account, NO_ACCESS), levels.get(user_id, NO_ACCESS))
            owners.setdefault(account, user_id)
        for account, level in sorted(wanted.items()):
            decision = decide(
                level, managed.get(account), direct.get(account), effective.get(account)
            )
            if decision.action == "none":
                continue
            want = "no member"
            if decision.action == "set" and decision.level is not None:
                want = access_level_name(decision.level)
            have = access_level_name(direct[account]) if account in direct else "no member"
            yield Drift(
                "membership",
                f"{path} / {names.get(account) or account}",
                want,
                have,
                owners[account],
                gitlab_group=path,
            )


def queue_repairs(records: DriftRecords, drifts: list[Drift]) -> list[str]:
    """Queue the jobs that make GitLab match again, in one transaction; returns their keys."""
    return records.queue_repairs(
        Repair(
            drift.user_id, drift.gitlab_group if drift.kind == "membership" else None, drift.revive
        )
        for drift in drifts
    )
