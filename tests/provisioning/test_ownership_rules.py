"""Which GitLab accounts the bridge may write to (DESIGN.md, "Ownership").

The rules, as DESIGN.md states them: the bridge writes an account only if it created or adopted
it, and never an administrator or a protected account, whatever the link; an operator link is for
memberships only. An existing account is adoptable only if it is a person, not an administrator,
not protected, not another SCIM user's, and has no other identity under the provider. Protection
follows the account's id, with the configured username as a second look. ``delete``/``hard_delete``
apply only to accounts the bridge created.
"""

from __future__ import annotations

import itertools
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field

import pytest

from scim_bridge.gitlab.errors import NotFoundError
from scim_bridge.gitlab.types import GitLabUser
from scim_bridge.gitlab.types import Identity
from scim_bridge.provisioning.ownership import ADMIN_REASON
from scim_bridge.provisioning.ownership import MACHINE_REASON
from scim_bridge.provisioning.ownership import PROTECTED_REASON
from scim_bridge.provisioning.ownership import Protection
from scim_bridge.provisioning.ownership import adoption_refusal
from scim_bridge.provisioning.ownership import delete_policy
from scim_bridge.provisioning.ownership import link_hint
from scim_bridge.provisioning.ownership import write_refusal
from scim_bridge.provisioning.protection import resolve
from scim_bridge.store.links import ADOPTED
from scim_bridge.store.links import CREATED
from scim_bridge.store.links import OPERATOR
from scim_bridge.store.links import UserLink
from scim_bridge.store.protection import ADMIN
from scim_bridge.store.protection import NAMED
from scim_bridge.store.protection import ProtectedAccount

PROVIDER = "openid_connect"
OBJECT_ID = "8c1e9f2a-4b7d-4e3a-9f61-2d5c8b0a7e14"
PROTECTED_ID = 7
PROTECTION = Protection.of([PROTECTED_ID], ["Root", "ci-deployer"])


def account(
    user_id: int = 42,
    username: str = "jane.doe",
    *,
    is_admin: bool = False,
    bot: bool = False,
    identities: tuple[Identity, ...] = (),
) -> GitLabUser:
    return GitLabUser(
        id=user_id,
        username=username,
        email=f"{username}@contoso.com",
        name=username,
        state="active",
        is_admin=is_admin,
        identities=identities,
        bot=bot,
    )


PERSON = account()
ADMINISTRATOR = account(1, "alice.admin", is_admin=True)
PROTECTED_BY_ID = account(PROTECTED_ID, "renamed-deployer")  # renamed since it was resolved
PROTECTED_BY_NAME = account(99, "ROOT")  # the configured name, whoever holds it now


# Protection


def test_an_administrator_is_never_written() -> None:
    assert PROTECTION.reason(ADMINISTRATOR) == ADMIN_REASON
    assert Protection().reason(ADMINISTRATOR) == ADMIN_REASON  # even before anything is resolved


def test_protection_follows_the_account_id_through_a_rename() -> None:
    assert PROTECTION.reason(PROTECTED_BY_ID) == PROTECTED_REASON


def test_a_protected_username_protects_whoever_holds_it_in_any_case() -> None:
    assert PROTECTION.reason(PROTECTED_BY_NAME) == PROTECTED_REASON
    assert PROTECTION.reason(account(98, "CI-Deployer")) == PROTECTED_REASON


def test_an_ordinary_person_is_not_protected() -> None:
    assert PROTECTION.reason(PERSON) is None
    assert PROTECTION.reason(account(8, "root2")) is None  # a suffixed name is another name


def test_an_administrator_is_reported_as_such_even_when_also_protected() -> None:
    assert PROTECTION.reason(account(PROTECTED_ID, "root", is_admin=True)) == ADMIN_REASON


def test_protected_usernames_are_reserved_in_any_case() -> None:
    assert PROTECTION.reserved("root")
    assert PROTECTION.reserved("ROOT")
    assert PROTECTION.reserved("Ci-Deployer")
    assert not PROTECTION.reserved("root1")
    assert not PROTECTION.reserved("renamed-deployer")  # ids protect accounts, not names


# Writes: which links let the bridge write an account's attributes and state


ORIGINS = (CREATED, ADOPTED, OPERATOR, None)
ACCOUNTS = {
    "person": PERSON,
    "administrator": ADMINISTRATOR,
    "protected by id": PROTECTED_BY_ID,
    "protected by name": PROTECTED_BY_NAME,
}


@pytest.mark.parametrize(
    ("origin", "kind"), list(itertools.product(ORIGINS, ACCOUNTS)), ids=lambda value: str(value)
)
def test_the_bridge_writes_only_created_or_adopted_accounts_never_protected_ones(
    origin: str | None, kind: str
) -> None:
    target = ACCOUNTS[kind]
    link = UserLink("scim-user-1", target.id, target.username, origin=origin)
    refusal = write_refusal(link, target, PROTECTION)
    if kind == "administrator":
        assert refusal == ADMIN_REASON
    elif kind.startswith("protected"):
        assert refusal == PROTECTED_REASON
    elif origin in (CREATED, ADOPTED):
        assert refusal is None
    elif origin == OPERATOR:
        assert refusal is not None, "an operator link let the bridge write the account"
        assert "memberships only" in refusal
    else:
        assert refusal is not None, f"a link of origin {origin!r} let the bridge write the account"


def test_an_unknown_origin_writes_nothing() -> None:
    link = UserLink("scim-user-1", PERSON.id, PERSON.username, origin="imported")
    assert write_refusal(link, PERSON, PROTECTION) == "not created or adopted by the bridge"


# Adoption: which existing accounts the bridge may take over


@dataclass(frozen=True)
class Candidate:
    """An existing account found by email or identity, and who else holds it."""

    admin: bool
    protected: bool
    bot: bool
    held_by_another: bool
    identity: str | None  # its extern_uid under PROVIDER, if any
    other_provider: bool  # it has an identity under another provider too

    def account(self) -> GitLabUser:
        identities = [Identity("saml", "someone-else")] if self.other_provider else []
        if self.identity is not None:
            identities.append(Identity(PROVIDER, self.identity))
        return account(
            PROTECTED_ID if self.protected else 42,
            "jane.doe",
            is_admin=self.admin,
            bot=self.bot,
            identities=tuple(identities),
        )


def every_candidate() -> Iterator[tuple[Candidate, str | None]]:
    flags = (False, True)
    identities = (None, OBJECT_ID, OBJECT_ID.upper(), "another-object-id")
    for admin, protected, bot, held, identity, other, asked in itertools.product(
        flags, flags, flags, flags, identities, flags, (None, OBJECT_ID)
    ):
        yield Candidate(admin, protected, bot, held, identity, other), asked


def expected_adoption_refusal(candidate: Candidate, asked: str | None) -> str | None:
    """DESIGN.md, in its order: admin, protected, machine, another SCIM user, another identity."""
    if candidate.admin:
        return ADMIN_REASON
    if candidate.protected:
        return PROTECTED_REASON
    if candidate.bot:
        return MACHINE_REASON
    if candidate.held_by_another:
        return "linked to another SCIM user"
    same_identity = asked is not None and (candidate.identity or "").lower() == asked.lower()
    if candidate.identity is not None and not same_identity:
        return f"linked to another {PROVIDER} identity"
    return None


def test_adoption_over_every_kind_of_account() -> None:
    checked = 0
    for candidate, asked in every_candidate():
        refusal = adoption_refusal(
            candidate.account(),
            extern_uid=asked,
            provider=PROVIDER,
            protection=PROTECTION,
            held_by_another=candidate.held_by_another,
        )
        assert refusal == expected_adoption_refusal(candidate, asked), (candidate, asked)
        checked += 1
    assert checked == 2**4 * 4 * 2 * 2


def test_a_plain_person_without_identity_is_adoptable() -> None:
    assert (
        adoption_refusal(
            PERSON,
            extern_uid=OBJECT_ID,
            provider=PROVIDER,
            protection=PROTECTION,
            held_by_another=False,
        )
        is None
    )


def test_an_administrator_is_never_adopted_even_with_the_same_identity() -> None:
    """An object id is not a secret (the "nOAuth" pattern): matching it proves nothing."""
    admin = account(1, "alice.admin", is_admin=True, identities=(Identity(PROVIDER, OBJECT_ID),))
    refusal = adoption_refusal(
        admin,
        extern_uid=OBJECT_ID,
        provider=PROVIDER,
        protection=PROTECTION,
        held_by_another=False,
    )
    assert refusal == ADMIN_REASON


def test_a_bot_is_never_adopted() -> None:
    bot = account(50, "project_12_bot", bot=True)
    refusal = adoption_refusal(
        bot, extern_uid=None, provider=PROVIDER, protection=PROTECTION, held_by_another=False
    )
    assert refusal == MACHINE_REASON


def test_another_scim_users_account_is_never_adopted() -> None:
    refusal = adoption_refusal(
        PERSON,
        extern_uid=OBJECT_ID,
        provider=PROVIDER,
        protection=PROTECTION,
        held_by_another=True,
    )
    assert refusal == "linked to another SCIM user"


def test_an_account_with_another_identity_is_never_adopted() -> None:
    other = account(identities=(Identity(PROVIDER, "another-object-id"),))
    for asked in (OBJECT_ID, None):
        refusal = adoption_refusal(
            other,
            extern_uid=asked,
            provider=PROVIDER,
            protection=PROTECTION,
            held_by_another=False,
        )
        assert refusal == f"linked to another {PROVIDER} identity"
    # Its own identity (Entra object ids compare case-insensitively) is no obstacle.
    same = account(identities=(Identity(PROVIDER, OBJECT_ID.upper()),))
    assert (
        adoption_refusal(
            same,
            extern_uid=OBJECT_ID,
            provider=PROVIDER,
            protection=PROTECTION,
            held_by_another=False,
        )
        is None
    )


# Deletion, and the hint the operator gets


@pytest.mark.parametrize("policy", ["block", "delete", "hard_delete"])
@pytest.mark.parametrize("origin", [*ORIGINS, "imported"])
def test_delete_and_hard_delete_apply_only_to_accounts_the_bridge_created(
    policy: str, origin: str | None
) -> None:
    expected = policy if origin == CREATED else "block"
    assert delete_policy(policy, origin) == expected


@pytest.mark.parametrize("user_name", ["jane.doe@contoso.com", "o'brien@x", "a b; rm -rf /"])
def test_the_link_hint_is_a_command_a_shell_reads_back_whole(user_name: str) -> None:
    hint = link_hint(user_name, "jane doe")
    command = hint.split("`")[1]
    assert shlex.split(command) == ["scim-bridge", "users", "link", user_name, "jane doe"]


# Resolving the protected accounts (protection.resolve): reads only, follows ids


@dataclass
class FakeUsers:
    """The three reads ``resolve`` makes of ``gitlab.users``."""

    accounts: list[GitLabUser]
    asked_by_name: list[str] = field(default_factory=list)

    def admins(self) -> list[GitLabUser]:
        return [a for a in self.accounts if a.is_admin]

    def find_by_username(self, username: str) -> GitLabUser | None:
        self.asked_by_name.append(username)
        return next((a for a in self.accounts if a.username.lower() == username.lower()), None)

    def get(self, user_id: int) -> GitLabUser:
        for candidate in self.accounts:
            if candidate.id == user_id:
                return candidate
        raise NotFoundError("404 User Not Found")


@dataclass
class FakeGitLab:
    users: FakeUsers


def test_resolve_protects_administrators_and_the_configured_names() -> None:
    gitlab = FakeGitLab(FakeUsers([ADMINISTRATOR, account(7, "root"), PERSON]))
    resolution = resolve(gitlab, ("root", "root", "ghost"), [])
    assert resolution.accounts == [
        ProtectedAccount(1, ADMIN, "alice.admin"),
        ProtectedAccount(7, NAMED, "root", "root"),
    ]
    assert resolution.missing == ["ghost"]


def test_resolve_keeps_following_a_renamed_account_by_id() -> None:
    """``root`` was renamed, and someone took the name: the protection stays with the account."""
    renamed, squatter = account(7, "old-root"), account(8, "root")
    gitlab = FakeGitLab(FakeUsers([renamed, squatter]))
    known = [ProtectedAccount(7, NAMED, "root", "root")]
    resolution = resolve(gitlab, ("root",), known)
    assert resolution.accounts == [ProtectedAccount(7, NAMED, "old-root", "root")]
    assert gitlab.users.asked_by_name == []
    # The name still protects its new holder at decision time (the second look).
    assert Protection.of([7], ["root"]).reason(squatter) == PROTECTED_REASON


def test_resolve_looks_a_name_up_again_when_its_account_is_gone() -> None:
    gitlab = FakeGitLab(FakeUsers([account(8, "root")]))
    resolution = resolve(gitlab, ("root",), [ProtectedAccount(7, NAMED, "root", "root")])
    assert resolution.accounts == [ProtectedAccount(8, NAMED, "root", "root")]
