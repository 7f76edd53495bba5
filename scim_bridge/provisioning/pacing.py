"""Pacing GitLab's counted limits the way GitLab counts them: N calls in any rolling window.

GitLab allows 60 member deletions per group per minute (gitlab.md). A token bucket with a burst
of 60 refilling at one a second admits 60 + t deletions in t seconds, one more than GitLab takes
in the same minute; a rolling window admits exactly what GitLab does. The window is a second
longer than GitLab's, because the bridge counts a call just before GitLab receives it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

MARGIN_SECONDS = 1.0


class SlidingWindow:
    """At most ``limit`` calls per key within any ``window`` seconds (plus a margin)."""

    def __init__(
        self, limit: int, window: float, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window + MARGIN_SECONDS
        self.monotonic = monotonic
        self._calls: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float | None:
        """Count one call for ``key``: None if allowed now, else the seconds until one is."""
        now = self.monotonic()
        with self._lock:
            calls = self._calls.setdefault(key, deque())
            while calls and calls[0] <= now - self.window:
                calls.popleft()
            if len(calls) >= self.limit:
                return calls[0] + self.window - now
            calls.append(now)
            return None
