"""Nothing acknowledged is lost: the real `scim-bridge serve` is killed mid-provisioning, restarted,
and its worker brings GitLab to the stored state without creating anything twice."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine
from sqlalchemy import text

from tests.conftest import entra_user
from tests.e2e.live_server import Server

pytestmark = pytest.mark.slow

OID = "5b50642d-79fc-4410-9e90-4c077cdd1a59"


def token(environment: dict[str, str], tmp_path: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "scim_bridge", "tokens", "create", "entra"],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (line,) = [line for line in out.splitlines() if line.startswith("token: ")]
    return line.removeprefix("token: ")


def stored_users(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM users")).scalar_one())
    finally:
        engine.dispose()


def wait_for(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def accounts(gitlab: Any) -> list[dict[str, Any]]:
    return gitlab.users_with_identity("openid_connect", OID)


@pytest.mark.parametrize("gitlab_saw_the_create", [False, True])
def test_killed_between_commit_and_gitlab_then_restarted(
    environment: dict[str, str],
    servers: list[Server],
    database_url: str,
    gitlab: Any,
    tmp_path: Path,
    gitlab_saw_the_create: bool,
) -> None:
    secret = token(environment, tmp_path)
    server = Server(environment, tmp_path)
    servers.append(server)
    server.start()

    release = threading.Event()
    if gitlab_saw_the_create:
        # The create reaches GitLab, but the bridge dies before it reads the answer.
        gitlab.faults.add(method="POST", path_pattern=r"^/api/v4/users$", hold=release)
    else:
        # The bridge dies before any GitLab call gets through.
        gitlab.faults.add(path_pattern=r"^/api/v4/users", hold=release, status=503)

    def entra_posts() -> None:
        # The server dies under the request: Entra would retry it later.
        with contextlib.suppress(requests.RequestException):
            requests.post(
                f"{server.base}/scim/v2/Users",
                json=entra_user(externalId=OID),
                headers={"Authorization": f"Bearer {secret}"},
                timeout=30,
            )

    poster = threading.Thread(target=entra_posts)
    poster.start()
    wait_for(lambda: stored_users(database_url) == 1, 20, "the store commit")
    wait_for(lambda: gitlab.held() > 0, 20, "the bridge's first GitLab call")
    server.kill()
    release.set()  # held requests now finish: processed (True) or answered 503 (False)
    poster.join(30)
    gitlab.faults.clear()
    wait_for(lambda: gitlab.held() == 0, 10, "held requests to end")
    assert len(accounts(gitlab)) == (1 if gitlab_saw_the_create else 0)

    restarted = Server(environment, tmp_path)
    servers.append(restarted)
    restarted.start()
    wait_for(lambda: len(accounts(gitlab)) == 1, 40, "GitLab to converge")
    time.sleep(1)
    (account,) = accounts(gitlab)
    assert account["email"] == "jane.doe@contoso.com"
    assert account["state"] == "active"
    # One create in all: after a lost answer, the account is found by its identity, not created
    # again. (A create GitLab answered 503 made nothing: the bridge creates at once, without a
    # lookup first, so that refused attempt is in the log too, and does not count.)
    made = [call for call in gitlab.calls("POST", "/api/v4/users") if call.status == 201]
    assert len(made) == 1
    listed = requests.get(
        f"{restarted.base}/scim/v2/Users",
        params={"filter": f'externalId eq "{OID}"'},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=10,
    ).json()
    assert listed["totalResults"] == 1
