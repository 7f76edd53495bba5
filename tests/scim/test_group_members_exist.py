"""A group's members are Users that exist (issue 11): anything else is 400 and nothing is stored.

Every write that adds members (POST, PUT, and each shape of member operation a PATCH can take)
refuses a ``value`` that names no User: an unknown id, a Group's id, an id longer than an id can
be, a value that is not a string, an entry that is not an object or has no value. The answer is
400 ``invalidValue`` naming the offending values (a few, then a count), and the request changes
nothing at all. Removing stays lenient about ids that are not members, not about shapes.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import select

from scim_bridge.store import audit
from scim_bridge.store.schema import group_member_changes
from scim_bridge.store.schema import group_members
from scim_bridge.store.schema import jobs
from tests.conftest import entra_user
from tests.conftest import sql_statements as statements
from tests.scim.test_groups_api import create_group
from tests.scim.test_groups_api import entra_group

FAKE = "fake-member-id"
BASE = "http://localhost/scim/v2"


def create_user(scim: Any, name: str) -> str:
    response = scim.post("/Users", entra_user(f"{name}@contoso.com"))
    assert response.status_code == 201, response.json
    return str(response.json["id"])


def refused(response: Any, *named: str) -> str:
    """A 400 invalidValue naming each of ``named``; returns its detail."""
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["scimType"] == "invalidValue", response.json
    detail = str(response.json["detail"])
    for value in named:
        assert value in detail, detail
    return detail


def count(bridge: Any, table: Any, *where: Any) -> int:
    with bridge.bridge.db.transaction(write=False) as tx:
        statement = select(func.count()).select_from(table).where(*where)
        return int(tx.connection.execute(statement).scalar_one())


def member(value: Any) -> dict[str, Any]:
    return {"$ref": None, "value": value}


# Every shape of PATCH that adds members, each carrying the bad ``value`` given to it.
ADDING_PATCHES = {
    "add with path": lambda v: [{"op": "Add", "path": "members", "value": [member(v)]}],
    "add one object": lambda v: [{"op": "add", "path": "members", "value": member(v)}],
    "path-less add": lambda v: [{"op": "add", "value": {"members": [member(v)]}}],
    "path-less replace": lambda v: [
        {"op": "replace", "value": {"displayName": "Renamed", "members": [member(v)]}}
    ],
    "replace members": lambda v: [{"op": "replace", "path": "members", "value": [member(v)]}],
    "value path (in full)": lambda v: [
        {"op": "replace", "path": f'members[value eq "{v}"].display', "value": "Shown"}
    ],
    "urn path": lambda v: [
        {
            "op": "add",
            "path": "urn:ietf:params:scim:schemas:core:2.0:Group:members",
            "value": [member(v)],
        }
    ],
}


@pytest.mark.parametrize("shape", sorted(ADDING_PATCHES))
def test_a_patch_adding_a_member_that_is_no_user_is_refused_whole(
    bridge: Any, scim: Any, shape: str
) -> None:
    """One unknown id refuses the whole PATCH: its other operations are not applied either."""
    alice, bob = create_user(scim, "alice"), create_user(scim, "bob")
    group = create_group(scim, members=[member(alice)])
    at = f"/Groups/{group['id']}"
    before = scim.get(at).json
    changes = count(bridge, group_member_changes)
    events = len(list(audit.events(bridge.bridge.db)))
    operations = [
        {"op": "Replace", "path": "displayName", "value": "Changed first"},
        {"op": "Add", "path": "members", "value": [member(bob)]},
        *ADDING_PATCHES[shape](FAKE),
    ]
    refused(scim.patch(at, operations), FAKE)
    assert scim.get(at).json == before  # name, members, version and lastModified as they were
    assert count(bridge, group_member_changes) == changes
    assert len(list(audit.events(bridge.bridge.db))) == events


def test_post_and_put_refuse_members_that_are_no_users_and_store_nothing(
    bridge: Any, scim: Any
) -> None:
    alice = create_user(scim, "alice")
    body = entra_group("Phantoms", members=[member(alice), member(FAKE)])
    refused(scim.post("/Groups", body), FAKE)
    assert scim.get('/Groups?filter=displayName eq "Phantoms"').json["totalResults"] == 0
    assert count(bridge, group_members) == 0

    group = create_group(scim, members=[member(alice)])
    at = f"/Groups/{group['id']}"
    before = scim.get(at).json
    replacement = entra_group("Renamed", members=[member(FAKE)])
    refused(scim.put(at, replacement), FAKE)
    assert scim.get(at).json == before


def test_a_foreign_ref_does_not_make_a_member_and_is_not_kept(scim: Any) -> None:
    """``$ref`` and ``type`` are the server's: they follow from the stored User."""
    alice = create_user(scim, "alice")
    foreign = {"value": FAKE, "$ref": f"https://elsewhere.example/scim/Users/{FAKE}"}
    refused(scim.post("/Groups", entra_group("Foreign", members=[foreign])), FAKE)
    claimed = {"value": alice, "$ref": "https://elsewhere.example/Groups/x", "type": "Group"}
    group = create_group(scim, members=[claimed])
    expected = [{"value": alice, "$ref": f"{BASE}/Users/{alice}", "type": "User"}]
    assert group["members"] == expected
    assert scim.get(f"/Groups/{group['id']}").json["members"] == expected


def test_a_group_cannot_be_a_member(scim: Any) -> None:
    """Nested groups are not provisioned (entra.md §1.8): a group's id is refused, and said so."""
    inner = create_group(scim, "Inner")
    outer = create_group(scim, "Outer")
    add = [{"op": "Add", "path": "members", "value": [member(inner["id"])]}]
    detail = refused(scim.patch(f"/Groups/{outer['id']}", add), inner["id"])
    assert "a Group" in detail
    refused(scim.post("/Groups", entra_group("Nested", members=[member(inner["id"])])))
    assert "members" not in scim.get(f"/Groups/{outer['id']}").json


MALFORMED = {
    "plain string": "abc",
    "number value": {"value": 123},
    "no value": {"display": "Jane"},
    "empty value": {"value": ""},
    "null value": {"value": None},
    "list value": {"value": ["abc"]},
    "number display": {"value": "placeholder", "display": 5},
    "null entry": None,
}


# scim2-models itself refuses a remove whose value holds a non-object or a list as ``value``.
MALFORMED_CASES = [
    *((op, name) for op in ("add", "replace") for name in sorted(MALFORMED)),
    *(
        ("remove", name)
        for name in ("empty value", "no value", "null value", "number display", "number value")
    ),
]


@pytest.mark.parametrize(("op", "name"), MALFORMED_CASES)
def test_malformed_members_are_refused(scim: Any, op: str, name: str) -> None:
    """Entries that are not ``{"value": "<id>"}`` objects: 400 for adds and removes alike.

    (A remove of ``[{"display": "Jane"}]`` used to remove every member.)
    """
    alice = create_user(scim, "alice")
    group = create_group(scim, members=[member(alice)])
    at = f"/Groups/{group['id']}"
    entry = MALFORMED[name]
    if isinstance(entry, dict) and entry.get("value") == "placeholder":
        entry = {**entry, "value": alice}
    detail = refused(scim.patch(at, [{"op": op, "path": "members", "value": [entry]}]))
    assert "members must be objects" in detail
    assert [m["value"] for m in scim.get(at).json["members"]] == [alice]


def test_a_plain_string_as_the_members_value_is_refused(scim: Any) -> None:
    group = create_group(scim)
    at = f"/Groups/{group['id']}"
    refused(scim.patch(at, [{"op": "add", "path": "members", "value": "abc"}]), '"abc"')
    refused(scim.patch(at, [{"op": "add", "value": {"members": ["abc"]}}]), '"abc"')
    refused(scim.post("/Groups", entra_group("Strings", members=["abc"])))
    refused(scim.post("/Groups", entra_group("No value", members=[{"display": "x"}])))
    assert "members" not in scim.get(at).json


@pytest.mark.parametrize("length", [37, 65, 10_000])
def test_overlong_values_are_refused_before_any_sql(bridge: Any, scim: Any, length: int) -> None:
    """On PostgreSQL, a value longer than the column was a 500; now no statement sees it."""
    long_id = "x" * length
    group = create_group(scim)
    at = f"/Groups/{group['id']}"
    with statements(bridge) as seen:
        detail = refused(
            scim.patch(at, [{"op": "add", "path": "members", "value": [member(long_id)]}])
        )
        refused(scim.post("/Groups", entra_group("Long", members=[member(long_id)])))
        put = scim.put(at, entra_group("GitLab Developers", members=[member(long_id)]))
        refused(put)
        for remove in (
            [{"op": "remove", "path": "members", "value": [member(long_id)]}],
            [{"op": "remove", "path": f'members[value eq "{long_id}"]'}],
        ):
            assert scim.patch(at, remove).status_code == 204  # not a member: nothing to do
    assert len(detail) < 400
    assert ("\u2026" in detail) == (length > 80)  # a long value is shown shortened
    assert all(long_id not in statement for statement in seen)
    assert "members" not in scim.get(at).json


def test_ten_thousand_unknown_ids_get_a_short_answer_from_few_queries(
    bridge: Any, scim: Any
) -> None:
    """The detail names the first ten and counts the rest; existence is checked per batch."""
    group = create_group(scim)
    at = f"/Groups/{group['id']}"
    unknown = [f"fake-{n:05}" for n in range(10_000)]
    with statements(bridge) as seen:
        response = scim.patch(
            at, [{"op": "Add", "path": "members", "value": [member(u) for u in unknown]}]
        )
    detail = refused(response, *unknown[:10])
    assert unknown[10] not in detail and "9990 more" in detail and "10000 values" in detail
    assert len(detail) < 400
    assert len(seen) < 40, seen  # 10 batches of 1,000 ids for each lookup, not 10,000 queries
    assert "members" not in scim.get(at).json


def test_removing_stays_lenient_about_ids_not_shapes(scim: Any) -> None:
    alice = create_user(scim, "alice")
    group = create_group(scim, members=[member(alice)])
    at = f"/Groups/{group['id']}"
    for remove in (
        [{"op": "Remove", "path": "members", "value": [member("not-a-member")]}],
        [{"op": "remove", "path": 'members[value eq "ghost"]'}],
        [{"op": "remove", "path": "members", "value": [member(FAKE), member("other-ghost")]}],
    ):
        assert scim.patch(at, remove).status_code == 204
    assert [m["value"] for m in scim.get(at).json["members"]] == [alice]
    # An entry without a value names no one: refused (it used to remove every member).
    bad = [{"op": "Remove", "path": "members", "value": [{"display": "Alice"}]}]
    refused(scim.patch(at, bad), '{"display": "Alice"}')
    assert [m["value"] for m in scim.get(at).json["members"]] == [alice]


def test_a_deleted_user_leaves_no_phantom_and_cannot_be_added_back(bridge: Any, scim: Any) -> None:
    alice, bob = create_user(scim, "alice"), create_user(scim, "bob")
    first = create_group(scim, "First", members=[member(alice), member(bob)])
    second = create_group(scim, "Second", members=[member(alice)])
    assert scim.delete(f"/Users/{alice}").status_code == 204
    assert [m["value"] for m in scim.get(f"/Groups/{first['id']}").json["members"]] == [bob]
    assert "members" not in scim.get(f"/Groups/{second['id']}").json
    found = scim.get(f'/Groups?filter=members eq "{alice}"').json
    assert found["totalResults"] == 0
    assert count(bridge, group_members, group_members.c.member_id == alice) == 0
    add = [{"op": "Add", "path": "members", "value": [member(alice)]}]
    refused(scim.patch(f"/Groups/{second['id']}", add), alice)
    assert "members" not in scim.get(f"/Groups/{second['id']}").json


def test_a_refused_write_queues_no_work(bridge: Any, scim: Any) -> None:
    """The refusal rolls back the request's transaction: no job, no audit event, no change."""
    alice = create_user(scim, "alice")
    group = create_group(scim)
    bridge.run_worker()
    queued = count(bridge, jobs)
    events = [e["action"] for e in audit.events(bridge.bridge.db)]
    add = [{"op": "Add", "path": "members", "value": [member(alice), member(FAKE)]}]
    refused(scim.patch(f"/Groups/{group['id']}", add), FAKE)
    assert count(bridge, jobs) == queued
    assert [e["action"] for e in audit.events(bridge.bridge.db)] == events
    assert count(bridge, group_members) == 0
