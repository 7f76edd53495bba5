"""Make one GitLab account agree with one stored SCIM User: level-triggered and idempotent.

It reads the desired state (the stored document, or its absence after a DELETE) and what GitLab
has, and makes only the calls that close the difference. Running it twice, or after a crash at any
point, is harmless: an account is always looked up by its identity (``extern_uid``) before one is
created, so a create that reached GitLab but whose answer was lost is found, not repeated
(``account_finder.py``).

Every write obeys the ownership rules (``ownership.py``): an account found by email or identity is
adopted only when it may be, and an administrator's, a protected or an operator-linked account is
never written. The link is saved when the whole run succeeded, never before: in the transaction
that ends the run (``journal.at_end``), with the audit events of the calls it made.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from contextlib import nullcontext
from typing import TYPE_CHECKING
from typing import Any

from scim_bridge import clock
from scim_bridge.gitlab.api import GitLabApi
from scim_bridge.gitlab.errors import ConflictError
from scim_bridge.gitlab.errors import ForbiddenError
from scim_bridge.gitlab.errors import InvalidError
from scim_bridge.gitlab.errors import NotFoundError
from scim_bridge.gitlab.types import GitLabUser
from scim_bridge.gitlab.types import Moderation
from scim_bridge.provisioning.account_finder import AccountFinder
from scim_bridge.provisioning.accounts import DesiredAccount
from scim_bridge.provisioning.accounts import desired_account
from scim_bridge.provisioning.journal import at_end
from scim_bridge.provisioning.ownership import Protection
from scim_bridge.provisioning.ownership import delete_policy
from scim_bridge.provisioning.ownership import write_refusal
from scim_bridge.provisioning.reconciling import Deadline
from scim_bridge.provisioning.reconciling import Outcome
from scim_bridge.provisioning.reconciling import Rejected
from scim_bridge.provisioning.reconciling import gitlab_trouble_is_retry
from scim_bridge.provisioning.usernames import candidates
from scim_bridge.settings import GitLabSettings
from scim_bridge.settings import UsersSettings
from scim_bridge.store.links import ADOPTED
from scim_bridge.store.links import CREATED
from scim_bridge.store.links import OPERATOR
from scim_bridge.store.links import LinkTaken
from scim_bridge.store.links import PendingLink
from scim_bridge.store.links import UserLink
from scim_bridge.store.links import UserLinks

if TYPE_CHECKING:
    from scim_bridge.provisioning.protection import Protector

log = logging.getLogger(__name__)

BLOCKING: dict[str, Moderation] = {"block": "block", "deactivate": "deactivate", "ban": "ban"}
UNDO: dict[str, Moderation] = {"blocked": "unblock", "deactivated": "activate", "banned": "unban"}


class UserReconciler:
    """The rules of DESIGN.md "Users" and "Ownership", applied to one user."""

    def __init__(
        self,
        gitlab: GitLabApi,
        documents: Callable[[str], dict[str, Any] | None],
        links: UserLinks,
        users: UsersSettings,
        gitlab_settings: GitLabSettings,
        audit: Callable[[str, str | None, dict[str, Any] | None], None],
        protector: Protector,
        on_linked: Callable[[str], list[str]] | None = None,
        reading: Callable[[], AbstractContextManager[object]] = nullcontext,
    ) -> None:
        self.gitlab = gitlab
        self.on_linked = on_linked
        # One read transaction for the run's reads of the store, not one each.
        self.reading = reading
        self.documents = documents
        self.links = links
        self.settings = users
        self.provider = gitlab_settings.identity_provider
        self.audit = audit
        self.protector = protector
        self.accounts = AccountFinder(gitlab, links, users, self.provider)

    def _save(self, link: UserLink, *, consumed: str | None = None) -> None:
        """Remember what GitLab has; in dry-run nothing was made, so there is nothing to remember."""
        if self.gitlab.dry_run:
            return
        try:
            self.links.save(link, consumed=consumed)
        except LinkTaken as taken:  # another SCIM user's run linked it first
            raise Rejected("conflict", str(taken)) from taken

    def reconcile(self, user_id: str, deadline: Deadline | None = None) -> Outcome:
        """Make GitLab agree; the actions taken are audited even when a later step fails."""
        deadline = deadline or Deadline()
        outcome = Outcome()
        finished = False
        try:
            with gitlab_trouble_is_retry():
                with self.reading():
                    document = self.documents(user_id)
                    stored = self.links.get(user_id)
                    # Read with the rest when the run may need it (no account linked yet).
                    pending: PendingLink | None = None
                    if document is not None and (stored is None or not stored.linked):
                        pending = self.links.pending(str(document["userName"]))
                link = stored or UserLink(user_id=user_id)
                protection = self.protector.current()
                if document is None:
                    link = self._deprovision(link, protection, deadline, outcome)
                else:
                    desired = desired_account(document)
                    link = self._provision(desired, link, protection, deadline, outcome, pending)
            # Saved only now, when everything the link stands for was done (DESIGN.md, Ownership):
            # a refused or interrupted run leaves no link behind, and the next run looks again.
            if link != stored and (stored is not None or link.linked):
                newly_linked = self._newly_linked(stored, link)
                consumed = document["userName"] if document and newly_linked else None
                at_end(lambda: self._finish(user_id, link, consumed, newly_linked, outcome))
            finished = True
        finally:
            if outcome.actions:
                detail: dict[str, Any] = {
                    "actions": outcome.actions,
                    "planned": self.gitlab.dry_run,
                }
                if not finished:
                    detail["completed"] = False
                self.audit("reconcile.user", user_id, detail)
        return outcome

    def _finish(
        self,
        user_id: str,
        link: UserLink,
        consumed: str | None,
        newly_linked: bool,
        outcome: Outcome,
    ) -> None:
        """The run's final writes: the link, and the grants a new account can now receive."""
        self._save(link, consumed=consumed)
        if newly_linked:
            outcome.follow_up.extend(self._linked(user_id))

    def _newly_linked(self, stored: UserLink | None, link: UserLink) -> bool:
        return link.linked and (stored is None or stored.gitlab_user_id != link.gitlab_user_id)

    def _linked(self, user_id: str) -> list[str]:
        """The account exists now: the grants of the user's groups can be applied to it."""
        if self.on_linked is None or self.gitlab.dry_run:
            return []
        return self.on_linked(user_id)

    # -- Present users --------------------------------------------------------

    def _provision(
        self,
        desired: DesiredAccount,
        link: UserLink,
        protection: Protection,
        deadline: Deadline,
        outcome: Outcome,
        pending: PendingLink | None,
    ) -> UserLink:
        account = self._linked_account(link, deadline)
        if account is None:
            if link.linked:  # its account is gone: the pending link was not read with the rest
                pending = self.links.pending(desired.user_name)
            link = link.with_(gitlab_user_id=None, gitlab_username=None, retired_at=None)
            account, link = self._pending_link(desired, link, pending, deadline, outcome)
        if account is None:
            account, link = self.accounts.find_or_create(
                desired, link, protection, deadline, outcome
            )
        refusal = write_refusal(link, account, protection)
        if refusal is not None:
            link = self._hands_off(link, account, refusal)
            self._skip(account, refusal, self._differences(desired, account, link), outcome)
            return link.with_(retired_at=None)
        link = self._update_attributes(desired, account, link, protection, deadline, outcome)
        self._apply_state(desired, account, deadline, outcome)
        return link.with_(retired_at=None)

    def _linked_account(self, link: UserLink, deadline: Deadline) -> GitLabUser | None:
        if link.gitlab_user_id is None:
            return None
        deadline.check()
        try:
            account: GitLabUser = self.gitlab.users.get(link.gitlab_user_id)
        except NotFoundError:
            # Deleted in GitLab by hand: provision again (the link goes with this run's result).
            return None
        return account

    def _pending_link(
        self,
        desired: DesiredAccount,
        link: UserLink,
        pending: PendingLink | None,
        deadline: Deadline,
        outcome: Outcome,
    ) -> tuple[GitLabUser | None, UserLink]:
        """The account the operator linked this userName to before Entra provisioned it."""
        if pending is None:
            return None, link
        deadline.check()
        try:
            account: GitLabUser = self.gitlab.users.get(pending.gitlab_user_id)
        except NotFoundError:
            log.warning(
                "the operator linked %s to GitLab account %s (id %s), which is gone",
                desired.user_name,
                pending.gitlab_username,
                pending.gitlab_user_id,
            )
            return None, link
        outcome.actions.append(f"operator link to {account.username} (id {account.id})")
        return account, link.with_(
            gitlab_user_id=account.id,
            gitlab_username=account.username,
            source_user_name=desired.user_name,
            origin=OPERATOR,
        )

    # -- Writes the ownership rules allow -------------------------------------------

    def _update_attributes(
        self,
        desired: DesiredAccount,
        account: GitLabUser,
        link: UserLink,
        protection: Protection,
        deadline: Deadline,
        outcome: Outcome,
    ) -> UserLink:
        changes: dict[str, str] = {}
        if account.name != desired.name:
            changes["name"] = desired.name
        if self._renames(desired, account, link):
            link = self._rename(desired, account, link, changes, protection, deadline, outcome)
        else:
            if changes:
                deadline.check()
                self._update(account.id, changes)
                outcome.actions.append(f"updated {', '.join(sorted(changes))}")
            link = link.with_(source_user_name=desired.user_name)
        if _email_differs(desired, account):
            assert desired.email is not None
            deadline.check()
            try:
                self.gitlab.users.change_email(account.id, desired.email)
            except ConflictError as error:
                raise Rejected("conflict", f"GitLab: {error.message} ({desired.email})") from error
            except InvalidError as error:
                raise Rejected("invalid", f"GitLab refused the email: {error.message}") from error
            outcome.actions.append("changed email")
        if self._identity_differs(desired, account):
            assert desired.extern_uid is not None
            deadline.check()
            try:
                self.gitlab.users.set_identity(account.id, self.provider, desired.extern_uid)
            except ConflictError as error:
                raise Rejected(
                    "conflict",
                    f"the {self.provider} identity {desired.extern_uid} belongs to another "
                    f"GitLab account than {account.username!r}",
                ) from error
            outcome.actions.append(f"linked identity {self.provider}")
        return link

    def _renames(self, desired: DesiredAccount, account: GitLabUser, link: UserLink) -> bool:
        rename = link.source_user_name is not None and link.source_user_name != desired.user_name
        return rename and not _same_base(account.username, desired.username)

    def _identity_differs(self, desired: DesiredAccount, account: GitLabUser) -> bool:
        if not desired.extern_uid:
            return False
        identity = account.identity(self.provider)
        return identity is None or identity.extern_uid != desired.extern_uid

    def _update(self, account_id: int, changes: dict[str, str]) -> GitLabUser:
        try:
            updated: GitLabUser = self.gitlab.users.update(account_id, **changes)
        except InvalidError as error:
            raise Rejected("invalid", f"GitLab refused the update: {error.message}") from error
        return updated

    def _rename(
        self,
        desired: DesiredAccount,
        account: GitLabUser,
        link: UserLink,
        changes: dict[str, str],
        protection: Protection,
        deadline: Deadline,
        outcome: Outcome,
    ) -> UserLink:
        for username in candidates(desired.user_name):
            if protection.reserved(username):
                continue  # never renamed into a protected name
            deadline.check()
            try:
                updated = self.gitlab.users.update(account.id, **changes, username=username)
            except ConflictError as error:
                if error.field == "username":
                    continue
                raise Rejected("conflict", f"GitLab: {error.message}") from error
            except InvalidError as error:
                if "username" in error.errors:
                    continue
                raise Rejected("invalid", f"GitLab refused the update: {error.message}") from error
            outcome.actions.append(f"renamed {account.username} to {updated.username}")
            return link.with_(gitlab_username=updated.username, source_user_name=desired.user_name)
        raise Rejected("conflict", f"no free GitLab username for {desired.user_name!r}")

    def _state_action(self, desired: DesiredAccount, account: GitLabUser) -> Moderation | None:
        """The moderation that brings the account to the desired state, if any."""
        if desired.active and account.state in UNDO:
            return UNDO[account.state]
        if not desired.active and account.state == "active":
            return BLOCKING[self.settings.on_deactivate]
        return None

    def _apply_state(
        self, desired: DesiredAccount, account: GitLabUser, deadline: Deadline, outcome: Outcome
    ) -> None:
        action = self._state_action(desired, account)
        if action is not None:
            deadline.check()
            self._moderate(account, action, outcome)

    def _moderate(self, account: GitLabUser, action: Moderation, outcome: Outcome) -> None:
        try:
            self.gitlab.users.moderate(account.id, action)
            outcome.actions.append(f"{action} {account.username}")
        except ForbiddenError as error:
            if action in {"deactivate", "ban"}:
                # GitLab refuses to deactivate recently active users (gitlab.md §1.5): block instead,
                # so the account is closed whatever the policy's fine print.
                self.gitlab.users.block(account.id)
                outcome.actions.append(
                    f"block {account.username} ({action} refused: {error.message})"
                )
                return
            raise Rejected(
                "invalid", f"GitLab refused to {action} {account.username}: {error.message}"
            ) from error

    # -- Accounts the bridge must not write ---------------------------------------------

    def _hands_off(self, link: UserLink, account: GitLabUser, refusal: str) -> UserLink:
        """A created or adopted link to an administrator or a protected account becomes an
        operator link: its memberships are still managed, the account itself never written."""
        if link.origin in (CREATED, ADOPTED) and link.gitlab_user_id is not None:
            self.audit(
                "user.link.operator",
                link.user_id,
                {"gitlab_user_id": account.id, "account": account.username, "reason": refusal},
            )
            return link.with_(origin=OPERATOR)
        return link

    def _differences(
        self, desired: DesiredAccount, account: GitLabUser, link: UserLink
    ) -> list[str]:
        """What the bridge would write if the account were its own (for the audit trail)."""
        skipped = []
        if account.name != desired.name:
            skipped.append("name")
        if self._renames(desired, account, link):
            skipped.append("username")
        if _email_differs(desired, account):
            skipped.append("email")
        if self._identity_differs(desired, account):
            skipped.append("identity")
        if (action := self._state_action(desired, account)) is not None:
            skipped.append(action)
        return skipped

    def _skip(self, account: GitLabUser, reason: str, skipped: list[str], outcome: Outcome) -> None:
        if not skipped:
            return
        outcome.actions.append(f"skipped {', '.join(skipped)} of {account.username}: {reason}")
        self.audit(
            "reconcile.user.skipped",
            account.username,
            {"gitlab_user_id": account.id, "skipped": skipped, "reason": reason},
        )

    # -- Deleted users ---------------------------------------------------------

    def _deprovision(
        self, link: UserLink, protection: Protection, deadline: Deadline, outcome: Outcome
    ) -> UserLink:
        if link.gitlab_user_id is None or link.retired_at is not None:
            return link
        deadline.check()
        try:
            account: GitLabUser | None = self.gitlab.users.get(link.gitlab_user_id)
        except NotFoundError:
            account = None
        if account is not None:
            refusal = write_refusal(link, account, protection)
            if refusal is not None:
                link = self._hands_off(link, account, refusal)
                self._skip(account, refusal, ["delete"], outcome)
            else:
                deadline.check()
                self._apply_delete_policy(account, link, outcome)
        return link.with_(retired_at=clock.now())

    def _apply_delete_policy(self, account: GitLabUser, link: UserLink, outcome: Outcome) -> None:
        policy = delete_policy(self.settings.on_delete, link.origin)
        if policy == "block":
            if account.state != "blocked":
                self._moderate(account, "block", outcome)
            if self.settings.on_delete != "block":
                outcome.actions.append(
                    f"kept {account.username}: on_delete = {self.settings.on_delete!r} applies "
                    f"only to accounts the bridge created, and this one was {link.origin}"
                )
            return
        try:
            self.gitlab.users.delete(account.id, hard=policy == "hard_delete")
            outcome.actions.append(f"{policy.replace('_', ' ')} {account.username}")
        except NotFoundError:
            pass
        except ConflictError as error:
            # "User cannot be removed while is the sole-owner of a group": block rather than fail.
            self.gitlab.users.block(account.id)
            outcome.actions.append(f"block {account.username} (delete refused: {error.message})")


def _email_differs(desired: DesiredAccount, account: GitLabUser) -> bool:
    return bool(desired.email) and account.email.lower() != (desired.email or "").lower()


def _same_base(current: str, desired_base: str) -> bool:
    """True when ``current`` is the desired base or a suffixed form of it (``jdoe`` / ``jdoe3``)."""
    current, desired_base = current.lower(), desired_base.lower()
    if current == desired_base:
        return True
    return current.startswith(desired_base) and current[len(desired_base) :].isdigit()
