"""The worker's parts on their own: the hold API the app calls, the per-address gate, and the
releaser thread that writes held answers and closes connections gracefully. Orderings and lower
bounds only: nothing here depends on how fast the machine is."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from scim_bridge.server import hold
from scim_bridge.server.admission import AddressGate
from scim_bridge.server.releaser import Releaser
from scim_bridge.server.releaser import write_now
from scim_bridge.settings import load_settings

PATIENCE = 30.0  # how long a test waits for what must happen (never reached when it works)


def test_a_hold_is_asked_only_where_a_releaser_serves_the_thread() -> None:
    assert hold.release_at(time.monotonic() + 1) is False, "nothing marked: the caller sleeps"
    marked = hold.begin()
    try:
        assert hold.release_at(5.0) and hold.release_at(3.0)
        assert marked.due == 5.0, "the latest time asked wins"
        seen: list[bool] = []
        other = threading.Thread(target=lambda: seen.append(hold.release_at(9.0)))
        other.start()
        other.join()
        assert seen == [False] and marked.due == 5.0, "another thread's response is its own"
    finally:
        hold.end()
    assert hold.release_at(7.0) is False


def test_the_gate_serves_a_few_per_address_and_queues_the_rest_in_order() -> None:
    gate: AddressGate[str] = AddressGate(serving=2, open_=4)
    assert [gate.opened("a") for _ in range(5)] == [True] * 4 + [False]
    assert gate.opened("b"), "another address has its own count"
    entered = [gate.enter("a", name) for name in ("a1", "a2", "a3", "a4")]
    assert entered == [True, True, False, False]
    assert gate.enter("b", "b1"), "another address is not queued behind the first"
    assert gate.admit("a") == [], "no place has freed up"
    gate.leave("a", on_thread=True)
    assert gate.admit("a") == ["a3"]
    gate.leave("a", on_thread=True)
    gate.leave("a", on_thread=True)
    assert gate.admit("a") == ["a4"]
    assert gate.waiting_count("a") == 0 and gate.serving_count("a") == 1
    gate.closed("a")
    assert gate.opened("a") and not gate.opened("a")


def test_held_answers_keep_their_place_but_free_their_thread() -> None:
    gate: AddressGate[str] = AddressGate(serving=4, open_=10, threads=2)
    assert [gate.enter("a", name) for name in ("a1", "a2", "a3")] == [True, True, False]
    gate.held("a")  # a1 answered, its answer held: a thread is free, its place is not
    assert gate.admit("a") == ["a3"]
    gate.held("a")
    gate.held("a")
    assert [gate.enter("a", name) for name in ("a4", "a5")] == [True, False]
    assert gate.serving_count("a") == 4 and gate.threads_count("a") == 1
    gate.held("a")
    assert gate.admit("a") == [], "four in service: a5 waits for a release"
    gate.leave("a", on_thread=False)  # a1 released
    assert gate.admit("a") == ["a5"]


def test_a_default_process_gives_one_address_16_threads_and_queues_the_17th() -> None:
    """Entra is one address: its 16-request burst runs at once in one process of the default serve
    (32 threads, half for one address), the 17th waits, and another address still has threads."""
    server = load_settings({}).server
    gate: AddressGate[str] = AddressGate.for_process(
        server.max_connections_per_address, server.threads
    )
    assert all(gate.enter("entra", f"e{n}") for n in range(16))
    assert not gate.enter("entra", "e16")
    assert gate.threads_count("entra") == 16 and gate.waiting_count("entra") == 1
    assert gate.enter("portal", "p0")
    small: AddressGate[str] = AddressGate.for_process(16, threads=8)
    assert [small.enter("entra", f"e{n}") for n in range(5)] == [True] * 4 + [False]


class Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    made: list[tuple[socket.socket, socket.socket]] = []
    yield made
    for pair in made:
        for sock in pair:
            sock.close()


def pair(pairs: list[tuple[socket.socket, socket.socket]]) -> tuple[socket.socket, socket.socket]:
    made = socket.socketpair()
    pairs.append(made)
    return made


class Delivered:
    """What the releaser hands back, with the time it did."""

    def __init__(self, expected: int) -> None:
        self.items: list[tuple[Any, bool, bool, float]] = []
        self.expected = expected
        self.done = threading.Event()

    def __call__(self, conn: Any, keepalive: bool, written: bool) -> None:
        self.items.append((conn, keepalive, written, time.monotonic()))
        if len(self.items) >= self.expected:
            self.done.set()


def test_held_answers_leave_in_due_order_and_never_before_their_time(pairs: Any) -> None:
    delivered = Delivered(3)
    releaser = Releaser(delivered, stopping=lambda: False)
    releaser.start()
    try:
        now = time.monotonic()
        ends = [pair(pairs) for _ in range(3)]
        dues = [now + 0.3, now + 0.1, now + 0.2]
        for (server, _), due, keepalive in zip(ends, dues, (True, False, True), strict=True):
            releaser.hold(due, Conn(server), b"answer", keepalive)
        assert delivered.done.wait(PATIENCE)
    finally:
        releaser.stop()
    order = [next(i for i, (s, _) in enumerate(ends) if s is c.sock) for c, *_ in delivered.items]
    assert order == [1, 2, 0]
    for conn, keepalive, written, at in delivered.items:
        index = next(i for i, (s, _) in enumerate(ends) if s is conn.sock)
        assert at >= dues[index] and written
        assert keepalive == (index != 1)
        assert ends[index][1].recv(100) == b"answer"


def test_a_stopping_worker_releases_everything_at_once(pairs: Any) -> None:
    stopping = threading.Event()
    delivered = Delivered(2)
    releaser = Releaser(delivered, stopping=stopping.is_set)
    releaser.start()
    try:
        for _ in range(2):
            server, _ = pair(pairs)
            releaser.hold(time.monotonic() + 3600, Conn(server), b"bye", True)
        assert releaser.held() == 2
        stopping.set()
        assert delivered.done.wait(PATIENCE), "an hour-long hold was not cut short"
    finally:
        releaser.stop()
    assert all(written for _, _, written, _ in delivered.items)


def test_a_peer_that_does_not_read_is_not_waited_for(pairs: Any) -> None:
    server, _ = pair(pairs)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    assert write_now(server, b"x" * 10_000_000) is False, "a full buffer fails, never blocks"
    delivered = Delivered(1)
    releaser = Releaser(delivered, stopping=lambda: False)
    releaser.start()
    try:
        releaser.hold(time.monotonic(), Conn(server), b"more", True)
        assert delivered.done.wait(PATIENCE)
    finally:
        releaser.stop()
    (_, keepalive, written, _) = delivered.items[0]
    assert (keepalive, written) == (False, False)


def test_a_graceful_close_does_not_wait_for_the_peer(pairs: Any) -> None:
    releaser = Releaser(Delivered(0), stopping=lambda: False)
    releaser.start()
    try:
        server, client = pair(pairs)
        client.sendall(b"unread request bytes")
        releaser.linger(server)  # returns at once, although the peer has not closed
        client.settimeout(PATIENCE)
        assert client.recv(100) == b"", "the FIN was sent"
        client.close()
        deadline = time.monotonic() + PATIENCE
        while server.fileno() != -1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.fileno() == -1, "closed once the peer closed"
    finally:
        releaser.stop()
