"""`UserReconciler` against in-memory fakes (README "Who the bridge writes to"; DESIGN.md, Users
and Ownership): what it writes to GitLab, what it refuses to write, and the link it leaves.

Each test reads the end state of the fakes (accounts, links, audit) and the GitLab calls made.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace
from typing import Any

import pytest

from scim_bridge.gitlab.types import Identity
from scim_bridge.provisioning.reconciler import UserReconciler
from scim_bridge.provisioning.reconciling import Rejected
from scim_bridge.store.links import ADOPTED
from scim_bridge.store.links import CREATED
from scim_bridge.store.links import OPERATOR
from scim_bridge.store.links import UserLink
from tests.provisioning.fakes import NOW
from tests.provisioning.fakes import PROVIDER
from tests.provisioning.fakes import AuditLog
from tests.provisioning.fakes import FakeGitLab
from tests.provisioning.fakes import FakeLinks
from tests.provisioning.fakes import protector
from tests.provisioning.fakes import settings

USER = "u-1"
OID = "oid-1"


def document(**fields: Any) -> dict[str, Any]:
    """Jane Doe as Entra provisions her."""
    doc: dict[str, Any] = {
        "userName": "jdoe@example.com",
        "externalId": OID,
        "displayName": "Jane Doe",
        "emails": [{"value": "jdoe@example.com", "primary": True}],
        "active": True,
    }
    doc.update(fields)
    return doc


@dataclass
class World:
    gitlab: FakeGitLab
    documents: dict[str, dict[str, Any]]
    links: FakeLinks
    audit: AuditLog
    linked: list[str]
    reconciler: UserReconciler

    def run(self) -> list[str]:
        """Reconcile USER; the actions taken."""
        return self.reconciler.reconcile(USER).actions


def world(protected: tuple[str, ...] = ("root",), **users: Any) -> World:
    gitlab = FakeGitLab()
    documents: dict[str, dict[str, Any]] = {USER: document()}
    links = FakeLinks()
    audit = AuditLog()
    linked: list[str] = []

    def on_linked(user_id: str) -> list[str]:
        linked.append(user_id)
        return ["gitlab_group:acme/eng"]

    config = settings(users={"protected_usernames": list(protected), **users})
    reconciler = UserReconciler(
        gitlab,
        documents.get,
        links,
        config.users,
        config.gitlab,
        audit,
        protector(gitlab, config.users.protected_usernames),
        on_linked=on_linked,
    )
    return World(gitlab, documents, links, audit, linked, reconciler)


def linked_to(w: World, username: str, origin: str, **fields: Any) -> int:
    """An account of the test's, linked to USER with ``origin``; its id."""
    account = w.gitlab.users.add(username, **fields)
    w.links.links[USER] = UserLink(USER, account.id, username, "jdoe@example.com", origin)
    return account.id


# -- Creating and updating ------------------------------------------------------------


def test_a_new_user_gets_an_account_with_its_identity_and_a_created_link() -> None:
    w = world()
    outcome = w.reconciler.reconcile(USER)
    assert w.gitlab.writes() == [
        ("users.create", "jdoe", "jdoe@example.com", "Jane Doe", PROVIDER, OID)
    ]
    (account,) = w.gitlab.users.accounts.values()
    assert account.identities == (Identity(PROVIDER, OID),)
    link = w.links.get(USER)
    assert link is not None
    assert (link.gitlab_user_id, link.origin, link.gitlab_username) == (account.id, CREATED, "jdoe")
    assert w.linked == [USER]
    assert outcome.follow_up == ["gitlab_group:acme/eng"]
    assert w.audit.actions() == ["reconcile.user"]


def provisioning_calls(w: World) -> list[tuple[Any, ...]]:
    """The calls the run made for the user (without resolving protected accounts, done once)."""
    return [c for c in w.gitlab.calls if c[0] not in ("users.admins", "users.find_by_username")]


def test_a_new_user_costs_one_call_the_create() -> None:
    w = world()
    w.run()
    assert provisioning_calls(w) == [
        ("users.create", "jdoe", "jdoe@example.com", "Jane Doe", PROVIDER, OID)
    ]


def test_a_create_whose_answer_may_be_lost_looks_up_by_identity_first() -> None:
    w = world()
    w.links.mark_create_started(USER)  # an earlier run asked GitLab, and got no answer
    made = w.gitlab.users.add(
        "jdoe", email="jdoe@example.com", identities=(Identity(PROVIDER, OID),)
    )
    w.gitlab.users.accounts[made.id] = replace(made, created_at=NOW.isoformat())
    w.run()
    assert provisioning_calls(w)[0] == ("users.find_by_identity", PROVIDER, OID)
    assert w.gitlab.called("users.create") == []
    link = w.links.links[USER]
    assert (link.gitlab_user_id, link.origin) == (made.id, CREATED)


def test_an_identity_held_by_another_account_is_found_and_judged_after_the_refused_create() -> None:
    w = world()
    holder = w.gitlab.users.add(
        "jane", email="jane@elsewhere.com", is_admin=True, identities=(Identity(PROVIDER, OID),)
    )
    with pytest.raises(Rejected, match="held by a GitLab administrator"):
        w.run()
    refused_create_only(w)
    assert w.gitlab.users.accounts == {holder.id: holder}
    assert [c[0] for c in provisioning_calls(w)] == ["users.create", "users.find_by_identity"]


def test_a_refused_create_never_vouches_for_an_account_made_later() -> None:
    """The mark of a create GitLab refused is taken back: an account that appears afterwards
    with the same email is judged by the adoption rules, not taken for the bridge's own."""
    w = world()
    del w.documents[USER]["externalId"]
    bot = w.gitlab.users.add("jdoe", email="jdoe@example.com", bot=True)
    with pytest.raises(Rejected, match="bot"):
        w.run()
    del w.gitlab.users.accounts[bot.id]
    w.gitlab.users.add("jdoe", email="jdoe@example.com", bot=True, created_at=NOW.isoformat())
    w.gitlab.calls.clear()
    with pytest.raises(Rejected, match="bot"):
        w.run()
    assert [c[0] for c in provisioning_calls(w)] == ["users.create", "users.find_by_email"]
    link = w.links.get(USER)
    assert link is None or (not link.linked and link.create_started_at is None)


def test_a_second_run_writes_nothing() -> None:
    w = world()
    w.run()
    w.gitlab.calls.clear()
    assert w.run() == []
    assert w.gitlab.writes() == []


def test_a_taken_username_takes_the_next_candidate() -> None:
    w = world()
    w.gitlab.users.add("jdoe", email="someone.else@example.com")
    w.run()
    assert [call[1] for call in w.gitlab.called("users.create")] == ["jdoe", "jdoe1"]
    assert w.links.links[USER].gitlab_username == "jdoe1"


def test_changed_name_and_email_are_written_to_an_account_the_bridge_created() -> None:
    w = world()
    account = linked_to(w, "jdoe", CREATED, identities=(Identity(PROVIDER, OID),))
    w.documents[USER] = document(
        displayName="Jane Roe", emails=[{"value": "jroe@example.com", "primary": True}]
    )
    w.run()
    assert w.gitlab.writes() == [
        ("users.update", account, {"name": "Jane Roe"}),
        ("users.change_email", account, "jroe@example.com"),
    ]
    assert w.gitlab.users.accounts[account].name == "Jane Roe"
    assert w.gitlab.users.accounts[account].email == "jroe@example.com"


def test_active_false_blocks_and_active_true_unblocks() -> None:
    w = world()
    account = linked_to(w, "jdoe", CREATED, name="Jane Doe", identities=(Identity(PROVIDER, OID),))
    w.documents[USER] = document(active=False)
    w.run()
    assert w.gitlab.users.accounts[account].state == "blocked"
    w.documents[USER] = document(active=True)
    w.run()
    assert w.gitlab.users.accounts[account].state == "active"
    assert w.gitlab.writes() == [
        ("users.moderate", account, "block"),
        ("users.moderate", account, "unblock"),
    ]


def test_on_deactivate_chooses_the_moderation() -> None:
    w = world(on_deactivate="deactivate")
    account = linked_to(w, "jdoe", CREATED, name="Jane Doe", identities=(Identity(PROVIDER, OID),))
    w.documents[USER] = document(active=False)
    w.run()
    assert w.gitlab.writes() == [("users.moderate", account, "deactivate")]
    assert w.gitlab.users.accounts[account].state == "deactivated"


# -- Ownership: accounts the bridge never writes -----------------------------------------


@pytest.mark.parametrize(
    ("origin", "protected", "fields"),
    [
        pytest.param(CREATED, (), {"is_admin": True}, id="administrator"),
        pytest.param(ADOPTED, ("jdoe",), {}, id="protected-username"),
        pytest.param(OPERATOR, (), {}, id="operator-link"),
    ],
)
def test_an_account_the_bridge_may_not_write_is_left_as_it_is(
    origin: str, protected: tuple[str, ...], fields: dict[str, Any]
) -> None:
    w = world(protected=protected)
    account = linked_to(w, "jdoe", origin, name="Old Name", **fields)
    before = w.gitlab.users.accounts[account]
    w.documents[USER] = document(
        active=False, emails=[{"value": "new@example.com", "primary": True}]
    )
    actions = w.run()
    assert w.gitlab.writes() == []
    assert w.gitlab.users.accounts[account] == before
    assert w.links.links[USER].origin == OPERATOR  # memberships only, from now on
    skipped = [e for e in w.audit.events if e.action == "reconcile.user.skipped"]
    assert skipped and skipped[0].detail is not None
    assert skipped[0].detail["skipped"] == ["name", "email", "identity", "block"]
    assert any(action.startswith("skipped name, email, identity, block") for action in actions)


def refused_create_only(w: World) -> None:
    """The one write was the create GitLab refused (the email or identity is taken): no account
    was made or changed, and the mark of the create in progress was taken back."""
    assert w.gitlab.writes() == [
        ("users.create", "jdoe", "jdoe@example.com", "Jane Doe", PROVIDER, OID)
    ]
    assert all(
        a.email != "jdoe@example.com" or a.username != "jdoe"
        for a in w.gitlab.users.accounts.values()
    )
    link = w.links.get(USER)
    assert link is None or (not link.linked and link.create_started_at is None)


def test_an_administrator_found_by_email_is_not_adopted() -> None:
    w = world()
    admin = w.gitlab.users.add("jane", email="jdoe@example.com", is_admin=True)
    with pytest.raises(Rejected, match="held by a GitLab administrator"):
        w.run()
    refused_create_only(w)
    assert w.gitlab.users.accounts == {admin.id: admin}


def test_an_account_another_scim_user_holds_is_not_adopted() -> None:
    w = world()
    account = w.gitlab.users.add("jane", email="jdoe@example.com")
    w.links.links["u-2"] = UserLink("u-2", account.id, "jane", "jane@example.com", CREATED)
    with pytest.raises(Rejected, match="linked to another SCIM user"):
        w.run()
    refused_create_only(w)
    assert w.gitlab.users.accounts[account.id] == account


# -- Adopt or create: [users] link_existing --------------------------------------------------


def test_link_existing_email_adopts_the_account_with_that_email() -> None:
    w = world(link_existing="email")
    account = w.gitlab.users.add("jane", email="JDoe@example.com", name="Jane Doe").id
    w.run()
    # The create comes first and meets GitLab's 409 on the email; then the lookups and adoption.
    assert w.gitlab.writes() == [
        ("users.create", "jdoe", "jdoe@example.com", "Jane Doe", PROVIDER, OID),
        ("users.set_identity", account, PROVIDER, OID),
    ]
    assert len(w.gitlab.users.accounts) == 1
    link = w.links.links[USER]
    assert (link.gitlab_user_id, link.origin) == (account, ADOPTED)


def test_link_existing_never_refuses_the_account_with_that_email() -> None:
    w = world(link_existing="never")
    w.gitlab.users.add("jane", email="jdoe@example.com")
    with pytest.raises(Rejected, match="Email has already been taken"):
        w.run()
    # No lookup by email: the create meets GitLab's 409 on the taken email, and nothing is linked.
    assert w.gitlab.called("users.find_by_email") == []
    assert w.gitlab.writes() == [
        ("users.create", "jdoe", "jdoe@example.com", "Jane Doe", PROVIDER, OID)
    ]
    assert len(w.gitlab.users.accounts) == 1
    link = w.links.get(USER)
    assert link is None or not link.linked


def test_link_existing_never_refuses_the_account_with_that_identity() -> None:
    w = world(link_existing="never")
    jane = w.gitlab.users.add("jane", identities=(Identity(PROVIDER, OID),))
    with pytest.raises(Rejected, match='link_existing = "never" adopts no existing account'):
        w.run()
    refused_create_only(w)  # GitLab refused the taken identity (400 identities.extern_uid)
    assert w.gitlab.users.accounts == {jane.id: jane}


# -- Deleted users: [users] on_delete ---------------------------------------------------------


@pytest.mark.parametrize(
    ("on_delete", "origin", "writes", "left"),
    [
        ("block", CREATED, [("users.moderate", "block")], "blocked"),
        ("delete", CREATED, [("users.delete", False)], None),
        ("hard_delete", CREATED, [("users.delete", True)], None),
        ("delete", ADOPTED, [("users.moderate", "block")], "blocked"),  # not the bridge's
        ("hard_delete", ADOPTED, [("users.moderate", "block")], "blocked"),
    ],
)
def test_a_deleted_user_gets_the_delete_policy_of_its_link(
    on_delete: str, origin: str, writes: list[tuple[str, Any]], left: str | None
) -> None:
    w = world(on_delete=on_delete)
    account = linked_to(w, "jdoe", origin)
    del w.documents[USER]
    w.run()
    assert w.gitlab.writes() == [(call, account, arg) for call, arg in writes]
    state = w.gitlab.users.accounts.get(account)
    assert (state.state if state else None) == left
    assert w.links.links[USER].retired_at is not None


def test_a_sole_group_owner_is_blocked_when_gitlab_refuses_the_delete() -> None:
    w = world(on_delete="delete")
    account = linked_to(w, "jdoe", CREATED)
    w.gitlab.users.sole_owners.add(account)
    del w.documents[USER]
    w.run()
    assert w.gitlab.writes() == [("users.delete", account, False), ("users.block", account)]
    assert w.gitlab.users.accounts[account].state == "blocked"


def test_a_deleted_user_never_deletes_an_administrator() -> None:
    w = world(on_delete="hard_delete")
    account = linked_to(w, "jdoe", CREATED, is_admin=True)
    del w.documents[USER]
    w.run()
    assert w.gitlab.writes() == []
    assert w.gitlab.users.accounts[account].state == "active"
