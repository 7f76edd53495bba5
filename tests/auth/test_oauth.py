"""Entra's "OAuth2 client credentials grant" end to end: the operator's commands, the token
endpoint (RFC 6749 §4.4) and the SCIM calls that follow (entra.md §3.3)."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any
from urllib.parse import quote_plus
from urllib.parse import urlencode

import pytest
from sqlalchemy import update

from scim_bridge import clock
from scim_bridge.store import audit
from scim_bridge.store.schema import oauth_access_tokens
from scim_bridge.store.schema import oauth_client_secrets
from tests.conftest import BridgeUnderTest
from tests.conftest import cli_environment
from tests.conftest import entra_user
from tests.conftest import run_cli

TOKEN = "/oauth2/token"
FORM = "application/x-www-form-urlencoded"


def line(output: str, key: str) -> str:
    (found,) = [text for text in output.splitlines() if text.startswith(f"{key}: ")]
    return found.removeprefix(f"{key}: ")


def basic(client_id: str, secret: str) -> str:
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(pair).decode()


class Entra:
    """Requests as Entra's provisioning service sends them in each credential send method."""

    def __init__(self, bridge: BridgeUnderTest, client_id: str, secret: str) -> None:
        self.http = bridge.app.test_client()
        self.client_id = client_id
        self.secret = secret

    def token_request(self, method: str = "Header", **extra: str) -> Any:
        form = {"grant_type": "client_credentials", **extra}
        headers = {}
        if method in ("Header", "Both"):
            headers["Authorization"] = basic(self.client_id, self.secret)
        if method in ("Body", "Both"):
            form |= {"client_id": self.client_id, "client_secret": self.secret}
        return self.http.post(TOKEN, data=urlencode(form), content_type=FORM, headers=headers)

    def token(self, method: str = "Header") -> str:
        response = self.token_request(method)
        assert response.status_code == 200, response.get_data(as_text=True)
        return str(response.json["access_token"])

    def scim(self, access_token: str, method: str = "GET", path: str = "/Users", **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {access_token}"}
        return self.http.open(f"/scim/v2{path}", method=method, headers=headers, **kw)


@pytest.fixture
def bridge(make_bridge: Any) -> BridgeUnderTest:
    return make_bridge()


def create_client(database_url: str, name: str = "entra-prod") -> tuple[str, str]:
    created = run_cli(cli_environment(database_url), "clients", "create", name).stdout
    return line(created, "client_id"), line(created, "client_secret")


def test_entra_oauth_flow_with_rotation_and_revocation(
    bridge: BridgeUnderTest, database_url: str
) -> None:
    env = cli_environment(database_url)
    client_id, first_secret = create_client(database_url)
    entra = Entra(bridge, client_id, first_secret)

    # Each of Entra's send methods gets a token, and the token works for SCIM calls.
    for method in ("Header", "Body", "Both"):
        response = entra.token_request(method, scope="scim")
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.headers["Cache-Control"] == "no-store"
        assert response.json["token_type"] == "Bearer"
        assert response.json["expires_in"] == 3600
        assert response.json["scope"] == "scim"
        assert entra.scim(response.json["access_token"]).status_code == 200
    first_token = entra.token()
    created = entra.scim(first_token, "POST", "/Users", json=entra_user("oauth@contoso.com"))
    assert created.status_code == 201, created.get_data(as_text=True)
    (event,) = audit.events(bridge.bridge.db, action_prefix="scim.user.create")
    assert event["actor"] == "client:entra-prod"

    # Rotation: a second secret, both valid at once, and tokens from each.
    second_secret = line(run_cli(env, "clients", "rotate", "entra-prod").stdout, "client_secret")
    assert second_secret != first_secret
    rotated = Entra(bridge, client_id, second_secret)
    second_token = rotated.token()
    assert entra.scim(entra.token("Body")).status_code == 200
    assert rotated.scim(second_token).status_code == 200
    assert entra.scim(first_token).status_code == 200
    listed = run_cli(env, "clients", "list").stdout
    assert listed.count("active") == 3 and first_secret not in listed  # client + 2 secrets

    # The old secret revoked: it gets no token, and the tokens it minted end at once.
    assert "#1" in run_cli(env, "clients", "revoke-secret", "entra-prod").stdout
    assert entra.token_request().status_code == 401
    assert entra.scim(first_token).status_code == 401
    assert rotated.scim(second_token).status_code == 200

    # The client revoked: its live token is refused at once, and it gets no new one.
    run_cli(env, "clients", "revoke", "entra-prod")
    refused = rotated.scim(second_token)
    assert refused.status_code == 401
    assert refused.json["status"] == "401"
    assert rotated.token_request().status_code == 401


def test_token_endpoint_errors_follow_rfc_6749(bridge: BridgeUnderTest, database_url: str) -> None:
    client_id, secret = create_client(database_url)
    other_id, other_secret = create_client(database_url, "other")
    entra = Entra(bridge, client_id, secret)

    def error(response: Any, status: int, code: str) -> None:
        assert response.status_code == status, response.get_data(as_text=True)
        assert response.json["error"] == code
        assert response.headers["Cache-Control"] == "no-store"
        if status == 401:
            assert response.headers["WWW-Authenticate"].startswith("Basic realm=")

    error(
        Entra(bridge, client_id, "sbs_0011223344556677_wrong").token_request(),
        401,
        "invalid_client",
    )
    error(Entra(bridge, "sbc_unknown", secret).token_request(), 401, "invalid_client")
    error(Entra(bridge, other_id, secret).token_request("Body"), 401, "invalid_client")
    error(Entra(bridge, client_id, other_secret).token_request(), 401, "invalid_client")
    error(
        entra.http.post(TOKEN, data="grant_type=client_credentials", content_type=FORM),
        401,
        "invalid_client",
    )
    bad_basic = {"Authorization": "Basic !!!"}
    error(
        entra.http.post(
            TOKEN, data="grant_type=client_credentials", content_type=FORM, headers=bad_basic
        ),
        401,
        "invalid_client",
    )
    error(entra.token_request(grant_type="password"), 400, "unsupported_grant_type")
    error(entra.token_request(scope="scim admin"), 400, "invalid_scope")
    as_json = entra.http.post(TOKEN, json={"grant_type": "client_credentials"})
    error(as_json, 400, "invalid_request")
    no_grant = entra.http.post(TOKEN, data=f"client_id={client_id}", content_type=FORM)
    error(no_grant, 400, "invalid_request")
    repeated = "grant_type=client_credentials&grant_type=client_credentials"
    error(entra.http.post(TOKEN, data=repeated, content_type=FORM), 400, "invalid_request")
    mismatch = entra.http.post(
        TOKEN,
        data=urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": other_id,
                "client_secret": other_secret,
            }
        ),
        content_type=FORM,
        headers={"Authorization": basic(client_id, secret)},
    )
    error(mismatch, 400, "invalid_request")
    assert entra.http.get(TOKEN).status_code == 405


def test_access_tokens_expire_and_are_bound_to_this_bridge(
    make_bridge: Any, database_url: str
) -> None:
    bridge = make_bridge(auth={"access_token_minutes": 360})
    client_id, secret = create_client(database_url)
    entra = Entra(bridge, client_id, secret)
    response = entra.token_request()
    assert response.json["expires_in"] == 6 * 3600
    token = response.json["access_token"]
    assert entra.scim(token).status_code == 200
    # Another host name is another audience: the token was minted for http://localhost/scim/v2.
    elsewhere = entra.http.get(
        "/scim/v2/Users",
        base_url="https://bridge.example.net",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert elsewhere.status_code == 401
    # Expired: the same token an instant past its lifetime.
    with bridge.bridge.db.transaction(write=True) as tx:
        tx.connection.execute(
            update(oauth_access_tokens).values(expires_at=clock.now() - timedelta(seconds=1))
        )
    assert entra.scim(token).status_code == 401


def test_a_public_url_names_the_audience_behind_a_proxy(
    make_bridge: Any, database_url: str
) -> None:
    bridge = make_bridge(auth={"public_url": "https://scim.example.com"})
    client_id, secret = create_client(database_url)
    entra = Entra(bridge, client_id, secret)
    token = entra.token()
    with bridge.bridge.db.transaction(write=False) as tx:
        (row,) = tx.connection.execute(oauth_access_tokens.select()).mappings()
    assert row["audience"] == "https://scim.example.com/scim/v2"
    assert row["issuer"] == "https://scim.example.com"
    # Behind the proxy the bridge sees its own host; the audience is the public URL all the same.
    assert entra.scim(token).status_code == 200
    created = entra.scim(token, "POST", "/Users", json=entra_user("proxied@contoso.com"))
    location = f"https://scim.example.com/scim/v2/Users/{created.json['id']}"
    assert created.headers["Location"] == location
    assert created.json["meta"]["location"] == location


def test_client_secrets_expire(bridge: BridgeUnderTest, database_url: str) -> None:
    client_id, secret = create_client(database_url)
    with bridge.bridge.db.transaction(write=False) as tx:
        (row,) = tx.connection.execute(oauth_client_secrets.select()).mappings()
    lifetime = clock.aware(row["expires_at"]) - clock.aware(row["created_at"])  # type: ignore[operator]
    assert lifetime == timedelta(days=365)
    with bridge.bridge.db.transaction(write=True) as tx:
        tx.connection.execute(
            update(oauth_client_secrets).values(expires_at=clock.now() - timedelta(seconds=1))
        )
    response = Entra(bridge, client_id, secret).token_request()
    assert response.status_code == 401 and response.json["error"] == "invalid_client"
    assert "expired" in run_cli(cli_environment(database_url), "clients", "list").stdout


def test_bearer_tokens_show_expiry_and_last_use(bridge: BridgeUnderTest, database_url: str) -> None:
    env = cli_environment(database_url)
    secret = line(
        run_cli(env, "tokens", "create", "portal", "--expires-in-days", "90").stdout, "token"
    )
    before = [row for row in run_cli(env, "tokens", "list").stdout.splitlines() if "portal" in row]
    assert before[0].rstrip().endswith("-"), "never used yet"
    expected_expiry = (clock.now() + timedelta(days=90)).strftime("%Y-%m-%d")
    assert expected_expiry in before[0]
    headers = {"Authorization": f"Bearer {secret}"}
    assert bridge.app.test_client().get("/scim/v2/Users", headers=headers).status_code == 200
    after = [row for row in run_cli(env, "tokens", "list").stdout.splitlines() if "portal" in row]
    assert not after[0].rstrip().endswith("-"), "last used is shown"
    assert clock.now().strftime("%Y-%m-%d") in after[0].split()[-2]
