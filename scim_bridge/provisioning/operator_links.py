"""The operator's links: ``scim-bridge users link``, ``unlink`` and ``list`` (DESIGN.md, Ownership).

An administrator or a protected person may also be provisioned from Entra. The bridge refuses to
adopt such an account by email or identity, because no SCIM request is proof enough; the operator
links it deliberately instead. An operator link lets the group rules manage the account's
memberships, and never lets the bridge write its username, email, identity or state.
"""

from __future__ import annotations

from dataclasses import dataclass

from scim_bridge.gitlab.api import GitLabApi
from scim_bridge.gitlab.types import GitLabUser
from scim_bridge.provisioning.protection import Protector
from scim_bridge.store import audit
from scim_bridge.store import memberships
from scim_bridge.store.db import Database
from scim_bridge.store.documents import folded
from scim_bridge.store.links import OPERATOR
from scim_bridge.store.links import LinkStore
from scim_bridge.store.links import LinkTaken
from scim_bridge.store.links import UserLink
from scim_bridge.store.protection import ADMIN


class OperatorLinkError(Exception):
    """A link or unlink that cannot be made; the message says why and what to do."""


@dataclass(frozen=True)
class LinkRow:
    """One line of ``scim-bridge users list``."""

    user_name: str
    gitlab_username: str
    gitlab_user_id: int
    origin: str
    protection: str  # "admin", "protected" or "-" (as last resolved)
    # "live", "retired" (the SCIM user was deleted) or "pending" (Entra has not provisioned it)
    state: str


class OperatorLinks:
    def __init__(
        self, db: Database, gitlab: GitLabApi, links: LinkStore, protector: Protector
    ) -> None:
        self.db = db
        self.gitlab = gitlab
        self.links = links
        self.protector = protector

    def link(self, user_name: str, username: str) -> tuple[UserLink, str | None, list[str]]:
        """Link a SCIM user to a GitLab account by hand.

        Returns the link, why the account is protected (if it is), and the jobs that apply the
        user's group memberships to it.
        """
        if self.gitlab.dry_run:
            raise OperatorLinkError(
                "GitLab is not configured (dry-run): there is no GitLab account to link"
            )
        account: GitLabUser | None = self.gitlab.users.find_by_username(username)
        if account is None:
            raise OperatorLinkError(f"GitLab has no account with the username {username!r}")
        pending = self.links.pending_for_account(account.id)
        if pending is not None and folded(pending.user_name) != folded(user_name):
            raise OperatorLinkError(
                f"GitLab account {account.username!r} is waiting to be linked to "
                f"{pending.user_name!r}; run `scim-bridge users unlink {pending.user_name}` first"
            )
        user_id = self.links.user_id_for(folded(user_name))
        if user_id is None:
            return self._link_later(user_name, account), None, []
        holder = self.links.holder(account.id, user_id)
        if holder is not None and holder.retired_at is None:
            raise OperatorLinkError(
                f"GitLab account {account.username!r} is linked to another SCIM user "
                f"({holder.user_id}); unlink that one first"
            )
        current = self.links.get(user_id)
        if (
            current is not None
            and current.linked
            and current.retired_at is None
            and current.gitlab_user_id != account.id
        ):
            raise OperatorLinkError(
                f"SCIM user {user_name!r} is linked to GitLab account {current.gitlab_username!r} "
                f"({current.origin}); run `scim-bridge users unlink {user_name}` first"
            )
        reason = self.protector.current().reason(account)
        link = UserLink(
            user_id=user_id,
            gitlab_user_id=account.id,
            gitlab_username=account.username,
            source_user_name=user_name,
            origin=OPERATOR,
            create_started_at=current.create_started_at if current else None,
        )
        with self.db.transaction(write=True) as tx:
            try:
                self.links.save(link)
            except LinkTaken as taken:
                raise OperatorLinkError(f"{taken}; unlink that one first") from taken
            memberships.note_user_linked(user_id)
            audit.record(
                "user.link",
                user_id,
                {
                    "gitlab_user_id": account.id,
                    "account": account.username,
                    "origin": OPERATOR,
                    "before": current.origin if current and current.linked else None,
                    "protected": reason,
                },
            )
            return link, reason, list(tx.job_keys)

    def _link_later(self, user_name: str, account: GitLabUser) -> UserLink:
        """Entra has not provisioned the user yet: its first provisioning takes this link."""
        holder = self._live_holder(account.id)
        if holder is not None:
            raise OperatorLinkError(
                f"GitLab account {account.username!r} is linked to another SCIM user "
                f"({holder.user_id}); unlink that one first"
            )
        reason = self.protector.current().reason(account)
        with self.db.transaction(write=True):
            self.links.add_pending(user_name, account.id, account.username)
            audit.record(
                "user.link.pending",
                user_name,
                {
                    "gitlab_user_id": account.id,
                    "account": account.username,
                    "origin": OPERATOR,
                    "protected": reason,
                },
            )
        return UserLink(
            user_id="",
            gitlab_user_id=account.id,
            gitlab_username=account.username,
            source_user_name=user_name,
            origin=OPERATOR,
        )

    def _live_holder(self, gitlab_user_id: int) -> UserLink | None:
        holder = self.links.holder(gitlab_user_id, other_than="")
        return holder if holder is not None and holder.retired_at is None else None

    def unlink(self, user_name: str) -> UserLink:
        """Forget a SCIM user's link; the bridge stops managing the account and its memberships.

        The memberships the bridge granted stay in GitLab as they are, and are no longer
        managed; a later provisioning of the user must find or create an account again, under
        the ownership rules.
        """
        pending = self.links.pending(user_name)
        if pending is not None:
            with self.db.transaction(write=True):
                self.links.drop_pending(user_name)
                audit.record(
                    "user.unlink",
                    pending.user_name,
                    {
                        "gitlab_user_id": pending.gitlab_user_id,
                        "account": pending.gitlab_username,
                        "origin": "pending",
                    },
                )
            return UserLink(
                user_id="",
                gitlab_user_id=pending.gitlab_user_id,
                gitlab_username=pending.gitlab_username,
                origin="pending",
            )
        user_id = self._scim_user(user_name)
        current = self.links.get(user_id)
        if current is None or not current.linked:
            raise OperatorLinkError(f"SCIM user {user_name!r} is not linked to a GitLab account")
        with self.db.transaction(write=True):
            self.links.forget(user_id)
            memberships.forget_managed(current.gitlab_user_id or 0)
            audit.record(
                "user.unlink",
                user_id,
                {
                    "gitlab_user_id": current.gitlab_user_id,
                    "account": current.gitlab_username,
                    "origin": current.origin,
                },
            )
        return current

    def rows(self) -> list[LinkRow]:
        """Every link, with its origin and the protection last resolved (no GitLab call)."""
        protection: dict[int, str] = {}
        for account in self.protector.store.all():
            kind = "admin" if account.reason == ADMIN else "protected"
            if protection.get(account.gitlab_user_id) != "admin":
                protection[account.gitlab_user_id] = kind
        rows = []
        for listing in self.links.listing():
            link = listing.link
            assert link.gitlab_user_id is not None
            rows.append(
                LinkRow(
                    user_name=listing.user_name or link.source_user_name or link.user_id,
                    gitlab_username=link.gitlab_username or "?",
                    gitlab_user_id=link.gitlab_user_id,
                    origin=link.origin or "?",
                    protection=protection.get(link.gitlab_user_id, "-"),
                    state="retired" if link.retired_at is not None else "live",
                )
            )
        for pending in self.links.all_pending():
            rows.append(
                LinkRow(
                    user_name=pending.user_name,
                    gitlab_username=pending.gitlab_username,
                    gitlab_user_id=pending.gitlab_user_id,
                    origin=OPERATOR,
                    protection=protection.get(pending.gitlab_user_id, "-"),
                    state="pending",
                )
            )
        return rows

    def _scim_user(self, user_name: str) -> str:
        user_id = self.links.user_id_for(folded(user_name))
        if user_id is None:
            raise OperatorLinkError(f"no SCIM user has the userName {user_name!r}")
        return user_id


__all__ = ["LinkRow", "OperatorLinkError", "OperatorLinks"]
