"""Kept-alive connections spread over the real `scim-bridge serve`'s workers.

Entra sends a whole cycle down a few kept-alive connections: if one worker holds most of them, one
process (one core, under its interpreter lock) serves most of the cycle. Two workers here; which
worker holds a connection is read from Linux's ``/proc`` (the socket's inode in the worker's file
descriptors). Orderings only: a worker holding two or more connections above the other leaves new
ones to it, whatever the machine's speed; one exception is allowed, for a worker that the machine
did not schedule within the lean-back (0.2 s) of being woken.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.live_server import Server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc"),
]

PATIENCE = 60.0  # how long to wait for what must happen (never reached when it works)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SCIM_BRIDGE_")}
    env.update(
        SCIM_BRIDGE_DATABASE_URL=f"sqlite:///{tmp_path / 'bridge.db'}",
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    server = Server(env, tmp_path, workers=2)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, process group) of ``pid``; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), int(fields[2])


def worker_pids(server: Server) -> list[int]:
    """The gunicorn workers: the grandchildren of `scim-bridge serve`, in its process group."""
    assert server.process is not None
    group = server.process.pid
    family = {
        pid: stat
        for pid in (int(entry) for entry in os.listdir("/proc") if entry.isdigit())
        if (stat := _stat(pid)) is not None and stat[1] == group
    }
    masters = {pid for pid, (parent, _) in family.items() if parent == group}
    return sorted(pid for pid, (parent, _) in family.items() if parent in masters)


def holders(port: int, workers: list[int]) -> dict[int, int]:
    """For each client port connected to ``port``, the worker holding its accepted socket."""
    by_inode: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                by_inode[inode] = int(remote.rsplit(":", 1)[1], 16)
    held: dict[int, int] = {}
    for pid in workers:
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        for link in links:
            inode = link.removeprefix("socket:[").removesuffix("]")
            if link.startswith("socket:[") and inode in by_inode:
                held[by_inode[inode]] = pid
    return held


def connect_and_ask(port: int) -> socket.socket:
    """A kept-alive connection that has had one answer: accepted and served by some worker."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    data = b""
    while b'"ok"' not in data:
        chunk = sock.recv(65536)
        assert chunk, "the bridge closed the connection without an answer"
        data += chunk
    assert data.startswith(b"HTTP/1.1 200")
    return sock


def holder_of(sock: socket.socket, port: int, workers: list[int]) -> int:
    client_port = sock.getsockname()[1]
    deadline = time.monotonic() + PATIENCE
    while (pid := holders(port, workers).get(client_port)) is None:
        assert time.monotonic() < deadline, "no worker holds the connection"
        time.sleep(0.01)
    return pid


def test_new_connections_go_to_the_worker_holding_fewer(server: Server) -> None:
    workers = worker_pids(server)
    assert len(workers) == 2
    # Until both workers hold connections (the second may still be starting: it takes none
    # before), and one of them nine.
    held: dict[socket.socket, int] = {}
    while len(set(held.values())) < 2 or max(Counter(held.values()).values()) < 9:
        assert len(held) < 60, f"one worker takes every connection: {Counter(held.values())}"
        sock = connect_and_ask(server.port)
        held[sock] = holder_of(sock, server.port, workers)
    counts = Counter(held.values())
    busy, idle = sorted(workers, key=lambda pid: counts[pid], reverse=True)
    for sock in [sock for sock, pid in held.items() if pid == idle]:
        sock.close()  # the idle worker now holds none, the busy one at least nine
    deadline = time.monotonic() + PATIENCE
    while idle in holders(server.port, workers).values():
        assert time.monotonic() < deadline, "the closed connections were not let go"
        time.sleep(0.01)

    new = [connect_and_ask(server.port) for _ in range(8)]
    landed = [holder_of(sock, server.port, workers) for sock in new]

    assert landed.count(idle) >= 7, f"new connections went to {landed}: busy={busy} idle={idle}"
    for sock in [*held, *new]:
        sock.close()
