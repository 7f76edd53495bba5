"""The bridge served on a real local port, so Entra-like requests cross real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

from tests.conftest import BridgeUnderTest


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
