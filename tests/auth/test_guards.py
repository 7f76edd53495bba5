"""The guards in front of the SCIM endpoint: body limit, rate limit, and 401s alike in body and time."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from scim_bridge import clock
from scim_bridge.guards import RateLimiter
from scim_bridge.store.schema import api_tokens
from scim_bridge.store.schema import oauth_access_tokens
from tests.conftest import BridgeUnderTest
from tests.conftest import entra_user

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
FORM = "application/x-www-form-urlencoded"


def scim_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/scim+json"
    body: dict[str, Any] = response.json
    assert body["schemas"] == [ERROR] and body["status"] == str(status)
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def test_a_body_past_the_limit_is_413_and_one_below_is_served(make_bridge: Any) -> None:
    bridge = make_bridge()
    two_mib = entra_user("big@contoso.com", title="x" * (2 * 1024 * 1024))
    scim_error(bridge.scim.post("/Users", two_mib), 413)
    patch = [{"op": "replace", "path": "title", "value": "y" * (2 * 1024 * 1024)}]
    scim_error(bridge.scim.patch("/Users/anything", patch), 413)
    assert bridge.scim.get("/Users").json["totalResults"] == 0, "nothing was stored"
    below = entra_user("big@contoso.com", title="x" * (900 * 1024))
    assert bridge.scim.post("/Users", below).status_code == 201
    smaller = make_bridge(server={"max_body_bytes": 64 * 1024})
    scim_error(smaller.scim.post("/Users", entra_user(title="x" * 70_000)), 413)


def minimal_limit(make_bridge: Any) -> BridgeUnderTest:
    """The lowest rate limit the settings accept: 50 requests/s, bursts of 50."""
    bridge: BridgeUnderTest = make_bridge(
        server={"rate_limit_per_second": 50.0, "rate_limit_burst": 50}
    )
    return bridge


def test_a_burst_past_the_limit_is_429_with_retry_after(make_bridge: Any) -> None:
    bridge = minimal_limit(make_bridge)
    statuses = []
    for _ in range(3000):  # as fast as one thread can send: far above 50/s
        response = bridge.scim.get("/ServiceProviderConfig")
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert statuses[-1] == 429, "a burst past the limit must be throttled"
    assert len(statuses) > 50, "the burst allowance comes first"
    scim_error(response, 429)
    assert int(response.headers["Retry-After"]) >= 1
    # Another caller is not throttled by the first one's burst.
    other = bridge.bridge.tokens.create("portal")
    headers = {"Authorization": f"Bearer {other}"}
    assert bridge.app.test_client().get("/scim/v2/Users", headers=headers).status_code == 200


def test_below_50_requests_a_second_nothing_is_throttled(make_bridge: Any) -> None:
    """Entra sends at most 25/s; paced at 45/s for 3 s, the lowest limit never answers 429."""
    bridge = minimal_limit(make_bridge)
    started = time.monotonic()
    statuses = []
    for index in range(135):
        time.sleep(max(0.0, started + index / 45 - time.monotonic()))
        statuses.append(bridge.scim.get("/Users").status_code)
    assert set(statuses) == {200}


@pytest.mark.parametrize("rate", [50.0, 100.0, 1000.0])
def test_the_limiter_admits_any_steady_rate_below_its_own(rate: float) -> None:
    """On a simulated clock: an exhausted bucket, then 98% of the rate for 100 s: never refused."""
    now = [0.0]
    limiter = RateLimiter(rate, 50, monotonic=lambda: now[0])
    while limiter.take("entra") is None:
        pass
    now[0] += 1.0
    interval = 1 / (rate * 0.98)
    for _ in range(int(100 / interval)):
        now[0] += interval
        assert limiter.take("entra") is None
    assert limiter.take("entra") is None or True  # the next may or may not fit: no claim
    for _ in range(60):
        limiter.take("entra")
    wait = limiter.take("entra")
    assert wait is not None and 0 < wait <= 1 / rate + 1e-9


def test_an_address_that_keeps_failing_is_throttled(make_bridge: Any) -> None:
    bridge = make_bridge(auth={"failures_per_minute": 60})  # the default
    http = bridge.app.test_client()
    for _ in range(200):
        response = http.get("/scim/v2/Users", headers={"Authorization": "Bearer guess"})
        if response.status_code == 429:
            break
    scim_error(response, 429)
    assert int(response.headers["Retry-After"]) >= 1


def refusals(bridge: BridgeUnderTest) -> dict[str, Callable[[], Any]]:
    """One way each credential can be wrong, each answered 401."""
    http = bridge.app.test_client()
    tokens = bridge.bridge.tokens
    lookup = bridge.token.split("_")[1]
    revoked = tokens.create("revoked")
    tokens.revoke("revoked")
    expired = tokens.create("expired")
    with bridge.bridge.db.transaction(write=True) as tx:
        tx.connection.execute(
            update(api_tokens)
            .where(api_tokens.c.name == "expired")
            .values(expires_at=clock.now() - timedelta(seconds=1))
        )
    client = bridge.bridge.clients.create("entra-oauth")
    form = f"grant_type=client_credentials&client_id={client.client_id}"
    access = http.post(
        "/oauth2/token", data=f"{form}&client_secret={client.client_secret}", content_type=FORM
    ).json["access_token"]
    with bridge.bridge.db.transaction(write=True) as tx:
        tx.connection.execute(
            update(oauth_access_tokens).values(expires_at=clock.now() - timedelta(seconds=1))
        )

    def scim(credential: str | None) -> Callable[[], Any]:
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        return lambda: http.get("/scim/v2/Users", headers=headers)

    def token(form: str) -> Callable[[], Any]:
        return lambda: http.post("/oauth2/token", data=form, content_type=FORM)

    return {
        "no credential": scim(None),
        "garbage": scim("not-a-token"),
        "unknown token": scim("sbt_0011223344556677_" + "x" * 43),
        "right lookup, wrong secret": scim(f"sbt_{lookup}_" + "x" * 43),
        "revoked token": scim(revoked),
        "expired token": scim(expired),
        "expired access token": scim(access),
        "unknown client": token("grant_type=client_credentials&client_id=sbc_x&client_secret=y"),
        "wrong client secret": token(f"{form}&client_secret=sbs_00_wrong"),
    }


def test_every_refusal_takes_the_same_time(make_bridge: Any) -> None:
    """Whatever was wrong, a 401 takes the failure floor (200 ms by default), never less."""
    bridge = make_bridge(auth={"failure_floor_ms": 200})
    medians = {}
    for name, send in refusals(bridge).items():
        samples = []
        for _ in range(5):
            started = time.perf_counter()
            response = send()
            samples.append(time.perf_counter() - started)
            assert response.status_code == 401, name
        assert min(samples) >= 0.2, f"{name}: a refusal came back before the floor"
        medians[name] = statistics.median(samples)
    spread = max(medians.values()) - min(medians.values())
    assert spread < 0.05, f"refusals differ by {spread * 1000:.0f} ms: {medians}"


def test_valid_credentials_are_not_slowed_by_the_floor(make_bridge: Any) -> None:
    bridge = make_bridge(auth={"failure_floor_ms": 500})
    started = time.perf_counter()
    assert bridge.scim.get("/Users").status_code == 200
    assert time.perf_counter() - started < 0.5
