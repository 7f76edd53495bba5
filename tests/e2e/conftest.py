"""The bridge served on a real local port, so Entra-like requests cross real HTTP."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

from tests.conftest import ADMIN_TOKEN
from tests.conftest import BridgeUnderTest
from tests.e2e.live_server import Server


class LiveScim:
    """A SCIM client over real HTTP, sending what Entra sends (no Accept, no User-Agent)."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers.clear()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, body: Any = None, **kw: Any) -> requests.Response:
        headers = (
            {"Content-Type": "application/scim+json; charset=utf-8"} if body is not None else {}
        )
        return self.session.request(
            method, f"{self.base_url}{path}", json=body, headers=headers, timeout=60, **kw
        )

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any) -> requests.Response:
        return self.request("POST", path, body)

    def patch(self, path: str, operations: list[dict[str, Any]]) -> requests.Response:
        body = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": operations,
        }
        return self.request("PATCH", path, body)

    def delete(self, path: str) -> requests.Response:
        return self.request("DELETE", path)


@pytest.fixture
def serve() -> Iterator[Callable[[BridgeUnderTest], LiveScim]]:
    servers: list[Any] = []

    def start(bridge: BridgeUnderTest) -> LiveScim:
        server = make_server("127.0.0.1", 0, bridge.app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return LiveScim(f"http://127.0.0.1:{server.server_port}/scim/v2", bridge.token)

    yield start
    for server in servers:
        server.shutdown()


@pytest.fixture
def environment(database_url: str, gitlab: Any, tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SCIM_BRIDGE_")}
    env.update(
        SCIM_BRIDGE_DATABASE_URL=database_url,
        SCIM_BRIDGE_GITLAB_URL=gitlab.url,
        SCIM_BRIDGE_GITLAB_TOKEN=ADMIN_TOKEN,
        SCIM_BRIDGE_GITLAB_TIMEOUT_SECONDS="5",
        SCIM_BRIDGE_RECONCILE_INLINE_DEADLINE_SECONDS="2",
        SCIM_BRIDGE_RECONCILE_WORKER_POLL_SECONDS="0.2",
        SCIM_BRIDGE_RECONCILE_BACKOFF_BASE_SECONDS="0.2",
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    return env


@pytest.fixture
def servers(environment: dict[str, str], tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


@pytest.fixture
def acme(gitlab: Any) -> Any:
    """The GitLab double with the groups the rules of the membership tests name."""
    gitlab.add_group("acme")
    gitlab.add_group("acme/engineering")
    return gitlab
