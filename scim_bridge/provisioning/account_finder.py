"""The GitLab account for a SCIM user with none linked: created, or found and adopted.

A SCIM user with no create in progress is created at once (one ``POST /users``, the floor):
GitLab itself refuses a second account for a taken email (409, primary or secondary) or a taken
identity (400 ``identities.extern_uid``), and only then are the accounts looked up, by identity and
then by email, and the one found adopted when the ownership rules allow it
(``ownership.adoption_refusal``); otherwise the run is rejected with the reason. The direct create
therefore never reaches an existing account: it makes a new one, or GitLab refuses it and the
rules decide exactly as if the lookups had come first.

A create that may have reached GitLab before (``create_started_at`` on the link: its answer was
lost) looks up by identity first, so the account is found, not made twice, and recognised as the
bridge's own. A new account's username is the first free candidate (``usernames.candidates``).
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

from scim_bridge.gitlab.api import GitLabApi
from scim_bridge.gitlab.errors import ConflictError
from scim_bridge.gitlab.errors import InvalidError
from scim_bridge.gitlab.errors import identity_taken
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
from scim_bridge.store.links import LinkTaken
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
        if link.create_started_at is not None:
            # A create was begun before and its answer may have been lost: find it, not repeat it.
            account, found_by = self._look_up(desired, deadline)
            if account is not None:
                origin = self._origin_of_found(
                    desired, link, account, protection, found_by, deadline
                )
        if account is None:
            account, origin, link = self._create_or_adopt(desired, link, protection, deadline)
        outcome.actions.append(f"{origin} account {account.username} (id {account.id})")
        link = link.with_(
            gitlab_user_id=account.id,
            gitlab_username=account.username,
            source_user_name=desired.user_name if origin == CREATED else link.source_user_name,
            origin=origin,
            retired_at=None,
            # The account is known now: with the link saved, the mark has nothing left to
            # vouch for, and must never vouch for another account later.
            create_started_at=None,
        )
        return account, link

    def _create_or_adopt(
        self, desired: DesiredAccount, link: UserLink, protection: Protection, deadline: Deadline
    ) -> tuple[GitLabUser, str, UserLink]:
        """Create; only if GitLab refuses (email or identity taken), look up and adopt."""
        try:
            return self._create(desired, link, protection, deadline)
        except _Taken as taken:
            # GitLab made no account: whatever holds the email or identity is someone else's, so
            # the rules decide on the link as it was, without this attempt's mark.
            account, found_by = self._look_up(desired, deadline)
            if account is None:  # e.g. the address is another account's secondary email
                raise Rejected("conflict", taken.reason) from taken.error
            origin = self._origin_of_found(desired, link, account, protection, found_by, deadline)
            return account, origin, link

    def _look_up(
        self, desired: DesiredAccount, deadline: Deadline
    ) -> tuple[GitLabUser | None, str]:
        """The account holding the user's identity, else (``link_existing = "email"``) the one
        whose primary email is the user's, and how it was found."""
        if desired.extern_uid:
            deadline.check()
            account = self.gitlab.users.find_by_identity(self.provider, desired.extern_uid)
            if account is not None:
                return account, f"the {self.provider} identity {desired.extern_uid}"
        if self.settings.link_existing == "email" and desired.email is not None:
            deadline.check()
            account = self.gitlab.users.find_by_email(desired.email)
            if account is not None:
                return account, f"the email {desired.email}"
        return None, ""

    def _origin_of_found(
        self,
        desired: DesiredAccount,
        link: UserLink,
        account: GitLabUser,
        protection: Protection,
        found_by: str,
        deadline: Deadline,
    ) -> str:
        """``created`` or ``adopted`` for an account that exists already; raises when refused.

        The refusals that protect accounts (admin, protected, machine, another SCIM user's,
        another identity) hold even for an account that looks like this user's own lost create:
        the create is attempted without a lookup first, so an account made shortly before it
        (within ``CLOCK_SKEW``) could otherwise pass for the bridge's.
        """
        ours = self._created_by_bridge(desired, link, account)
        who = f"the GitLab account {account.username!r} with {found_by}"
        if not ours and self.settings.link_existing != "email":
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
        self._claim(account, link)
        if ours or (
            holder is not None
            and holder.origin == CREATED
            and self._same_identity(desired, account)
        ):
            # This user's own create whose answer was lost, or the same person's account made
            # by the bridge for an earlier SCIM user.
            return CREATED
        return ADOPTED

    def _claim(self, account: GitLabUser, link: UserLink) -> None:
        """Hold the account for this user's run before any write to it: another SCIM user's run
        may have found it adoptable too, and only one of them may write to it."""
        if self.gitlab.dry_run:
            return  # nothing is written, and no link is saved
        try:
            self.links.claim_account(account.id, link.user_id, account.username)
        except LinkTaken as taken:
            raise Rejected("conflict", str(taken)) from taken

    def _created_by_bridge(
        self, desired: DesiredAccount, link: UserLink, account: GitLabUser
    ) -> bool:
        """This user's own create, whose answer was lost: begun by the bridge for this SCIM user,
        the account made around then (GitLab's clock may differ a little; a mark stays only
        until the link is saved, but a GitLab refusal of the create may leave it longer), under
        a username the bridge would have given it, and with the user's identity if it has one.
        Anything else is someone's account: at most adopted, so never deleted by the bridge."""
        if link.create_started_at is None or account.created_at is None or account.is_admin:
            return False
        try:
            created_at = datetime.fromisoformat(account.created_at.replace("Z", "+00:00"))
        except ValueError:
            return False
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=UTC)
        started = link.create_started_at
        return (
            started - CLOCK_SKEW <= created_at <= started + CLOCK_SKEW
            and account.username.lower() in {name.lower() for name in candidates(desired.user_name)}
            and (not desired.extern_uid or self._same_identity(desired, account))
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
        """A new account (``created``). Raises :class:`_Taken` when GitLab refuses it because the
        email or the identity is taken: then no account was made, and the mark this attempt wrote
        is taken back, so it can never vouch later for an account the bridge did not make."""
        assert desired.email is not None
        marked = link
        if not self.gitlab.dry_run:
            marked = link.with_(create_started_at=self.links.mark_create_started(link.user_id))
        try:
            return self._post(desired, protection, deadline), CREATED, marked
        except (_Taken, Rejected):
            if marked is not link:
                self._unmark(link)
            raise

    def _unmark(self, link: UserLink) -> None:
        """GitLab's final word, nothing was created: the stored link gets back the mark it had
        before this attempt, and keeps everything else."""
        stored = self.links.get(link.user_id)
        if stored is not None:
            self.links.save(stored.with_(create_started_at=link.create_started_at))

    def _post(
        self, desired: DesiredAccount, protection: Protection, deadline: Deadline
    ) -> GitLabUser:
        """``POST /users`` with each free username candidate in turn."""
        assert desired.email is not None
        for username in candidates(desired.user_name):
            if protection.reserved(username):
                continue  # a protected name takes a suffix, like a taken one
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
                raise _Taken(error, f"GitLab: {error.message} ({desired.email})") from error
            except InvalidError as error:
                if identity_taken(error):
                    raise _Taken(
                        error, f"GitLab: the {self.provider} identity {desired.extern_uid} is taken"
                    ) from error
                if "username" in error.errors:
                    continue  # reserved, or the path of a group: the next suffix may pass
                raise Rejected("invalid", f"GitLab refused the account: {error.message}") from error
        raise Rejected("conflict", f"no free GitLab username for {desired.user_name!r}")


class _Taken(Exception):
    """GitLab refused a new account: its email or its identity belongs to an account already."""

    def __init__(self, error: ConflictError | InvalidError, reason: str) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason
