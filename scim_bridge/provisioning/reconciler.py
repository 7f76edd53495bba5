"""Make one GitLab account agree with one stored SCIM User: level-triggered and idempotent.

It reads the desired state (the stored document, or its absence after a DELETE) and what GitLab
has, and makes only the calls that close the difference. Running it twice, or after a crash at any
point, is harmless: an account is always looked up by its identity (``extern_uid``) before one is
created, so a create that reached GitLab but whose answer was lost is found, not repeated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Literal

from scim_bridge import clock
from scim_bridge.gitlab.errors import AuthenticationError
from scim_bridge.gitlab.errors import ConflictError
from scim_bridge.gitlab.errors import ForbiddenError
from scim_bridge.gitlab.errors import InvalidError
from scim_bridge.gitlab.errors import NotFoundError
from scim_bridge.gitlab.errors import TransientError
from scim_bridge.gitlab.types import GitLabUser
from scim_bridge.provisioning.accounts import DesiredAccount
from scim_bridge.provisioning.accounts import desired_account
from scim_bridge.provisioning.usernames import candidates
from scim_bridge.settings import GitLabSettings
from scim_bridge.settings import UsersSettings
from scim_bridge.store.links import LinkStore
from scim_bridge.store.links import UserLink

log = logging.getLogger(__name__)

BLOCKING = {"block": "block", "deactivate": "deactivate", "ban": "ban"}
UNDO = {"blocked": "unblock", "deactivated": "activate", "banned": "unban"}


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
    """The rules of DESIGN.md "Users", applied to one user."""

    def __init__(
        self,
        gitlab: Any,
        documents: Callable[[str], dict[str, Any] | None],
        links: LinkStore,
        users: UsersSettings,
        gitlab_settings: GitLabSettings,
        audit: Callable[[str, str | None, dict[str, Any] | None], None],
        on_linked: Callable[[str], list[str]] | None = None,
    ) -> None:
        self.gitlab = gitlab
        self.on_linked = on_linked
        self.documents = documents
        self.links = links
        self.settings = users
        self.provider = gitlab_settings.identity_provider
        self.audit = audit
        self.protected = {name.lower() for name in users.protected_usernames}

    def _save(self, link: UserLink) -> None:
        """Remember what GitLab has; in dry-run nothing was made, so there is nothing to remember."""
        if not self.gitlab.dry_run:
            self.links.save(link)

    def reconcile(self, user_id: str, deadline: Deadline | None = None) -> Outcome:
        deadline = deadline or Deadline()
        outcome = Outcome()
        with gitlab_trouble_is_retry():
            document = self.documents(user_id)
            link = self.links.get(user_id) or UserLink(user_id=user_id)
            if document is None:
                self._deprovision(link, deadline, outcome)
            else:
                self._provision(desired_account(document), link, deadline, outcome)
        if outcome.actions:
            detail = {"actions": outcome.actions, "planned": self.gitlab.dry_run}
            self.audit("reconcile.user", user_id, detail)
        return outcome

    # -- Present users --------------------------------------------------------

    def _provision(
        self, desired: DesiredAccount, link: UserLink, deadline: Deadline, outcome: Outcome
    ) -> None:
        account = self._linked_account(link, deadline)
        if account is None:
            account, link = self._find_or_create(desired, link, deadline, outcome)
        link = self._update_attributes(desired, account, link, deadline, outcome)
        self._apply_state(desired, account, deadline, outcome)

    def _linked_account(self, link: UserLink, deadline: Deadline) -> GitLabUser | None:
        if link.gitlab_user_id is None:
            return None
        deadline.check()
        try:
            return self.gitlab.users.get(link.gitlab_user_id)
        except NotFoundError:
            # Deleted in GitLab by hand: forget the link, and provision again.
            self._save(link.with_(gitlab_user_id=None, retired_at=None))
            return None

    def _find_or_create(
        self, desired: DesiredAccount, link: UserLink, deadline: Deadline, outcome: Outcome
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
        origin = "found"
        if desired.extern_uid:
            deadline.check()
            account = self.gitlab.users.find_by_identity(self.provider, desired.extern_uid)
        if account is None and self.settings.link_existing == "email":
            deadline.check()
            account = self._adoptable(desired, self.gitlab.users.find_by_email(desired.email))
            origin = "adopted"
        if account is None:
            account = self._create(desired, deadline)
            origin = "created"
        outcome.actions.append(f"{origin} account {account.username} (id {account.id})")
        link = link.with_(
            gitlab_user_id=account.id,
            gitlab_username=account.username,
            source_user_name=desired.user_name if origin == "created" else link.source_user_name,
            origin=origin if link.origin is None else link.origin,
            retired_at=None,
        )
        self._save(link)
        if self.on_linked is not None and not self.gitlab.dry_run:
            # The account exists now: the grants of the user's groups can be applied to it.
            outcome.follow_up.extend(self.on_linked(link.user_id))
        return account, link

    def _adoptable(self, desired: DesiredAccount, account: GitLabUser | None) -> GitLabUser | None:
        if account is None:
            return None
        identity = account.identity(self.provider)
        if (
            identity is not None
            and desired.extern_uid
            and identity.extern_uid != desired.extern_uid
        ):
            raise Rejected(
                "conflict",
                f"GitLab account {account.username!r} has the email {desired.email} but belongs to "
                f"another {self.provider} identity",
            )
        return account

    def _create(self, desired: DesiredAccount, deadline: Deadline) -> GitLabUser:
        for username in candidates(desired.user_name):
            deadline.check()
            try:
                return self.gitlab.users.create(
                    username=username,
                    email=desired.email,
                    name=desired.name,
                    provider=self.provider if desired.extern_uid else None,
                    extern_uid=desired.extern_uid,
                )
            except ConflictError as error:
                if error.field == "username":
                    continue
                if error.field == "email" and self.settings.link_existing == "email":
                    # Taken between our lookup and the create (or as a secondary email).
                    found = self._adoptable(desired, self.gitlab.users.find_by_email(desired.email))
                    if found is not None:
                        return found
                raise Rejected("conflict", f"GitLab: {error.message} ({desired.email})") from error
            except InvalidError as error:
                if "username" in error.errors:
                    continue  # reserved, or the path of a group: the next suffix may pass
                raise Rejected("invalid", f"GitLab refused the account: {error.message}") from error
        raise Rejected("conflict", f"no free GitLab username for {desired.user_name!r}")

    def _update_attributes(
        self,
        desired: DesiredAccount,
        account: GitLabUser,
        link: UserLink,
        deadline: Deadline,
        outcome: Outcome,
    ) -> UserLink:
        changes: dict[str, str] = {}
        if account.name != desired.name:
            changes["name"] = desired.name
        rename = link.source_user_name is not None and link.source_user_name != desired.user_name
        if rename and not _same_base(account.username, desired.username):
            link = self._rename(desired, account, link, changes, deadline, outcome)
        else:
            if changes:
                deadline.check()
                self._update(account.id, changes)
                outcome.actions.append(f"updated {', '.join(sorted(changes))}")
            if link.source_user_name != desired.user_name:
                link = link.with_(source_user_name=desired.user_name)
                self._save(link)
        if desired.email and account.email.lower() != desired.email.lower():
            deadline.check()
            try:
                self.gitlab.users.change_email(account.id, desired.email)
            except ConflictError as error:
                raise Rejected("conflict", f"GitLab: {error.message} ({desired.email})") from error
            except InvalidError as error:
                raise Rejected("invalid", f"GitLab refused the email: {error.message}") from error
            outcome.actions.append("changed email")
        if desired.extern_uid:
            identity = account.identity(self.provider)
            if identity is None or identity.extern_uid != desired.extern_uid:
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

    def _update(self, account_id: int, changes: dict[str, str]) -> GitLabUser:
        try:
            return self.gitlab.users.update(account_id, **changes)
        except InvalidError as error:
            raise Rejected("invalid", f"GitLab refused the update: {error.message}") from error

    def _rename(
        self,
        desired: DesiredAccount,
        account: GitLabUser,
        link: UserLink,
        changes: dict[str, str],
        deadline: Deadline,
        outcome: Outcome,
    ) -> UserLink:
        for username in candidates(desired.user_name):
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
            link = link.with_(gitlab_username=updated.username, source_user_name=desired.user_name)
            self._save(link)
            return link
        raise Rejected("conflict", f"no free GitLab username for {desired.user_name!r}")

    def _apply_state(
        self, desired: DesiredAccount, account: GitLabUser, deadline: Deadline, outcome: Outcome
    ) -> None:
        if desired.active and account.state in UNDO:
            deadline.check()
            self._moderate(account, UNDO[account.state], outcome)
        elif not desired.active and account.state == "active":
            if self._protected(account, "deactivate", outcome):
                return
            deadline.check()
            self._moderate(account, BLOCKING[self.settings.on_deactivate], outcome)

    def _moderate(self, account: GitLabUser, action: str, outcome: Outcome) -> None:
        try:
            getattr(self.gitlab.users, action)(account.id)
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

    def _protected(self, account: GitLabUser, what: str, outcome: Outcome) -> bool:
        if account.username.lower() in self.protected or account.is_admin:
            reason = "a GitLab admin" if account.is_admin else "in protected_usernames"
            outcome.actions.append(f"skipped {what} of {account.username}: {reason}")
            self.audit(
                "reconcile.user.protected", account.username, {"skipped": what, "reason": reason}
            )
            return True
        return False

    # -- Deleted users ---------------------------------------------------------

    def _deprovision(self, link: UserLink, deadline: Deadline, outcome: Outcome) -> None:
        if link.gitlab_user_id is None or link.retired_at is not None:
            return
        deadline.check()
        try:
            account = self.gitlab.users.get(link.gitlab_user_id)
        except NotFoundError:
            account = None
        if account is not None and not self._protected(account, "delete", outcome):
            deadline.check()
            self._apply_delete_policy(account, outcome)
        self._save(link.with_(retired_at=clock.now()))

    def _apply_delete_policy(self, account: GitLabUser, outcome: Outcome) -> None:
        policy = self.settings.on_delete
        if policy == "block":
            if account.state != "blocked":
                self._moderate(account, "block", outcome)
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


def _same_base(current: str, desired_base: str) -> bool:
    """True when ``current`` is the desired base or a suffixed form of it (``jdoe`` / ``jdoe3``)."""
    current, desired_base = current.lower(), desired_base.lower()
    if current == desired_base:
        return True
    return current.startswith(desired_base) and current[len(desired_base) :].isdigit()
