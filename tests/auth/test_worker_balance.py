"""The table that spreads kept-alive connections over the workers (``scim_bridge.server.balance``):
who leans back, for how long at most, whose entry counts, and that a forked worker's entry is seen
by the others. The clock is the module's, set by hand: nothing here depends on the machine's speed.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest

from scim_bridge.server import balance
from scim_bridge.server.balance import ConnectionShares
from scim_bridge.server.balance import Share


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(balance, "time", fake)
    return fake


def workers(*counts: int) -> list[Share]:
    """One share per worker, each published with its open connections."""
    shares = ConnectionShares(8)
    taken: list[int | None] = []
    result = []
    for pid, count in enumerate(counts, start=100):
        slot = shares.assign(taken)
        assert slot is not None
        taken.append(slot)
        share = Share(shares, slot, pid)
        share.publish(count)
        result.append(share)
    return result


def test_only_a_worker_two_above_the_least_loaded_leans_back(clock: Clock) -> None:
    busy, even, idle = workers(5, 4, 3)
    assert not even.lean_back(4) and not idle.lean_back(3), "within one of the fewest: taken"
    assert busy.lean_back(5), "two above the least loaded worker: left to it"
    assert busy.leaning()
    clock.now += balance.LEAN_BACK_SECONDS
    assert not busy.leaning()


def test_a_lone_worker_never_leans_back(clock: Clock) -> None:
    (alone,) = workers(40)
    assert not alone.lean_back(40)


def test_a_connection_left_waiting_is_taken_after_one_lean_back(clock: Clock) -> None:
    """If the less loaded worker does not take it (stuck, but its entry fresh), the busy one does
    once its lean-back is over: no connection waits much longer than LEAN_BACK_SECONDS."""
    busy, _idle = workers(6, 0)
    assert busy.lean_back(6)
    clock.now += balance.LEAN_BACK_SECONDS / 2
    assert busy.leaning(), "not listening meanwhile"
    clock.now += balance.LEAN_BACK_SECONDS / 2
    assert not busy.leaning(), "listening again"
    assert not busy.lean_back(6), "the connection found by the first poll since: taken"
    busy.polled()
    assert busy.lean_back(6), "a later connection: left to the idle worker again"


def test_a_worker_whose_entry_is_stale_or_released_is_not_counted(clock: Clock) -> None:
    busy, stuck = workers(6, 0)
    clock.now += balance.STALE_SECONDS + 1
    busy.publish(6)
    assert not busy.lean_back(6), "a worker whose loop stopped refreshing takes nothing"
    stuck.publish(0)
    assert busy.lean_back(6)
    busy.shares.release(stuck.slot)
    assert not busy.lean_back(6), "an exited worker's slot holds nobody"


def test_slots_are_given_once_and_reused_after_release() -> None:
    shares = ConnectionShares(2)
    first = shares.assign([])
    second = shares.assign([first])
    assert (first, second) == (0, 1)
    assert shares.assign([first, second]) is None, "full: that worker is simply not balanced"
    shares.release(first)
    assert shares.assign([second]) == 0


def _publish(share: Share, connections: int) -> None:
    share.publish(connections)


def test_a_forked_worker_entry_is_seen_by_the_others() -> None:
    """The table is made before the fork, in memory the master and every worker share."""
    parent, child = workers(0, 0)
    fork: Any = multiprocessing.get_context("fork")
    process = fork.Process(target=_publish, args=(child, 7))
    process.start()
    process.join(30)
    assert process.exitcode == 0
    parent.publish(9)
    assert parent.shares.fewest(balance.time.monotonic()) == 7, "the child's 7 is seen here"
