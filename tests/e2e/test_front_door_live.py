"""The front door of the real `scim-bridge serve`: refusals held without a thread, one address
capped. Every check is an ordering or a lower bound on the clock all processes share
(CLOCK_MONOTONIC), never a speed: a slower machine only makes the bounds easier to meet.

One gunicorn worker with four threads; a refusal takes 2 s; an address may have four connections
in service. Fourteen connections from three other addresses send a wrong token, four silent ones
wait from a fourth: in plain gthread they would take every thread (the silent ones for 5 s, the
refused ones for 2 s each), and a valid request would wait behind them.
"""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.e2e.live_server import Server

pytestmark = pytest.mark.slow

FLOOR = 2.0
THREADS = 4
CAP = 4
PATH = "/scim/v2/Users?count=1"
PATIENCE = 60.0  # how long to wait for an answer that must come


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SCIM_BRIDGE_")}
    env.update(
        SCIM_BRIDGE_DATABASE_URL=f"sqlite:///{tmp_path / 'bridge.db'}",
        SCIM_BRIDGE_AUTH_FAILURE_FLOOR_MS=str(int(FLOOR * 1000)),
        SCIM_BRIDGE_AUTH_FAILURES_PER_MINUTE="10000",  # this test is about holding, not 429s
        SCIM_BRIDGE_SERVER_MAX_CONNECTIONS_PER_ADDRESS=str(CAP),
        SCIM_BRIDGE_SERVER_THREADS=str(THREADS),
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    token = run_cli(env, "tokens", "create", "entra").stdout.split("token: ")[1].strip()
    server = Server(env, tmp_path, workers=1)
    try:
        server.start()
        yield server, token
    finally:
        server.stop()


def connect(port: int, source: str) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(PATIENCE)
    sock.connect(("127.0.0.1", port))
    return sock


def request(token: str) -> bytes:
    return (
        f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()


def status_of(sock: socket.socket) -> int:
    """Read one whole response; its status."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the bridge closed the connection without an answer"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(
        int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return int(lines[0].split()[1])


def test_refusals_are_held_without_threads_and_an_address_waits_its_turn(
    live: tuple[Server, str],
) -> None:
    server, token = live
    bad = request("sbt_0011223344556677_" + "x" * 43)
    silent = [connect(server.port, "127.0.0.5") for _ in range(THREADS)]
    crowd = {
        source: [connect(server.port, source) for _ in range(count)]
        for source, count in (("127.0.0.2", CAP + 2), ("127.0.0.3", CAP), ("127.0.0.4", CAP))
    }
    refused = [sock for socks in crowd.values() for sock in socks]
    assert len(refused) - 2 > THREADS, "more refusals in service than there are threads"
    sent = {}
    for sock in refused:
        sent[sock] = time.monotonic()
        sock.sendall(bad)

    valid = connect(server.port, "127.0.0.1")
    valid.sendall(request(token))
    assert status_of(valid) == 200
    pending, _, _ = select.select(refused, [], [], 0)
    assert pending == [], "the valid request waited for held refusals to be released"

    answered = {}
    for sock in refused:
        assert status_of(sock) == 401
        answered[sock] = time.monotonic()
    for sock in refused:
        assert answered[sock] - sent[sock] >= FLOOR, "a refusal came back before the floor"
    # Four of 127.0.0.2's six were in service; the other two waited for a place, which frees up
    # only when a refusal is released, and were then held themselves.
    first = min(sent[sock] for sock in crowd["127.0.0.2"])
    late = [sock for sock in crowd["127.0.0.2"] if answered[sock] - first >= 2 * FLOOR]
    assert len(late) >= 2, "more connections of one address were in service than allowed"

    # A kept-alive connection is served again, and still refused in time; valid callers too.
    again = crowd["127.0.0.3"][0]
    started = time.monotonic()
    again.sendall(bad)
    assert status_of(again) == 401 and time.monotonic() - started >= FLOOR
    for sock in [*refused, *silent, valid]:
        sock.close()
    valid = connect(server.port, "127.0.0.2")  # the crowd's address, now that it left
    valid.sendall(request(token))
    assert status_of(valid) == 200
    valid.close()
