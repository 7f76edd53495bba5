"""The GitLab account for a SCIM user with none linked: found, adopted, or created.

An account is looked up by its identity (``extern_uid``) before one is created, so a create that
reached GitLab but whose answer was lost is found, not repeated (and recognised as the bridge's own
by the link's ``create_started_at``). An account found by identity or email is adopted only when
the ownership rules allow it (``ownership.adoption_refusal``); otherwise the run is rejected with
the reason. A new account's username is the first free candidate (``usernames.candidates``).
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

from scim_bridge.gitlab.api import GitLabApi
from scim_bridge.gitlab.errors import ConflictError
from scim_bridge.gitlab.errors import InvalidError
from scim_bridge.gitlab.types import GitLabUser
from scim_bridge.provisioning.accounts import DesiredAccount
from scim_bridge.provisioning.ownership import ADMIN_REASON
from scim_bridge.provisioning.ownership import MACHINE_REASON
from scim_bridge.provisioning.ownership import PROTECTED_REASON
from scim_bridge.provisioning.ownership import Protection
from scim_bridge.provisioning.ownership import adoption_refusal
from scim_bridge.provisioning.ownership import link_hint
from scim_bridge.provisioning.reconciling import Deadline
from scim_bridge.provisioning.reconciling import Outcome
from scim_bridge.provisioning.reconciling import Rejected
from scim_bridge.provisioning.usernames import candidates
from scim_bridge.settings import UsersSettings
from scim_bridge.store.documents import folded
from scim_bridge.store.links import ADOPTED
from scim_bridge.store.links import CREATED
from scim_bridge.store.links import UserLink
from scim_bridge.store.links import UserLinks

# How far GitLab's clock may lag the bridge's when telling the bridge's own create (see
# ``AccountFinder._created_by_bridge``).
CLOCK_SKEW = timedelta(minutes=5)


class AccountFinder:
    """Finds or creates the account of a SCIM user, under the ownership rules (DESIGN.md)."""

    def __init__(
        self,
        gitlab: GitLabApi,
        links: UserLinks,
        settings: UsersSettings,
        provider: str,
    ) -> None:
        self.gitlab = gitlab
        self.links = links
        self.settings = settings
        self.provider = provider

    def find_or_create(
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
