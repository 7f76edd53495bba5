"""Hold a response back until a given time, without holding the thread that built it.

A refused credential must take as long as any other refusal (no timing oracle), but sleeping in a
request thread lets a flood of bad credentials take every thread. Under the bridge's gunicorn
worker (``scim_bridge.server.worker``) the thread serving a request is marked here first; the app
then asks for its answer to leave no earlier than a monotonic time, returns at once, and the worker
writes the answer from a timer. Anywhere else (Flask's test client, werkzeug's server) nothing is
marked and the caller waits itself, as before.
"""

from __future__ import annotations

import threading

_local = threading.local()


class Hold:
    """The latest time the response being built on this thread may leave (None: at once)."""

    __slots__ = ("due",)

    def __init__(self) -> None:
        self.due: float | None = None


def begin() -> Hold:
    """Mark this thread as serving a response a releaser can hold (the worker, before the app)."""
    hold = Hold()
    _local.hold = hold
    return hold


def end() -> None:
    """The response is out of the app's hands: later asks on this thread are not held."""
    _local.hold = None


def release_at(due: float) -> bool:
    """Ask that this thread's response leave no earlier than ``due`` (``time.monotonic``).

    True when a releaser will do it and the caller can return at once; False when no releaser
    serves this thread, and the caller must wait itself if it needs to.
    """
    hold: Hold | None = getattr(_local, "hold", None)
    if hold is None:
        return False
    hold.due = due if hold.due is None else max(hold.due, due)
    return True
