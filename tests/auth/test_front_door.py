"""The front door through the app: failed authentications are counted per address and answered 429
past the allowance, a valid credential is never refused for its address's traffic, and the
X-Forwarded-* headers are believed only from the configured proxies."""

from __future__ import annotations

import uuid
from typing import Any

from scim_bridge.store import audit
from tests.conftest import BridgeUnderTest
from tests.conftest import entra_user

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
FORM = "application/x-www-form-urlencoded"
NEIGHBOUR = {"REMOTE_ADDR": "192.0.2.10"}  # Entra and an attacker behind one address
ELSEWHERE = {"REMOTE_ADDR": "192.0.2.99"}
WRONG = {"Authorization": "Bearer sbt_0011223344556677_" + "x" * 43}


def few_failures(make_bridge: Any, **server: Any) -> BridgeUnderTest:
    """Five failed authentications a minute per address; no request-rate limit in the way."""
    bridge: BridgeUnderTest = make_bridge(auth={"failures_per_minute": 5}, server=server)
    return bridge


def assert_throttled(response: Any) -> None:
    assert response.status_code == 429, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/scim+json"
    body = response.json
    assert body["schemas"] == [ERROR] and body["status"] == "429"
    assert int(response.headers["Retry-After"]) >= 1


def test_failures_past_the_allowance_are_429_with_retry_after(make_bridge: Any) -> None:
    bridge = few_failures(make_bridge)
    http = bridge.app.test_client()
    statuses = [
        http.get("/scim/v2/Users", headers=WRONG, environ_base=NEIGHBOUR).status_code
        for _ in range(5)
    ]
    assert statuses == [401] * 5, "the allowance is a burst of failures_per_minute"
    assert_throttled(http.get("/scim/v2/Users", headers=WRONG, environ_base=NEIGHBOUR))
    assert_throttled(http.get("/scim/v2/Groups", environ_base=NEIGHBOUR))  # no credential at all
    # Another address has its own allowance.
    assert http.get("/scim/v2/Users", headers=WRONG, environ_base=ELSEWHERE).status_code == 401


def test_a_valid_token_is_never_refused_for_its_addresss_failures(make_bridge: Any) -> None:
    bridge = few_failures(make_bridge)
    http = bridge.app.test_client()
    valid = {"Authorization": f"Bearer {bridge.token}"}
    seen = set()
    for _ in range(30):
        seen.add(http.get("/scim/v2/Users", headers=WRONG, environ_base=NEIGHBOUR).status_code)
        answer = http.get("/scim/v2/Users", headers=valid, environ_base=NEIGHBOUR)
        assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    assert seen == {401, 429}, "the address was throttled all along"
    created = bridge.scim.post("/Users", entra_user(), environ_base=NEIGHBOUR)
    assert created.status_code == 201


def token_request(http: Any, client_id: str, secret: str, environ: dict[str, str]) -> Any:
    form = f"grant_type=client_credentials&client_id={client_id}&client_secret={secret}"
    return http.post("/oauth2/token", data=form, content_type=FORM, environ_base=environ)


def test_token_endpoint_failures_are_counted_and_a_valid_client_still_gets_its_token(
    make_bridge: Any,
) -> None:
    bridge = few_failures(make_bridge)
    http = bridge.app.test_client()
    client = bridge.bridge.clients.create("entra-oauth")
    statuses = [
        token_request(http, client.client_id, "sbs_00_wrong", NEIGHBOUR).status_code
        for _ in range(6)
    ]
    assert statuses == [401] * 5 + [429]
    throttled = token_request(http, client.client_id, "sbs_00_wrong", NEIGHBOUR)
    assert throttled.status_code == 429
    assert throttled.json["error"] == "slow_down"  # an RFC 6749 error body, not SCIM's
    assert int(throttled.headers["Retry-After"]) >= 1
    assert throttled.headers["Cache-Control"] == "no-store"
    issued = token_request(http, client.client_id, client.client_secret, NEIGHBOUR)
    assert issued.status_code == 200, issued.get_data(as_text=True)
    access = {"Authorization": f"Bearer {issued.json['access_token']}"}
    assert http.get("/scim/v2/Users", headers=access, environ_base=NEIGHBOUR).status_code == 200
    # SCIM and the token endpoint share one count of the address's failures.
    assert_throttled(http.get("/scim/v2/Users", headers=WRONG, environ_base=NEIGHBOUR))


def test_bad_token_requests_count_against_the_address_rate_not_a_valid_client(
    make_bridge: Any,
) -> None:
    """A malformed request is no failed authentication, but it spends the address's rate."""
    bridge: BridgeUnderTest = make_bridge(
        server={"rate_limit_per_second": 50.0, "rate_limit_burst": 50}
    )
    http = bridge.app.test_client()
    client = bridge.bridge.clients.create("entra-oauth")
    for _ in range(3000):
        answer = http.post(
            "/oauth2/token", data="grant_type=password", content_type=FORM, environ_base=NEIGHBOUR
        )
        if answer.status_code == 429:
            break
    assert answer.status_code == 429 and answer.json["error"] == "slow_down"
    issued = token_request(http, client.client_id, client.client_secret, NEIGHBOUR)
    assert issued.status_code == 200


# -- Forwarded headers --------------------------------------------------------------------------

PROXY = {"REMOTE_ADDR": "10.0.0.2"}


def create_user(bridge: BridgeUnderTest, headers: dict[str, str], environ: dict[str, str]) -> Any:
    user = entra_user(f"{uuid.uuid4().hex[:12]}@contoso.com")
    return bridge.scim.post("/Users", user, headers=headers, environ_base=environ)


def audited_source(
    bridge: BridgeUnderTest, headers: dict[str, str], environ: dict[str, str]
) -> str:
    """The source address the audit trail records for a user created with these headers."""
    created = create_user(bridge, headers, environ)
    assert created.status_code == 201, created.get_data(as_text=True)[:300]
    (event,) = [
        event
        for event in audit.events(bridge.bridge.db, action_prefix="scim.user.create")
        if event["target"] == created.json["id"]
    ]
    return str(event["source"])


def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(make_bridge: Any) -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.9"}
    nobody_trusted = make_bridge()
    assert audited_source(nobody_trusted, forwarded, PROXY) == "10.0.0.2"
    bridge = make_bridge(server={"trusted_proxies": ("10.0.0.0/24",)})
    assert audited_source(bridge, forwarded, PROXY) == "203.0.113.9"
    assert audited_source(bridge, forwarded, {"REMOTE_ADDR": "198.51.100.7"}) == "198.51.100.7"
    assert audited_source(bridge, {}, PROXY) == "10.0.0.2", "no header: the proxy itself"


def test_the_caller_is_the_rightmost_address_that_is_no_trusted_proxy(make_bridge: Any) -> None:
    """Entries left of it were written by the caller: "6.6.6.6" below is a forgery."""
    chain = {"X-Forwarded-For": "6.6.6.6, 203.0.113.9, 10.0.0.7"}
    bridge = make_bridge(server={"trusted_proxies": ("10.0.0.0/24",)})
    assert audited_source(bridge, chain, PROXY) == "203.0.113.9"
    # proxy_hops caps the walk: one hop believes only the entry the peer wrote.
    capped = make_bridge(server={"trusted_proxies": ("10.0.0.0/24",), "proxy_hops": 1})
    assert audited_source(capped, chain, PROXY) == "10.0.0.7"
    garbage = {"X-Forwarded-For": "not-an-address, 10.0.0.7"}
    assert audited_source(bridge, garbage, PROXY) == "10.0.0.7"


def test_failures_are_counted_per_forwarded_caller_behind_a_trusted_proxy(
    make_bridge: Any,
) -> None:
    bridge = few_failures(make_bridge, trusted_proxies=("10.0.0.0/24",))
    http = bridge.app.test_client()

    def refused(caller: str) -> int:
        headers = {**WRONG, "X-Forwarded-For": caller}
        return int(http.get("/scim/v2/Users", headers=headers, environ_base=PROXY).status_code)

    assert [refused("203.0.113.9") for _ in range(6)] == [401] * 5 + [429]
    assert refused("203.0.113.10") == 401, "another caller through the same proxy"


def location(bridge: BridgeUnderTest, headers: dict[str, str], environ: dict[str, str]) -> str:
    created = create_user(bridge, headers, environ)
    assert created.status_code == 201
    return str(created.json["meta"]["location"])


def test_forwarded_host_is_believed_only_when_the_operator_says_so(make_bridge: Any) -> None:
    forwarded = {
        "X-Forwarded-Host": "scim.example.com",
        "X-Forwarded-Port": "8443",
        "X-Forwarded-Proto": "https",
    }
    trusted = {"trusted_proxies": ("10.0.0.2",)}
    default = make_bridge(server=trusted)
    assert location(default, forwarded, PROXY).startswith("https://localhost/scim/v2/Users/")
    believed = make_bridge(server={**trusted, "trust_forwarded_host": True})
    assert location(believed, forwarded, PROXY).startswith(
        "https://scim.example.com:8443/scim/v2/Users/"
    )
    stranger = {"REMOTE_ADDR": "198.51.100.7"}
    assert location(believed, forwarded, stranger).startswith("http://localhost/scim/v2/Users/")
