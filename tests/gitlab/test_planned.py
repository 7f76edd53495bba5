"""PlannedGitLab: the dry-run client touches no network and records what it would do."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from typing import Any

import pytest
import requests

from scim_bridge.gitlab.client import GitLab
from scim_bridge.gitlab.errors import GitLabError
from scim_bridge.gitlab.errors import NotFoundError
from scim_bridge.gitlab.groups import GroupManager
from scim_bridge.gitlab.members import MemberManager
from scim_bridge.gitlab.planned import PlannedGitLab
from scim_bridge.gitlab.planned import PlannedGroupManager
from scim_bridge.gitlab.planned import PlannedMemberManager
from scim_bridge.gitlab.planned import PlannedUserManager
from scim_bridge.gitlab.types import CallRecord
from scim_bridge.gitlab.users import UserManager
from tests.gitlab.conftest import PROVIDER
from tests.gitlab_double import GitLabDouble

PAIRS = [
    (GitLab, PlannedGitLab),
    (UserManager, PlannedUserManager),
    (GroupManager, PlannedGroupManager),
    (MemberManager, PlannedMemberManager),
]


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


@pytest.mark.parametrize(("real", "planned"), PAIRS)
def test_same_surface_as_the_real_client(real: type, planned: type) -> None:
    assert public_methods(planned) == public_methods(real)
    assert (real.dry_run if real is GitLab else False) is False
    assert PlannedGitLab.dry_run is True


def writes(gl: Any, user: int, group: int) -> list[Callable[[], Any]]:
    """The same write operations, for the real and the planned client."""
    return [
        lambda: gl.users.create(
            username="jane",
            email="jane@example.com",
            name="Jane",
            provider=PROVIDER,
            extern_uid="oid",
        ),
        lambda: gl.members.add_many(group, [1, user], 30),
        lambda: gl.members.update(group, user, 40),
        lambda: gl.members.remove(group, user),
        lambda: gl.users.update(user, name="Jane Doe"),
        lambda: gl.users.change_email(user, "jane2@example.com"),
        lambda: gl.users.block(user),
        lambda: gl.users.moderate(user, "unblock"),
        lambda: gl.users.delete(user, hard=True),
    ]


def test_no_http_at_all(double: GitLabDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("PlannedGitLab made an HTTP request")

    monkeypatch.setattr(requests.Session, "request", no_network)
    records: list[CallRecord] = []
    planned = PlannedGitLab(on_call=records.append, url=double.url)
    for action in writes(planned, 2, 7):
        action()
    assert planned.users.find_by_identity(PROVIDER, "oid") is None
    assert planned.users.find_by_username("jane") is None
    assert planned.users.find_by_email("jane@example.com") is None
    assert planned.groups.find("acme/dev") is None
    assert planned.members.list_direct(7) == [] and planned.members.list_all(7) == []
    with pytest.raises(NotFoundError):
        planned.users.get(2)
    planned.metadata()
    planned.current_user()
    assert double.requests == []
    assert all(r.planned and r.status is None and r.outcome == "planned" for r in records)
    assert [f"{r.method} {r.path}" for r in records] == [
        "POST /users",
        "POST /groups/7/members",
        "PUT /groups/7/members/2",
        "DELETE /groups/7/members/2",
        "PUT /users/2",
        "POST /users/2/emails",
        "PUT /users/2",
        "POST /users/2/block",
        "POST /users/2/unblock",
        "DELETE /users/2?hard_delete=true",
        "GET /users?extern_uid=oid&provider=openid_connect",
        "GET /users?username=jane",
        "GET /users?search=jane@example.com",
        "GET /groups/acme%2Fdev?with_projects=False",
        "GET /groups/7/members",
        "GET /groups/7/members/all",
        "GET /users/2",
        "GET /metadata",
        "GET /user",
    ]


def test_writes_return_synthetic_objects() -> None:
    planned = PlannedGitLab()
    user = planned.users.create(
        username="jane", email="jane@example.com", name="Jane", provider=PROVIDER, extern_uid="oid"
    )
    assert (user.id, user.username, user.identity(PROVIDER).extern_uid) == (0, "jane", "oid")
    group = planned.groups.create(name="Dev", path="dev", parent_id=3)
    assert (group.id, group.parent_id) == (0, 3)
    assert planned.users.update(5, username="jd").id == 5


def test_planned_records_match_the_real_calls(double: GitLabDouble) -> None:
    """Dry-run audit lines name the same method and path as the real client's writes."""
    user = double.add_user("existing", "e@example.com")["id"]
    group = double.add_group("acme")["id"]
    real: list[CallRecord] = []
    live = GitLab(double.url, double.admin_token, on_call=real.append)
    for action in writes(live, user, group):
        action()
    planned: list[CallRecord] = []
    dry = PlannedGitLab(on_call=planned.append)
    for action in writes(dry, user, group):
        action()
    assert [(r.method, r.path) for r in planned] == [(r.method, r.path) for r in real]
    assert all(r.outcome == "ok" for r in real)


MODERATIONS = ("block", "unblock", "deactivate", "activate", "ban", "unban")


def other_calls(gl: Any, user: int, other: int, group: int) -> list[Callable[[], Any]]:
    """The calls `writes` leaves out, refused or not (a refusal still names its call)."""
    return [
        *(lambda a=action: gl.users.moderate(user, a) for action in MODERATIONS),
        lambda: gl.users.moderate(user, "deactivate"),
        lambda: gl.users.moderate(user, "activate"),
        lambda: gl.users.moderate(user, "ban"),
        lambda: gl.users.moderate(user, "unban"),
        lambda: gl.users.set_identity(user, PROVIDER, "oid-x"),
        lambda: gl.users.update(user, username="renamed"),
        lambda: gl.groups.create(name="Dev", path="dev", parent_id=group),
        lambda: gl.groups.create(name="Top", path="top", parent_id=None, visibility="internal"),
        lambda: gl.members.add_many(group, [user], 30),
        lambda: gl.members.add_many(group, [user, other, user], 40),
    ]


def test_every_other_planned_call_names_the_real_one(double: GitLabDouble) -> None:
    user = double.add_user("existing", "e@example.com")["id"]
    other = double.add_user("other", "o@example.com")["id"]
    group = double.add_group("acme")["id"]
    real: list[CallRecord] = []
    live = GitLab(double.url, double.admin_token, on_call=real.append)
    for action in other_calls(live, user, other, group):
        with contextlib.suppress(GitLabError):
            action()
    planned: list[CallRecord] = []
    dry = PlannedGitLab(on_call=planned.append)
    for action in other_calls(dry, user, other, group):
        action()
    assert [(r.method, r.path) for r in planned] == [(r.method, r.path) for r in real]
    assert len(planned) == 16
