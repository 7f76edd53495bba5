"""What the audit trail records of a SCIM write: who, from where, under which request id, what
changed (values unless redacted), and the GitLab calls it caused with their outcomes."""

from __future__ import annotations

from typing import Any

from scim_bridge.store import audit
from tests.conftest import entra_user


def test_a_write_is_tied_to_its_caller_request_and_gitlab_calls(
    make_bridge: Any, gitlab: Any
) -> None:
    bridge = make_bridge(gitlab)
    request_id = "8f2b7c1e-entra-request"
    response = bridge.scim.post(
        "/Users", entra_user("audit.me@contoso.com"), headers={"client-request-id": request_id}
    )
    assert response.status_code == 201
    assert response.headers["X-Request-Id"] == request_id
    events = [
        event for event in audit.events(bridge.bridge.db) if event["request_id"] == request_id
    ]
    (created,) = [event for event in events if event["action"] == "scim.user.create"]
    assert created["actor"] == "token:entra"
    assert created["source"] == "127.0.0.1"
    assert created["target"] == response.json["id"]
    assert created["detail"]["changed"]["userName"] == "audit.me@contoso.com"
    assert created["at"] is not None
    calls = [event for event in events if event["action"] == "gitlab.call"]
    assert any(
        event["target"].startswith("POST /users") and event["detail"]["status"] == 201
        for event in calls
    ), calls


def test_redact_values_keeps_which_attributes_changed_but_not_their_values(
    make_bridge: Any, gitlab: Any
) -> None:
    bridge = make_bridge(gitlab, audit={"redact_values": True})
    created = bridge.scim.post("/Users", entra_user("hidden@contoso.com", title="Secret Title"))
    user_id = created.json["id"]
    patch = [{"op": "replace", "path": "title", "value": "Another Secret Title"}]
    assert bridge.scim.patch(f"/Users/{user_id}", patch).status_code in (200, 204)
    events = list(audit.events(bridge.bridge.db, action_prefix="scim.user"))
    assert [event["action"] for event in events] == ["scim.user.create", "scim.user.update"]
    assert events[1]["detail"]["changed"] == {"title": "[redacted]"}
    assert "userName" in events[0]["detail"]["changed"]
    trail = repr(list(audit.events(bridge.bridge.db)))
    assert "gitlab.call" in trail and "POST /users" in trail
    assert "Secret Title" not in trail and "hidden@contoso.com" not in trail


def test_behind_a_proxy_the_callers_address_is_audited_and_cannot_be_forged_without(
    make_bridge: Any,
) -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.9"}
    direct = make_bridge()
    assert (
        direct.scim.post("/Users", entra_user("a@contoso.com"), headers=forwarded).status_code
        == 201
    )
    proxied = make_bridge(server={"proxy_hops": 1, "trusted_proxies": ("127.0.0.1",)})
    assert (
        proxied.scim.post("/Users", entra_user("b@contoso.com"), headers=forwarded).status_code
        == 201
    )
    # The same bridge, called by a peer that is not one of its proxies: the header is its own.
    stranger = {"REMOTE_ADDR": "198.51.100.7"}
    created = proxied.scim.post(
        "/Users", entra_user("c@contoso.com"), headers=forwarded, environ_base=stranger
    )
    assert created.status_code == 201
    sources = {
        event["target"]: event["source"]
        for bridge in (direct, proxied)
        for event in audit.events(bridge.bridge.db, action_prefix="scim.user.create")
    }
    assert sorted(sources.values()) == ["127.0.0.1", "198.51.100.7", "203.0.113.9"]
