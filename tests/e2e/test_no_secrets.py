"""After a run of the real `scim-bridge serve`, no secret or token is in its logs or its database.

Every credential the run handles is distinctive; the test then reads everything the bridge wrote
(every table, and the output of gunicorn, the app and the worker at DEBUG) and looks for each one.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import MetaData
from sqlalchemy import create_engine
from sqlalchemy import select

from tests.conftest import ADMIN_TOKEN
from tests.conftest import entra_user
from tests.conftest import run_cli
from tests.e2e.live_server import Server

pytestmark = pytest.mark.slow

SCIM_JSON = "application/scim+json"
PASSWORD = "Entra-Sent-Password-SECRET-9c1f"


def value(output: str, key: str) -> str:
    (line,) = [text for text in output.splitlines() if text.startswith(f"{key}: ")]
    return line.removeprefix(f"{key}: ")


def secret_half(credential: str) -> str:
    """``sbt_<lookup>_<secret>`` → ``<secret>``: the part that must never be kept."""
    return credential.split("_", 2)[2]


def database_text(database_url: str) -> str:
    engine = create_engine(database_url)
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        dump = "\n".join(
            repr(connection.execute(select(table)).all()) for table in metadata.sorted_tables
        )
    engine.dispose()
    return dump


def test_no_secret_or_token_in_the_database_or_the_logs(
    environment: dict[str, str],
    servers: list[Server],
    database_url: str,
    gitlab: Any,
    tmp_path: Path,
) -> None:
    env = {**environment, "SCIM_BRIDGE_LOG_LEVEL": "DEBUG"}
    bearer = value(run_cli(env, "tokens", "create", "entra").stdout, "token")
    created = run_cli(env, "clients", "create", "entra-oauth").stdout
    client_id, first_secret = value(created, "client_id"), value(created, "client_secret")
    second_secret = value(run_cli(env, "clients", "rotate", "entra-oauth").stdout, "client_secret")
    server = Server(env, tmp_path)
    servers.append(server)
    server.start()
    base = server.base

    def token(secret: str, in_header: bool) -> str:
        form = {"grant_type": "client_credentials", "scope": "scim"}
        headers = {}
        if in_header:
            pair = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
            headers["Authorization"] = f"Basic {pair}"
        else:
            form |= {"client_id": client_id, "client_secret": secret}
        response = requests.post(f"{base}/oauth2/token", data=form, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    access_tokens = [token(first_secret, True), token(second_secret, False)]

    def scim(credential: str, method: str, path: str, body: Any = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {credential}"}
        if body is not None:
            headers["Content-Type"] = SCIM_JSON
        return requests.request(
            method, f"{base}/scim/v2{path}", json=body, headers=headers, timeout=60
        )

    user = entra_user("secret.keeper@contoso.com", password=PASSWORD)
    created_user = scim(access_tokens[0], "POST", "/Users", user)
    assert created_user.status_code == 201, created_user.text
    user_id = created_user.json()["id"]
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "replace", "path": "password", "value": PASSWORD},
            {"op": "replace", "path": "active", "value": False},
        ],
    }
    assert scim(bearer, "PATCH", f"/Users/{user_id}", patch).status_code in (200, 204)
    assert scim(access_tokens[1], "GET", f"/Users/{user_id}").status_code == 200
    # Wrong credentials: right lookup halves with wrong secret halves, and the bridge's own
    # secrets sent where they do not belong.
    wrong_bearer = bearer.rsplit("_", 1)[0] + "_Wrong-Bearer-Guess-SECRET"
    assert scim(wrong_bearer, "GET", "/Users").status_code == 401
    assert scim(first_secret, "GET", "/Users").status_code == 401
    wrong_secret = first_secret.rsplit("_", 1)[0] + "_Wrong-Client-Guess-SECRET"
    refused = requests.post(
        f"{base}/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": wrong_secret,
        },
        timeout=30,
    )
    assert refused.status_code == 401
    assert scim(bearer, "DELETE", f"/Users/{user_id}").status_code == 204
    states = [user["state"] for user in gitlab.users() if user["username"] == "secret.keeper"]
    assert states == ["blocked"]
    server.stop()

    server.log.flush()
    logs = Path(server.log.name).read_text(encoding="utf-8", errors="replace")
    assert "POST /scim/v2/Users" in logs and "/oauth2/token" in logs, "the logs were captured"
    stored = database_text(database_url)
    assert "secret.keeper" in stored, "the database was read"
    secrets = {
        "bearer token": bearer,
        "bearer token's secret": secret_half(bearer),
        "first client secret": first_secret,
        "first client secret's secret": secret_half(first_secret),
        "second client secret's secret": secret_half(second_secret),
        "GitLab admin token": ADMIN_TOKEN,
        "password Entra sent": PASSWORD,
        "wrong bearer guess": "Wrong-Bearer-Guess-SECRET",
        "wrong client secret guess": "Wrong-Client-Guess-SECRET",
        **{f"access token {n}": secret_half(t) for n, t in enumerate(access_tokens)},
    }
    for name, secret in secrets.items():
        assert secret not in logs, f"{name} is in the logs"
        assert secret not in stored, f"{name} is in the database"
