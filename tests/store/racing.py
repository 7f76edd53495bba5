"""Threads on two database handles (two instances of the bridge) racing for one thing at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from scim_bridge.store.db import Database

T = TypeVar("T")


def race(db: Database, racers: int, run: Callable[[Database, int], T]) -> list[T]:
    """``run(handle, index)`` in ``racers`` threads released together, alternately on ``db`` and
    on a second handle of the same database; their results, in the order they finished."""
    other = Database(db.url)
    handles = [db, other]
    start = threading.Barrier(racers)
    results: list[T] = []
    lock = threading.Lock()

    def one(index: int) -> None:
        start.wait()
        result = run(handles[index % 2], index)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=one, args=(index,)) for index in range(racers)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        other.dispose()
    return results
