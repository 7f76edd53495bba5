"""The stored GitLab token rotated under real `scim-bridge serve` processes (gunicorn's workers and
the background worker): `rotate-token` reaches every process of every instance at its next GitLab
call, and instances left to rotate by themselves rotate exactly once.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from scim_bridge import clock
from scim_bridge.token_vault import new_key
from tests.conftest import ADMIN_TOKEN
from tests.conftest import SCIM_JSON
from tests.conftest import entra_user
from tests.conftest import run_cli
from tests.e2e.live_server import Server
from tests.e2e.live_server import until

pytestmark = pytest.mark.slow

ROTATE = "/api/v4/personal_access_tokens/self/rotate"


def start(env: dict[str, str], tmp_path: Path, servers: list[Server], database_url: str) -> None:
    """Two instances on PostgreSQL; on SQLite, one instance of two gunicorn processes."""
    if database_url.startswith("sqlite"):
        servers.append(Server(env, tmp_path, workers=2))
    else:
        servers.extend([Server(env, tmp_path), Server(env, tmp_path)])
    for server in servers:
        server.start()


def create_users(env: dict[str, str], servers: list[Server], prefix: str, each: int) -> None:
    """``each`` users through every instance, all answered 201 (their GitLab accounts made)."""
    token = run_cli(env, "tokens", "create", prefix).stdout.split("token: ")[1].strip()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON}
    for index, server in enumerate(servers):
        for n in range(each):
            body = entra_user(f"{prefix}{index}x{n}@contoso.com")
            answer = requests.post(
                f"{server.base}/scim/v2/Users", json=body, headers=headers, timeout=60
            )
            assert answer.status_code == 201, answer.text


def test_rotate_token_reaches_every_serving_process_and_the_old_token_is_never_sent_again(
    environment: dict[str, str],
    servers: list[Server],
    database_url: str,
    gitlab: Any,
    tmp_path: Path,
) -> None:
    env = {**environment, "SCIM_BRIDGE_GITLAB_TOKEN_KEY": new_key()}
    start(env, tmp_path, servers, database_url)
    create_users(env, servers, "before", 4)
    assert {call.token for call in gitlab.requests} == {ADMIN_TOKEN}

    done = run_cli(env, "gitlab", "rotate-token")
    assert done.stdout.startswith("rotated: token version 2")
    (rotation,) = gitlab.calls("POST", ROTATE)
    new = gitlab.state.tokens[ADMIN_TOKEN].rotated_to
    assert new is not None
    after = gitlab.requests.index(rotation) + 1

    create_users(env, servers, "after", 4)
    later = gitlab.requests[after:]
    created = [call for call in later if (call.method, call.path) == ("POST", "/api/v4/users")]
    assert len(created) == 4 * len(servers)
    assert {call.token for call in later} == {new}
    assert [call for call in later if call.status == 401] == []
    assert gitlab.state.tokens[new].active


def test_instances_left_to_rotate_by_themselves_rotate_exactly_once(
    environment: dict[str, str],
    servers: list[Server],
    database_url: str,
    gitlab: Any,
    tmp_path: Path,
) -> None:
    gitlab.set_token_expiry(ADMIN_TOKEN, clock.now().date() + dt.timedelta(days=5))
    env = {
        **environment,
        "SCIM_BRIDGE_GITLAB_TOKEN_KEY": new_key(),
        "SCIM_BRIDGE_GITLAB_ROTATE_DAYS_BEFORE_EXPIRY": "10",
    }
    start(env, tmp_path, servers, database_url)
    assert until(lambda: len(gitlab.calls("POST", ROTATE)) == 1), "no instance rotated"
    # The rotating worker reads the token three times (its reading, the rotation's, the new
    # token's); every other worker at least once: then each has had its chance to rotate.
    readings = 3 + len(servers) - 1
    assert until(
        lambda: len(gitlab.calls("GET", "/api/v4/personal_access_tokens/self")) >= readings
    )
    time.sleep(1)

    assert len(gitlab.calls("POST", ROTATE)) == 1
    new = gitlab.state.tokens[ADMIN_TOKEN].rotated_to
    assert new is not None and gitlab.state.tokens[new].active
    expires = clock.now().date() + dt.timedelta(days=365)
    assert gitlab.state.tokens[new].expires_at == expires.isoformat()
    sent = len(gitlab.requests)
    create_users(env, servers, "later", 2)
    assert {call.token for call in gitlab.requests[sent:]} == {new}
