"""Entra-issued JWTs (blank Secret Token, entra.md §3.2): accepted only when genuine, and only from
the calling applications ``[auth.entra] app_ids`` names.

The first tests go through the SCIM endpoint as Entra would; the rest drive ``EntraTokenVerifier``
directly where a clock or threads must be controlled. The JWKS is always served on a real port.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import jwt
import pytest

from scim_bridge.auth.entra_jwt import EntraCaller
from scim_bridge.auth.entra_jwt import EntraTokenVerifier
from scim_bridge.settings import EntraAuthSettings
from scim_bridge.settings import settings_from_toml
from scim_bridge.store import audit
from tests.auth.jwt_fixtures import OTHER_APP_ID
from tests.auth.jwt_fixtures import OTHER_TENANT
from tests.auth.jwt_fixtures import PROVISIONING_APP_ID
from tests.auth.jwt_fixtures import TENANT
from tests.auth.jwt_fixtures import JwksServer
from tests.auth.jwt_fixtures import RsaKey
from tests.auth.jwt_fixtures import b64url
from tests.auth.jwt_fixtures import entra_claims
from tests.auth.jwt_fixtures import hs256_keyed_with_public_key
from tests.auth.jwt_fixtures import new_key
from tests.auth.jwt_fixtures import sign
from tests.auth.jwt_fixtures import unreachable_url
from tests.auth.jwt_fixtures import unsigned
from tests.conftest import entra_user

SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LEEWAY = 60


@pytest.fixture(scope="module")
def key() -> RsaKey:
    return new_key("entra-key-1")


@pytest.fixture(scope="module")
def other_key() -> RsaKey:
    """A key Entra never published (an attacker's)."""
    return new_key("attacker-key")


@pytest.fixture
def jwks_server(key: RsaKey) -> Iterator[JwksServer]:
    with JwksServer(key) as server:
        yield server


def entra_settings(url: str, **overrides: Any) -> EntraAuthSettings:
    """``[auth.entra]`` loaded as the operator's file would be; ``overrides`` are test knobs."""
    table: dict[str, Any] = {
        "tenant_ids": [TENANT],
        "app_ids": [PROVISIONING_APP_ID],
        "jwks_url": url,
        "leeway_seconds": LEEWAY,
        "jwks_refresh_floor_seconds": 3600.0,
    }
    return replace(settings_from_toml({"auth": {"entra": table}}).auth.entra, **overrides)


# -- Through the SCIM endpoint ------------------------------------------------------------------


@pytest.fixture
def entra_bridge(make_bridge: Any, jwks_server: JwksServer) -> Callable[..., Any]:
    """A bridge that accepts Entra JWTs from ``TENANT``, keys from ``jwks_server`` unless told."""

    def factory(**overrides: Any) -> Any:
        settings = entra_settings(jwks_server.url, **overrides)
        return make_bridge(auth={"failure_floor_ms": 0, "entra": settings})

    return factory


def get_users(bridge: Any, token: str) -> Any:
    return bridge.app.test_client().get(
        "/scim/v2/Users", headers={"Authorization": f"Bearer {token}"}
    )


def assert_refused(response: Any) -> None:
    assert response.status_code == 401, response.get_data(as_text=True)
    body = response.get_json(force=True)
    assert body["schemas"] == [SCIM_ERROR]
    assert body["status"] == "401"


def test_valid_entra_token_is_served_and_audited_as_the_tenant_and_app(
    entra_bridge: Any, key: RsaKey
) -> None:
    bridge = entra_bridge()
    token = sign(entra_claims(), key)
    response = get_users(bridge, token)
    assert response.status_code == 200, response.get_data(as_text=True)
    created = bridge.app.test_client().post(
        "/scim/v2/Users",
        json=entra_user(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    writes = list(audit.events(bridge.bridge.db, action_prefix="scim.user"))
    assert writes and {event["actor"] for event in writes} == {
        f"entra:{TENANT}/{PROVISIONING_APP_ID}"
    }


def test_token_of_an_app_that_is_not_allowed_is_refused(
    entra_bridge: Any, key: RsaKey, caplog: pytest.LogCaptureFixture
) -> None:
    # Genuine in every other way: any app of the tenant can get a token for the shared audience.
    token = sign(entra_claims(appid=OTHER_APP_ID), key)
    with caplog.at_level(logging.INFO, logger="scim_bridge.auth.entra_jwt"):
        assert_refused(get_users(entra_bridge(), token))
    assert OTHER_APP_ID in caplog.text and TENANT in caplog.text
    assert token.split(".")[1] not in caplog.text and token.split(".")[2] not in caplog.text


def test_v2_token_naming_its_app_in_azp_is_served_and_audited(
    entra_bridge: Any, key: RsaKey
) -> None:
    bridge = entra_bridge(app_ids=(OTHER_APP_ID,))
    token = sign(entra_claims(appid=None, azp=OTHER_APP_ID, ver="2.0"), key)
    created = bridge.app.test_client().post(
        "/scim/v2/Users",
        json=entra_user(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    writes = list(audit.events(bridge.bridge.db, action_prefix="scim.user"))
    assert {event["actor"] for event in writes} == {f"entra:{TENANT}/{OTHER_APP_ID}"}
    assert_refused(get_users(bridge, sign(entra_claims(appid=None, azp="some-other-app"), key)))


def test_without_app_ids_every_entra_token_is_refused_and_the_log_says_which_app(
    entra_bridge: Any, key: RsaKey, caplog: pytest.LogCaptureFixture
) -> None:
    bridge = entra_bridge(app_ids=())
    with caplog.at_level(logging.INFO, logger="scim_bridge.auth.entra_jwt"):
        for claims in (entra_claims(), entra_claims(appid=None, azp=PROVISIONING_APP_ID)):
            assert_refused(get_users(bridge, sign(claims, key)))
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 2
    for message in refusals:
        assert PROVISIONING_APP_ID in message and TENANT in message and "app_ids" in message
    assert get_users(bridge, bridge.token).status_code == 200  # the bridge's own tokens still work


def test_token_from_another_tenant_is_refused(entra_bridge: Any, key: RsaKey) -> None:
    # Signed by a genuine Entra key: only the tenant is wrong.
    token = sign(entra_claims(OTHER_TENANT), key)
    assert_refused(get_users(entra_bridge(), token))


def test_token_for_another_audience_is_refused(entra_bridge: Any, key: RsaKey) -> None:
    token = sign(entra_claims(audience="00000003-0000-0000-c000-000000000000"), key)
    assert_refused(get_users(entra_bridge(), token))


def test_token_expired_beyond_the_leeway_is_refused(entra_bridge: Any, key: RsaKey) -> None:
    now = time.time()
    token = sign(entra_claims(now=now - 3600 - LEEWAY - 30, lifetime=3600), key)
    assert_refused(get_users(entra_bridge(), token))


def test_token_expired_within_the_leeway_is_accepted(entra_bridge: Any, key: RsaKey) -> None:
    now = time.time()
    token = sign(entra_claims(now=now - 3600 - LEEWAY // 2, lifetime=3600), key)
    assert get_users(entra_bridge(), token).status_code == 200


def test_token_not_yet_valid_is_refused(entra_bridge: Any, key: RsaKey) -> None:
    now = time.time()
    token = sign(entra_claims(now=now, nbf=int(now) + LEEWAY + 600), key)
    assert_refused(get_users(entra_bridge(), token))


def test_alg_none_token_is_refused(entra_bridge: Any, key: RsaKey) -> None:
    assert_refused(get_users(entra_bridge(), unsigned(entra_claims(), key.kid)))


def test_hs256_token_keyed_with_the_public_key_is_refused(entra_bridge: Any, key: RsaKey) -> None:
    token = hs256_keyed_with_public_key(entra_claims(), key)
    assert_refused(get_users(entra_bridge(), token))


def test_token_signed_by_another_key_under_a_published_kid_is_refused(
    entra_bridge: Any, key: RsaKey, other_key: RsaKey
) -> None:
    token = sign(entra_claims(), other_key, kid=key.kid)
    assert_refused(get_users(entra_bridge(), token))


def test_unknown_kid_refetches_once_then_not_again_within_the_floor(
    entra_bridge: Any, jwks_server: JwksServer, key: RsaKey, other_key: RsaKey
) -> None:
    floor = 1.0
    bridge = entra_bridge(jwks_refresh_floor_seconds=floor)
    assert get_users(bridge, sign(entra_claims(), key)).status_code == 200
    assert jwks_server.fetches == 1
    time.sleep(floor + 0.1)

    assert_refused(get_users(bridge, sign(entra_claims(), other_key)))
    assert jwks_server.fetches == 2  # the one refetch an unknown kid may cause

    forged = sign(entra_claims(), other_key, kid="another-forged-kid")
    assert_refused(get_users(bridge, forged))
    assert jwks_server.fetches == 2  # within the floor: Microsoft is not asked again
    assert get_users(bridge, sign(entra_claims(), key)).status_code == 200
    assert jwks_server.fetches == 2


def test_rotated_key_is_accepted_after_one_refetch(
    entra_bridge: Any, jwks_server: JwksServer, key: RsaKey
) -> None:
    bridge = entra_bridge(jwks_refresh_floor_seconds=0.0)
    assert get_users(bridge, sign(entra_claims(), key)).status_code == 200
    assert jwks_server.fetches == 1

    rotated = new_key("entra-key-2")
    jwks_server.publish(key, rotated)
    assert get_users(bridge, sign(entra_claims(), rotated)).status_code == 200
    assert jwks_server.fetches == 2
    assert get_users(bridge, sign(entra_claims(), rotated)).status_code == 200
    assert get_users(bridge, sign(entra_claims(), key)).status_code == 200
    assert jwks_server.fetches == 2  # both keys are cached now


def test_jwks_endpoint_down_refuses_without_crashing(make_bridge: Any, key: RsaKey) -> None:
    settings = entra_settings(unreachable_url())
    bridge = make_bridge(auth={"failure_floor_ms": 0, "entra": settings})
    assert_refused(get_users(bridge, sign(entra_claims(), key)))
    assert_refused(get_users(bridge, sign(entra_claims(), key)))
    assert get_users(bridge, bridge.token).status_code == 200  # the bridge's own tokens still work


@pytest.mark.parametrize("garbage", ["abc", "a.b.c", "", "eyJhbGciOiJSUzI1NiJ9.e30.", "...."])
def test_garbage_bearer_is_refused(
    entra_bridge: Any, jwks_server: JwksServer, garbage: str
) -> None:
    assert_refused(get_users(entra_bridge(), garbage))
    assert jwks_server.fetches == 0


def test_entra_tokens_are_refused_when_no_tenant_is_configured(
    entra_bridge: Any, jwks_server: JwksServer, key: RsaKey
) -> None:
    bridge = entra_bridge(tenant_ids=())
    assert_refused(get_users(bridge, sign(entra_claims(), key)))
    assert jwks_server.fetches == 0


# -- The verifier itself ----------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def verifier_for(server: JwksServer, clock: FakeClock | None = None, **overrides: Any) -> Any:
    settings = entra_settings(server.url, **overrides)
    return EntraTokenVerifier(settings, timeout=2.0, monotonic=clock or FakeClock())


def test_verifier_returns_the_tenant_and_app_id(jwks_server: JwksServer, key: RsaKey) -> None:
    verifier = verifier_for(jwks_server, app_ids=(PROVISIONING_APP_ID, "azp-client"))
    assert verifier.verify(sign(entra_claims(), key)) == EntraCaller(TENANT, PROVISIONING_APP_ID)
    without_appid = entra_claims(appid=None, azp="azp-client")
    assert verifier.verify(sign(without_appid, key)) == EntraCaller(TENANT, "azp-client")
    assert verifier.verify(sign(entra_claims(appid=None), key)) is None  # no app named at all


def test_app_ids_compare_as_guids_do_regardless_of_case(
    jwks_server: JwksServer, key: RsaKey
) -> None:
    verifier = verifier_for(jwks_server, app_ids=(PROVISIONING_APP_ID.upper(),))
    assert verifier.verify(sign(entra_claims(), key)) == EntraCaller(TENANT, PROVISIONING_APP_ID)
    assert verifier.verify(sign(entra_claims(appid=OTHER_APP_ID), key)) is None


def test_verifier_accepts_any_configured_tenant_and_audience(
    jwks_server: JwksServer, key: RsaKey
) -> None:
    verifier = verifier_for(
        jwks_server, tenant_ids=(TENANT, OTHER_TENANT), audiences=("aud-a", "aud-b")
    )
    caller = verifier.verify(sign(entra_claims(OTHER_TENANT, audience="aud-b"), key))
    assert caller is not None and caller.tenant_id == OTHER_TENANT
    assert verifier.verify(sign(entra_claims(audience="aud-c"), key)) is None


def forgeries(key: RsaKey, other_key: RsaKey) -> dict[str, str]:
    """Tokens that must all be refused, each wrong in one way only."""
    now = time.time()
    issuer = f"https://sts.windows.net/{TENANT}/"
    return {
        "other tenant": sign(entra_claims(OTHER_TENANT), key),
        "tid of another tenant": sign(entra_claims(tid=OTHER_TENANT), key),
        "issuer without trailing slash": sign(entra_claims(iss=issuer.rstrip("/")), key),
        "v2 issuer": sign(
            entra_claims(iss=f"https://login.microsoftonline.com/{TENANT}/v2.0"), key
        ),
        "other audience": sign(entra_claims(audience="api://something-else"), key),
        "expired": sign(entra_claims(now=now - 7200, lifetime=3600), key),
        "not yet valid": sign(entra_claims(nbf=int(now) + 3600), key),
        "no exp": sign(entra_claims(exp=None), key),
        "no aud": sign(entra_claims(aud=None), key),
        "alg none": unsigned(entra_claims(), key.kid),
        "hs256 with the public key": hs256_keyed_with_public_key(entra_claims(), key),
        "unknown key": sign(entra_claims(), other_key),
        "unknown key under a known kid": sign(entra_claims(), other_key, kid=key.kid),
        "tampered claims": _tampered(sign(entra_claims(), key)),
        "no kid": _without_kid(entra_claims(), key),
        "app not allowed": sign(entra_claims(appid=OTHER_APP_ID), key),
        "azp not allowed": sign(entra_claims(appid=None, azp=OTHER_APP_ID), key),
        "no appid nor azp": sign(entra_claims(appid=None), key),
        "appid not a string": sign(entra_claims(appid=[PROVISIONING_APP_ID]), key),
    }


def _tampered(token: str) -> str:
    header, _, signature = token.split(".")
    claims = entra_claims(tid=TENANT, appid="elevated")
    return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"


def _without_kid(claims: dict[str, Any], key: RsaKey) -> str:
    return jwt.encode(claims, key.private, algorithm="RS256")


def test_verifier_refuses_every_forgery(
    jwks_server: JwksServer, key: RsaKey, other_key: RsaKey
) -> None:
    verifier = verifier_for(jwks_server)
    assert verifier.verify(sign(entra_claims(), key)) is not None  # the control
    accepted = [
        name
        for name, token in forgeries(key, other_key).items()
        if verifier.verify(token) is not None
    ]
    assert accepted == []


def test_non_rsa_keys_in_the_jwks_are_ignored(jwks_server: JwksServer, key: RsaKey) -> None:
    # An "oct" key under the token's kid must never become an HMAC secret.
    secret = key.public_pem()
    jwks_server.publish_document(
        {"keys": [{"kty": "oct", "kid": key.kid, "k": b64url(secret), "alg": "HS256"}]}
    )
    verifier = verifier_for(jwks_server)
    assert verifier.verify(hs256_keyed_with_public_key(entra_claims(), key)) is None
    assert verifier.verify(sign(entra_claims(), key)) is None
    assert jwks_server.fetches == 1


def test_refetch_floor_and_cache_expiry_follow_the_clock(
    jwks_server: JwksServer, key: RsaKey, other_key: RsaKey
) -> None:
    clock = FakeClock()
    verifier = verifier_for(
        jwks_server, clock, jwks_refresh_floor_seconds=300.0, jwks_cache_seconds=3600.0
    )
    good = sign(entra_claims(), key)
    assert verifier.verify(good) is not None
    assert jwks_server.fetches == 1

    clock.now += 299
    assert verifier.verify(sign(entra_claims(), other_key)) is None
    assert jwks_server.fetches == 1  # within the floor
    clock.now += 2
    assert verifier.verify(sign(entra_claims(), other_key)) is None
    assert verifier.verify(sign(entra_claims(), other_key, kid="yet-another")) is None
    assert jwks_server.fetches == 2  # one refetch, then the floor again

    refetched_at = clock.now
    clock.now = refetched_at + 3599
    assert verifier.verify(good) is not None
    assert jwks_server.fetches == 2  # cached
    clock.now = refetched_at + 3600
    assert verifier.verify(good) is not None
    assert jwks_server.fetches == 3  # the cache expired


def test_withdrawn_key_is_refused_once_the_cache_expires(
    jwks_server: JwksServer, key: RsaKey
) -> None:
    clock = FakeClock()
    verifier = verifier_for(
        jwks_server, clock, jwks_cache_seconds=600.0, jwks_refresh_floor_seconds=60.0
    )
    assert verifier.verify(sign(entra_claims(), key)) is not None
    jwks_server.publish(new_key())
    clock.now += 600
    assert verifier.verify(sign(entra_claims(), key)) is None
    assert jwks_server.fetches == 2


def test_failed_fetch_refuses_then_recovers_after_the_floor(
    jwks_server: JwksServer, key: RsaKey
) -> None:
    clock = FakeClock()
    verifier = verifier_for(jwks_server, clock, jwks_refresh_floor_seconds=60.0)
    token = sign(entra_claims(), key)
    jwks_server.status = 503
    assert verifier.verify(token) is None
    jwks_server.status = 200
    clock.now += 30
    assert verifier.verify(token) is None
    assert jwks_server.fetches == 1  # a failing endpoint is not hammered either
    clock.now += 30
    assert verifier.verify(token) is not None
    assert jwks_server.fetches == 2


@pytest.mark.parametrize(
    "document", [[], {"keys": "nope"}, {"nokeys": []}, {"keys": [{"kty": "RSA", "kid": "x"}]}]
)
def test_malformed_jwks_refuses_without_raising(
    jwks_server: JwksServer, key: RsaKey, document: Any
) -> None:
    jwks_server.publish_document(document)
    assert verifier_for(jwks_server).verify(sign(entra_claims(), key)) is None


def test_unreachable_jwks_refuses_without_raising(key: RsaKey) -> None:
    verifier = EntraTokenVerifier(entra_settings(unreachable_url()), timeout=2.0)
    assert verifier.verify(sign(entra_claims(), key)) is None


def test_concurrent_unknown_kids_cause_one_fetch(
    jwks_server: JwksServer, key: RsaKey, other_key: RsaKey
) -> None:
    verifier = verifier_for(jwks_server)
    good, forged = sign(entra_claims(), key), sign(entra_claims(), other_key)
    results: list[EntraCaller | None] = []
    start = threading.Barrier(16)

    def call(token: str) -> None:
        start.wait()
        results.append(verifier.verify(token))

    threads = [threading.Thread(target=call, args=(good if i % 2 else forged,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert jwks_server.fetches == 1
    assert sum(result is not None for result in results) == 8


def test_refusals_are_logged_without_the_token(
    jwks_server: JwksServer, key: RsaKey, other_key: RsaKey, caplog: pytest.LogCaptureFixture
) -> None:
    verifier = verifier_for(jwks_server)
    tokens = [*forgeries(key, other_key).values(), "abc", "a.b.c"]
    with caplog.at_level(logging.INFO, logger="scim_bridge.auth.entra_jwt"):
        for token in tokens:
            assert verifier.verify(token) is None
    text = caplog.text
    assert "Entra token refused" in text and OTHER_TENANT in text and other_key.kid in text
    assert OTHER_APP_ID in text  # the refused app, so the operator knows what it would allow
    for token in tokens:
        for part in token.split("."):
            assert len(part) < 8 or part not in text
