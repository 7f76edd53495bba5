"""Make one GitLab account agree with one stored SCIM User: level-triggered and idempotent.

It reads the desired state (the stored document, or its absence after a DELETE) and what GitLab
has, and makes only the calls that close the difference. Running it twice, or after a crash at any
point, is harmless: an account is always looked up by its identity (``extern_uid``) before one is
created, so a create that reached GitLab but whose answer was lost is found, not repeated.

Every write obeys the ownership rules (``ownership.py``): an account found by email or identity is
adopted only when it may be, and an administrator's, a protected or an operator-linked account is
never written. The link is saved when the whole run succeeded, never before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal

from scim_bridge import clock
from scim_bridge.gitlab.api import GitLabApi
from scim_bridge.gitlab.errors import AuthenticationError
from scim_bridge.gitlab.errors import ConflictError
from scim_bridge.gitlab.errors import ForbiddenError
from scim_bridge.gitlab.errors import InvalidError
from scim_bridge.gitlab.errors import NotFoundError
from scim_bridge.gitlab.errors import TransientError
from scim_bridge.gitlab.types import GitLabUser
from scim_bridge.gitlab.types import Moderation
from scim_bridge.provisioning.accounts import DesiredAccount
from scim_bridge.provisioning.accounts import desired_account
from scim_bridge.provisioning.ownership import ADMIN_REASON
from scim_bridge.provisioning.ownership import MACHINE_REASON
from scim_bridge.provisioning.ownership import PROTECTED_REASON
from scim_bridge.provisioning.ownership import Protection
from scim_bridge.provisioning.ownership import adoption_refusal
from scim_bridge.provisioning.ownership import delete_policy
from scim_bridge.provisioning.ownership import link_hint
from scim_bridge.provisioning.ownership import write_refusal
from scim_bridge.provisioning.usernames import candidates
from scim_bridge.settings import GitLabSettings
from scim_bridge.settings import UsersSettings
from scim_bridge.store.documents import folded
from scim_bridge.store.links import ADOPTED
from scim_bridge.store.links import CREATED
from scim_bridge.store.links import OPERATOR
from scim_bridge.store.links import LinkStore
from scim_bridge.store.links import LinkTaken
from scim_bridge.store.links import UserLink

if TYPE_CHECKING:
    from scim_bridge.provisioning.protection import Protector

log = logging.getLogger(__name__)

BLOCKING: dict[str, Moderation] = {"block": "block", "deactivate": "deactivate", "ban": "ban"}
UNDO: dict[str, Moderation] = {"blocked": "unblock", "deactivated": "activate", "banned": "unban"}
# How far GitLab's clock may lag the bridge's when telling the bridge's own create (see
# ``UserReconciler._created_by_bridge``).
CLOCK_SKEW = timedelta(minutes=5)


class Rejected(Exception):
    """GitLab refused the desired state for good (no retry can cure it)."""

    def __init__(
        self, kind: Literal["conflict", "invalid"], detail: str, *, tell_client: bool = True
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        # False when the refusal is the operator's to fix (a rule naming a missing GitLab group),
        # not the client's: the client's write stands and the job is parked, visible.
        self.tell_client = tell_client


class Retry(Exception):
    """Try again later: GitLab is down, slow, rate limiting, or the deadline passed."""

    def __init__(
        self, detail: str, retry_after: float | None = None, *, paced: bool = False
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after
        # Waiting on purpose (pacing), not failing: it does not count towards parking the job.
        self.paced = paced


@dataclass
class Deadline:
    at: float | None = None

    @classmethod
    def after(cls, seconds: float | None) -> Deadline:
        return cls(None if seconds is None else time.monotonic() + seconds)

    def remaining(self) -> float | None:
        return None if self.at is None else self.at - time.monotonic()

    def check(self) -> None:
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            raise Retry("the request's deadline passed; the worker continues")


@contextmanager
def gitlab_trouble_is_retry() -> Iterator[None]:
    """GitLab down, slow, rate limiting or refusing the bridge's token: worth trying again later."""
    try:
        yield
    except TransientError as error:
        raise Retry(f"GitLab: {error}", error.retry_after) from error
    except AuthenticationError as error:
        raise Retry(
            f"GitLab refused the bridge's token ({error}); check SCIM_BRIDGE_GITLAB_TOKEN"
        ) from error


@dataclass
class Outcome:
    actions: list[str] = field(default_factory=list)
    follow_up: list[str] = field(default_factory=list)  # job keys this run queued


class UserReconciler:
    """The rules of DESIGN.md "Users" and "Ownership", applied to one user."""

    def __init__(
        self,
        gitlab: GitLabApi,
        documents: Callable[[str], dict[str, Any] | None],
        links: LinkStore,
        users: UsersSettings,
        gitlab_settings: GitLabSettings,
        audit: Callable[[str, str | None, dict[str, Any] | None], None],
        protector: Protector,
        on_linked: Callable[[str], list[str]] | None = None,
    ) -> None:
        self.gitlab = gitlab
        self.on_linked = on_linked
        self.documents = documents
        self.links = links
        self.settings = users
        self.provider = gitlab_settings.identity_provider
        self.audit = audit
        self.protector = protector

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
                document = self.documents(user_id)
                stored = self.links.get(user_id)
                link = stored or UserLink(user_id=user_id)
                protection = self.protector.current()
                if document is None:
                    link = self._deprovision(link, protection, deadline, outcome)
                else:
                    desired = desired_account(document)
                    link = self._provision(desired, link, protection, deadline, outcome)
            # Saved only now, when everything the link stands for was done (DESIGN.md, Ownership):
            # a refused or interrupted run leaves no link behind, and the next run looks again.
            if link != stored and (stored is not None or link.linked):
                newly_linked = self._newly_linked(stored, link)
                consumed = document["userName"] if document and newly_linked else None
                self._save(link, consumed=consumed)
                if newly_linked:
                    outcome.follow_up.extend(self._linked(user_id))
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
    ) -> UserLink:
        account = self._linked_account(link, deadline)
        if account is None:
            link = link.with_(gitlab_user_id=None, gitlab_username=None, retired_at=None)
            account, link = self._pending_link(desired, link, deadline, outcome)
        if account is None:
            account, link = self._find_or_create(desired, link, protection, deadline, outcome)
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
        self, desired: DesiredAccount, link: UserLink, deadline: Deadline, outcome: Outcome
    ) -> tuple[GitLabUser | None, UserLink]:
        """The account the operator linked this userName to before Entra provisioned it."""
        pending = self.links.pending(desired.user_name)
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

    def _find_or_create(
        self,
        desired: DesiredAccount,
        link: UserLink,
        protection: Protection,
        deadline: Deadline,
        outcome: Outcome,
    ) -> tuple[GitLabUser, UserLink]:
        if desired.email is None:
            # SCIM makes emails optional (RFC 7643 §4.1.2), GitLab does not: the user is kept, and
            # the work waits, visible in `scim-bridge jobs`, until Entra sends an address.
            raise Rejected(
                "invalid",
                f"GitLab needs an email address and {desired.user_name!r} has none; "
                'map one in Entra (emails[type eq "work"].value)',
                tell_client=False,
            )
        account: GitLabUser | None = None
        found_by = ""
        if desired.extern_uid:
            deadline.check()
            account = self.gitlab.users.find_by_identity(self.provider, desired.extern_uid)
            found_by = f"the {self.provider} identity {desired.extern_uid}"
        if account is None and self.settings.link_existing == "email":
            deadline.check()
            account = self.gitlab.users.find_by_email(desired.email)
            found_by = f"the email {desired.email}"
        if account is not None:
            origin = self._origin_of_found(desired, link, account, protection, found_by, deadline)
        else:
            account, origin, link = self._create(desired, link, protection, deadline)
        outcome.actions.append(f"{origin} account {account.username} (id {account.id})")
        link = link.with_(
            gitlab_user_id=account.id,
            gitlab_username=account.username,
            source_user_name=desired.user_name if origin == CREATED else link.source_user_name,
            origin=origin,
            retired_at=None,
        )
        return account, link

    def _origin_of_found(
        self,
        desired: DesiredAccount,
        link: UserLink,
        account: GitLabUser,
        protection: Protection,
        found_by: str,
        deadline: Deadline,
    ) -> str:
        """``created`` or ``adopted`` for an account that exists already; raises when refused."""
        if self._created_by_bridge(desired, link, account):
            return CREATED
        who = f"the GitLab account {account.username!r} with {found_by}"
        if self.settings.link_existing != "email":
            raise Rejected(
                "conflict",
                f'{who} exists already, and [users] link_existing = "never" adopts no existing '
                f"account; {link_hint(desired.user_name, account.username)}",
            )
        holder = self.links.holder(account.id, link.user_id)
        pending = self.links.pending_for_account(account.id)
        refusal = adoption_refusal(
            account,
            extern_uid=desired.extern_uid,
            provider=self.provider,
            protection=protection,
            held_by_another=(holder is not None and holder.retired_at is None)
            or (pending is not None and folded(pending.user_name) != folded(desired.user_name)),
        )
        if refusal is None:
            deadline.check()
            if not self.gitlab.users.is_human(account.username):
                refusal = MACHINE_REASON
        if refusal is not None:
            linkable = refusal in (ADMIN_REASON, PROTECTED_REASON)
            hint = f"; {link_hint(desired.user_name, account.username)}" if linkable else ""
            raise Rejected("conflict", f"{who} is {refusal}{hint}")
        if (
            holder is not None
            and holder.origin == CREATED
            and self._same_identity(desired, account)
        ):
            return CREATED  # the same person's account, made by the bridge for an earlier SCIM user
        return ADOPTED

    def _created_by_bridge(
        self, desired: DesiredAccount, link: UserLink, account: GitLabUser
    ) -> bool:
        """This user's own create, whose answer was lost: begun by the bridge for this SCIM user,
        and the account made no earlier than that (GitLab's clock may differ a little)."""
        if link.create_started_at is None or account.created_at is None or account.is_admin:
            return False
        try:
            created_at = datetime.fromisoformat(account.created_at.replace("Z", "+00:00"))
        except ValueError:
            return False
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=UTC)
        return created_at >= link.create_started_at - CLOCK_SKEW and (
            not desired.extern_uid or self._same_identity(desired, account)
        )

    def _same_identity(self, desired: DesiredAccount, account: GitLabUser) -> bool:
        identity = account.identity(self.provider)
        return (
            identity is not None
            and desired.extern_uid is not None
            and identity.extern_uid.lower() == desired.extern_uid.lower()
        )

    def _create(
        self, desired: DesiredAccount, link: UserLink, protection: Protection, deadline: Deadline
    ) -> tuple[GitLabUser, str, UserLink]:
        """A new account (``created``), or the one that took the email meanwhile (``adopted``)."""
        assert desired.email is not None
        if not self.gitlab.dry_run:
            link = link.with_(create_started_at=self.links.mark_create_started(link.user_id))
        for username in candidates(desired.user_name):
            if protection.reserved(username):
                continue  # a protected name takes a suffix, like a taken one
            deadline.check()
            try:
                created = self.gitlab.users.create(
                    username=username,
                    email=desired.email,
                    name=desired.name,
                    provider=self.provider if desired.extern_uid else None,
                    extern_uid=desired.extern_uid,
                )
                return created, CREATED, link
            except ConflictError as error:
                if error.field == "username":
                    continue
                if error.field == "email" and self.settings.link_existing == "email":
                    # Taken between our lookup and the create (or as a secondary email).
                    found = self.gitlab.users.find_by_email(desired.email)
                    if found is not None:
                        origin = self._origin_of_found(
                            desired, link, found, protection, f"the email {desired.email}", deadline
                        )
                        return found, origin, link
                raise Rejected("conflict", f"GitLab: {error.message} ({desired.email})") from error
            except InvalidError as error:
                if "username" in error.errors:
                    continue  # reserved, or the path of a group: the next suffix may pass
                raise Rejected("invalid", f"GitLab refused the account: {error.message}") from error
        raise Rejected("conflict", f"no free GitLab username for {desired.user_name!r}")

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
