"""How many connections one address may have open, in service, and on threads, in one process.

Without a cap, one address opening a thousand connections fills the thread pool's queue (a valid
caller then waits behind all of them) and gunicorn's ``worker_connections``. With it, an address
has at most ``serving`` connections in service at once (on a thread, or answered and held until
their release time), of which at most ``threads`` on a thread (so a few slow requests of one
address cannot take every thread either); its other ready connections wait, unread and without a
thread, in a first-in first-out queue of their own; and it may have at most ``open`` connections at
all, the rest being closed as they are accepted. Everything here runs on the worker's main thread.
"""

from __future__ import annotations

from collections import deque
from typing import Generic
from typing import TypeVar

Conn = TypeVar("Conn")

# Connections of one address that may wait for a place in service, per process, beyond those in
# service; past it, new ones are closed as they are accepted. Several hundred keep a busy client
# served (they wait, they are not refused) while one address cannot fill worker_connections.
WAITING_PER_ADDRESS = 256


def threads_per_address(threads: int) -> int:
    """Half a process's threads at most for one address, so its slow requests cannot take them all.

    Entra calls from one address: this (with ``max_connections_per_address``) is the concurrency a
    process gives it, so the default threads are twice the concurrency Entra is sized for.
    """
    return max(1, threads // 2)


def _less(counts: dict[str, int], key: str) -> None:
    count = counts.get(key, 0) - 1
    if count > 0:
        counts[key] = count
    else:
        counts.pop(key, None)


class AddressGate(Generic[Conn]):
    @classmethod
    def for_process(cls, max_per_address: int, threads: int) -> AddressGate[Conn]:
        """The gate of a process of ``threads`` threads: ``[server] max_connections_per_address``
        in service, on at most half the threads, and a few hundred more waiting."""
        return cls(
            max_per_address, max_per_address + WAITING_PER_ADDRESS, threads_per_address(threads)
        )

    def __init__(self, serving: int, open_: int, threads: int | None = None) -> None:
        self.serving_limit = serving
        self.threads_limit = min(serving, threads or serving)
        self.open_limit = max(open_, serving)
        self._open: dict[str, int] = {}
        self._serving: dict[str, int] = {}
        self._threads: dict[str, int] = {}
        self._waiting: dict[str, deque[Conn]] = {}

    def opened(self, key: str) -> bool:
        """A connection from ``key`` was accepted: False if it must be closed at once."""
        count = self._open.get(key, 0)
        if count >= self.open_limit:
            return False
        self._open[key] = count + 1
        return True

    def closed(self, key: str) -> None:
        _less(self._open, key)

    def enter(self, key: str, conn: Conn) -> bool:
        """``conn`` has a request to serve: True if it may take a thread now, else it waits."""
        if self._room(key):
            self._take(key)
            return True
        self._waiting.setdefault(key, deque()).append(conn)
        return False

    def held(self, key: str) -> None:
        """A connection of ``key`` left its thread but is still in service (its answer is held)."""
        _less(self._threads, key)

    def leave(self, key: str, *, on_thread: bool) -> None:
        """A connection of ``key`` is out of service (idle, closed, or waiting for data)."""
        _less(self._serving, key)
        if on_thread:
            _less(self._threads, key)

    def admit(self, key: str) -> list[Conn]:
        """The waiting connections that may take a thread now, oldest first."""
        waiting = self._waiting.get(key)
        admitted: list[Conn] = []
        while waiting and self._room(key):
            admitted.append(waiting.popleft())
            self._take(key)
        if waiting is not None and not waiting:
            del self._waiting[key]
        return admitted

    def _room(self, key: str) -> bool:
        return (
            self._serving.get(key, 0) < self.serving_limit
            and self._threads.get(key, 0) < self.threads_limit
        )

    def _take(self, key: str) -> None:
        self._serving[key] = self._serving.get(key, 0) + 1
        self._threads[key] = self._threads.get(key, 0) + 1

    def open_count(self, key: str) -> int:
        return self._open.get(key, 0)

    def serving_count(self, key: str) -> int:
        return self._serving.get(key, 0)

    def threads_count(self, key: str) -> int:
        return self._threads.get(key, 0)

    def waiting_count(self, key: str) -> int:
        return len(self._waiting.get(key, ()))
