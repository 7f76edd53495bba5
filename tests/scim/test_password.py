"""``password`` is never stored, audited or returned, however Entra or anyone else spells it.

Entra sends a password when an admin maps one (entra.md §1.4); the bridge gives GitLab accounts
random passwords of its own, so it accepts the request and keeps nothing of it. Each test looks for
the literal secret in every answer, in every row of every table (the raw JSON included), and so in
every audit event's detail.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import inspect
from sqlalchemy import text
from sqlalchemy import update

from scim_bridge.store import audit
from scim_bridge.store.schema import users
from tests.conftest import entra_user

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

# Body fragments of a POST or PUT that carry a password: every spelling that reaches the store.
SPELLINGS: dict[str, Callable[[str], dict[str, Any]]] = {
    "password": lambda secret: {"password": secret},
    "Password": lambda secret: {"Password": secret},
    "PASSWORD": lambda secret: {"PASSWORD": secret},
    "urn-qualified": lambda secret: {f"{CORE}:password": secret},
    "urn-qualified capitalised": lambda secret: {f"{CORE}:Password": secret},
    "under the core schema urn": lambda secret: {CORE: {"password": secret}},
    "under the core schema urn, upper case": lambda secret: {CORE: {"PASSWORD": secret}},
    "inside an extension": lambda secret: {ENTERPRISE: {"department": "R&D", "password": secret}},
}

# PATCH operations that set a password and nothing else, in RFC 7644's and Entra's dialects.
PATCHES: dict[str, Callable[[str], dict[str, Any]]] = {
    "path password": lambda s: {"op": "replace", "path": "password", "value": s},
    "path PASSWORD": lambda s: {"op": "replace", "path": "PASSWORD", "value": s},
    "path Password, Entra's Add": lambda s: {"op": "Add", "path": "Password", "value": s},
    "urn path": lambda s: {"op": "add", "path": f"{CORE}:password", "value": s},
    "urn path, Entra's Replace": lambda s: {
        "op": "Replace",
        "path": f"{CORE}:Password",
        "value": s,
    },
    "path-less password": lambda s: {"op": "replace", "value": {"password": s}},
    "path-less PASSWORD": lambda s: {"op": "Replace", "value": {"PASSWORD": s}},
    "path-less urn key": lambda s: {"op": "Replace", "value": {f"{CORE}:password": s}},
    "path-less urn object": lambda s: {"op": "add", "value": {CORE: {"password": s}}},
    "schema urn path": lambda s: {"op": "add", "path": CORE, "value": {"password": s}},
}


def new_secret() -> str:
    return f"Pw-{uuid.uuid4().hex}-never-stored"


def database_text(bridge: Any) -> str:
    """Every row of every table, raw, as one string: the secret must be nowhere in it."""
    engine = bridge.bridge.db.engine
    dumped = []
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            rows = connection.execute(text(f'SELECT * FROM "{table}"')).all()
            dumped.extend(json.dumps(list(row), default=str) for row in rows)
    return "\n".join(dumped)


def assert_nowhere(bridge: Any, secret: str, *responses: Any) -> None:
    for response in responses:
        assert secret not in response.get_data(as_text=True)
    for event in audit.events(bridge.bridge.db):
        assert secret not in json.dumps(event, default=str)
    assert secret not in database_text(bridge)


def assert_reads_hold_no_password(bridge: Any, user_id: str, secret: str) -> None:
    scim = bridge.scim
    reads = [
        scim.get(f"/Users/{user_id}"),
        scim.get(f"/Users/{user_id}?attributes=password,{CORE}:password"),
        scim.get("/Users"),
        scim.post(
            "/Users/.search", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}
        ),
    ]
    for read in reads:
        assert read.status_code == 200, read.get_data(as_text=True)
    assert_nowhere(bridge, secret, *reads)


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_post_and_put_store_audit_and_return_no_password(make_bridge: Any, spelling: str) -> None:
    bridge = make_bridge()
    first, second = new_secret(), new_secret()

    created = bridge.scim.post("/Users", {**entra_user(), **SPELLINGS[spelling](first)})
    assert created.status_code == 201, created.get_data(as_text=True)
    user_id = created.json["id"]
    assert_nowhere(bridge, first, created)
    assert_reads_hold_no_password(bridge, user_id, first)

    body = {**entra_user(displayName="Jane Q. Doe"), **SPELLINGS[spelling](second)}
    replaced = bridge.scim.put(f"/Users/{user_id}", body)
    assert replaced.status_code == 200, replaced.get_data(as_text=True)
    assert replaced.json["displayName"] == "Jane Q. Doe"  # the rest of the write applies
    assert_nowhere(bridge, second, replaced)
    assert_reads_hold_no_password(bridge, user_id, second)
    assert audit.events(bridge.bridge.db, action_prefix="scim.user.update")


@pytest.mark.parametrize("operation", PATCHES)
def test_patch_setting_only_a_password_succeeds_and_keeps_nothing(
    make_bridge: Any, operation: str
) -> None:
    bridge = make_bridge()
    created = bridge.scim.post("/Users", entra_user())
    assert created.status_code == 201
    user_id = created.json["id"]
    before = stored_document(bridge, user_id)
    secret = new_secret()

    patched = bridge.scim.patch(f"/Users/{user_id}", [PATCHES[operation](secret)])
    assert patched.status_code == 200, patched.get_data(as_text=True)
    assert stored_document(bridge, user_id) == before  # nothing was stored
    assert_nowhere(bridge, secret, patched)
    assert_reads_hold_no_password(bridge, user_id, secret)
    (update_event,) = audit.events(bridge.bridge.db, action_prefix="scim.user.update")
    assert update_event["detail"]["changed"] == {}


def test_a_password_beside_other_changes_in_one_patch_is_dropped_alone(make_bridge: Any) -> None:
    bridge = make_bridge()
    user_id = bridge.scim.post("/Users", entra_user()).json["id"]
    secret = new_secret()
    operations = [
        {"op": "Replace", "path": "displayName", "value": "Jane Q. Doe"},
        {"op": "Replace", "value": {"Password": secret, "title": "Engineer"}},
        {"op": "Add", "path": f"{CORE}:password", "value": secret},
    ]
    patched = bridge.scim.patch(f"/Users/{user_id}", operations)
    assert patched.status_code == 200, patched.get_data(as_text=True)
    assert patched.json["displayName"] == "Jane Q. Doe"
    assert patched.json["title"] == "Engineer"
    assert_nowhere(bridge, secret, patched)
    (update_event,) = audit.events(bridge.bridge.db, action_prefix="scim.user.update")
    assert set(update_event["detail"]["changed"]) == {"displayName", "title"}


def test_a_password_an_older_version_stored_is_not_returned_audited_nor_kept(
    make_bridge: Any,
) -> None:
    """Rows written before this fix may hold the URN-qualified password: reads and writes drop it."""
    bridge = make_bridge()
    user_id = bridge.scim.post("/Users", entra_user()).json["id"]
    secret = new_secret()
    legacy = {**stored_document(bridge, user_id), f"{CORE}:password": secret}
    with bridge.bridge.db.transaction(write=True) as tx:
        tx.connection.execute(update(users).where(users.c.id == user_id).values(data=legacy))

    fetched = bridge.scim.get(f"/Users/{user_id}")
    assert fetched.status_code == 200
    assert secret not in fetched.get_data(as_text=True)

    patch = [{"op": "replace", "path": "displayName", "value": "Renamed"}]
    patched = bridge.scim.patch(f"/Users/{user_id}", patch)
    assert patched.status_code == 200, patched.get_data(as_text=True)
    assert_nowhere(bridge, secret, fetched, patched)  # the write left no password behind
    (update_event,) = audit.events(bridge.bridge.db, action_prefix="scim.user.update")
    assert update_event["detail"]["changed"] == {"displayName": "Renamed"}


def test_a_password_of_the_wrong_type_is_a_scim_error_that_does_not_echo_it(
    make_bridge: Any,
) -> None:
    bridge = make_bridge()
    secret = new_secret()
    refused = bridge.scim.post("/Users", {**entra_user(), "password": {"value": secret}})
    assert refused.status_code == 400, refused.get_data(as_text=True)
    assert refused.json["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert_nowhere(bridge, secret, refused)


def stored_document(bridge: Any, user_id: str) -> dict[str, Any]:
    document = bridge.bridge.users.data(user_id)
    assert document is not None
    return document
