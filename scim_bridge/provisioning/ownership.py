"""Ownership: which GitLab accounts a SCIM credential may reach through the bridge (DESIGN.md).

The bridge holds an instance administrator's token, so each write it makes is a privilege lent to
whoever holds a SCIM credential. An email address or an Entra object id is not proof of identity
(the "nOAuth" pattern): matching one must never hand an account to the caller. The rules:

- The bridge writes username, email, name, identity and state only to accounts it **created** or
  **adopted**, and never to an administrator or a protected account, whatever the link.
- An existing account is **adoptable** only if it is a person (not a bot, internal or service
  account), not an administrator, not protected, not linked to another SCIM user, and has no
  identity under the provider other than the one asked for. The same holds for an account found
  by its identity: object ids are not secrets.
- Protection is by GitLab user id (administrators and ``protected_usernames`` resolved, see
  ``protection.py``), plus the current administrator flag and username as a second look; no account
  is ever renamed into a protected username.
- ``on_delete = "delete"``/``"hard_delete"`` apply only to accounts the bridge created: an adopted
  account's projects are not the bridge's to destroy, so it is blocked instead.
- An **operator** link (``scim-bridge users link``) lets the rules manage the account's group
  memberships; it never lets the bridge write the account itself.

Everything here is a pure decision on values; the reconciler asks, then acts or refuses.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from scim_bridge.gitlab.types import GitLabUser
from scim_bridge.store.links import ADOPTED
from scim_bridge.store.links import CREATED
from scim_bridge.store.links import OPERATOR
from scim_bridge.store.links import UserLink

ADMIN_REASON = "held by a GitLab administrator"
PROTECTED_REASON = "protected ([users] protected_usernames)"
MACHINE_REASON = "a bot, internal or service account"


@dataclass(frozen=True)
class Protection:
    """The accounts never written to: resolved ids, and the configured names as a second look."""

    ids: frozenset[int] = frozenset()
    names: frozenset[str] = frozenset()  # lower case

    @classmethod
    def of(cls, ids: Iterable[int], names: Iterable[str]) -> Protection:
        return cls(frozenset(ids), frozenset(name.lower() for name in names))

    def reason(self, account: GitLabUser) -> str | None:
        """Why the bridge must not write to ``account``, or None."""
        if account.is_admin:
            return ADMIN_REASON
        if account.id in self.ids or account.username.lower() in self.names:
            return PROTECTED_REASON
        return None

    def reserved(self, username: str) -> bool:
        """A protected username: never given to an account by a create or a rename."""
        return username.lower() in self.names


def write_refusal(link: UserLink, account: GitLabUser, protection: Protection) -> str | None:
    """Why the bridge may not write this account's attributes or state, or None if it may."""
    reason = protection.reason(account)
    if reason is not None:
        return reason
    if link.origin == OPERATOR:
        return "linked by the operator (scim-bridge users link): memberships only"
    if link.origin not in (CREATED, ADOPTED):
        return "not created or adopted by the bridge"
    return None


def adoption_refusal(
    account: GitLabUser,
    *,
    extern_uid: str | None,
    provider: str,
    protection: Protection,
    held_by_another: bool,
) -> str | None:
    """Why an existing account may not be adopted, or None. (A person is checked separately:
    GitLab tells internal users apart only through a lookup, see ``UserManager.is_human``.)"""
    reason = protection.reason(account)
    if reason is not None:
        return reason
    if account.bot:
        return MACHINE_REASON
    if held_by_another:
        return "linked to another SCIM user"
    identity = account.identity(provider)
    if identity is not None and (
        extern_uid is None or identity.extern_uid.lower() != extern_uid.lower()
    ):
        return f"linked to another {provider} identity"
    return None


def delete_policy(policy: str, origin: str | None) -> str:
    """The delete policy an account gets: ``delete``/``hard_delete`` only if the bridge created it."""
    if policy in ("delete", "hard_delete") and origin != CREATED:
        return "block"
    return policy


def link_hint(user_name: str, username: str) -> str:
    """How the operator links a person the bridge refuses to adopt."""
    return f"link it with `scim-bridge users link {shlex.quote(user_name)} {shlex.quote(username)}`"
