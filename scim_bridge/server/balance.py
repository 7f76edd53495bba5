"""Spreading kept-alive connections evenly over the gunicorn workers.

All workers wait on one listening socket, and the kernel wakes every one of them for each new
connection: whichever calls ``accept`` first takes it. The worker already running (the busiest one)
usually wins, so a burst of connections lands mostly on one process. Entra keeps its connections
alive and sends every request of a cycle down them, so that one process, and the one core its
interpreter lock lets it use, then serves most of the cycle while the other workers idle (measured:
one of four workers took 53 to 78 % of the CPU of a filter-GET load).

Each worker therefore publishes how many connections it holds in a small table the master shares
with every worker (anonymous shared memory, made before the first fork). A worker that holds more
than ``SLACK`` connections above the least loaded live worker leans back from the listening socket
for ``LEAN_BACK_SECONDS``, which lets a less loaded worker, woken for the same connection, take it.
The lean-back is bounded: a connection still waiting when it ends is taken, so none waits much
longer than that, even when the other workers are stuck. A worker whose entry has not
been refreshed for ``STALE_SECONDS`` (its main loop stuck, or the process gone) is not counted.
"""

from __future__ import annotations

import mmap
import struct
import time
from collections.abc import Iterable

SLACK = 1
LEAN_BACK_SECONDS = 0.2
# A worker's main loop refreshes its entry at least once a second (gthread's poll timeout).
STALE_SECONDS = 3.0
# (pid, open connections, monotonic time of the last refresh); CLOCK_MONOTONIC is system-wide.
_ENTRY = struct.Struct("qqd")
FREE = 0


class ConnectionShares:
    """The master's table of each worker's open connections, one entry per worker slot.

    The master assigns slots before it forks (``assign``) and frees them when a worker exits
    (``release``); each worker writes only its own entry. Entries are read without a lock: a
    torn or stale read can only make one accept decision slightly wrong, never stall one.
    """

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._memory = mmap.mmap(-1, _ENTRY.size * slots)  # MAP_SHARED: seen across fork

    def assign(self, taken: Iterable[int | None]) -> int | None:
        """The first slot no live worker holds (None if all are held: that worker is not
        balanced, and takes what it is given)."""
        used = set(taken)
        slot = next((slot for slot in range(self.slots) if slot not in used), None)
        if slot is not None:
            self._write(slot, FREE, 0, 0.0)
        return slot

    def release(self, slot: int | None) -> None:
        if slot is not None:
            self._write(slot, FREE, 0, 0.0)

    def publish(self, slot: int, pid: int, connections: int) -> None:
        self._write(slot, pid, connections, time.monotonic())

    def fewest(self, now: float) -> int | None:
        """The fewest connections any live worker holds, or None if no entry is fresh."""
        counts = [
            connections
            for pid, connections, refreshed in _ENTRY.iter_unpack(self._memory)
            if pid != FREE and now - refreshed <= STALE_SECONDS
        ]
        return min(counts, default=None)

    def _write(self, slot: int, pid: int, connections: int, refreshed: float) -> None:
        _ENTRY.pack_into(self._memory, slot * _ENTRY.size, pid, connections, refreshed)


class Share:
    """One worker's entry, and its decision to take a new connection or lean back."""

    def __init__(self, shares: ConnectionShares, slot: int, pid: int) -> None:
        self.shares = shares
        self.slot = slot
        self.pid = pid
        self.leaning_until: float | None = None
        # Listening again after a lean-back, until the first poll is dispatched: a connection
        # that poll finds has waited since before, and no other worker took it.
        self._overdue = False

    def publish(self, connections: int) -> None:
        self.shares.publish(self.slot, self.pid, connections)

    def lean_back(self, connections: int) -> bool:
        """True if this worker should leave the next connection to a less loaded one.

        Never twice for one connection: one still waiting when the lean-back ends is taken, so
        none waits much longer than ``LEAN_BACK_SECONDS``, even when every other worker is stuck.
        """
        if self._overdue:
            return False
        now = time.monotonic()
        fewest = self.shares.fewest(now)
        if fewest is None or connections <= fewest + SLACK:
            return False
        self.leaning_until = now + LEAN_BACK_SECONDS
        return True

    def leaning(self) -> bool:
        """Whether the worker must still stay away from the listening socket; the first time
        it need not, the lean-back is over, and the next poll's connection is taken."""
        if self.leaning_until is None:
            return False
        if time.monotonic() < self.leaning_until:
            return True
        self.leaning_until = None
        self._overdue = True
        return False

    def polled(self) -> None:
        self._overdue = False
