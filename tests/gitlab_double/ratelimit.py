"""A rolling-window counter for GitLab's application rate limits (members delete: 60/min)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Hashable


class RollingLimiter:
    """At most `limit` accepted calls per key within any `window` seconds."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._calls: dict[Hashable, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: Hashable) -> bool:
        """Count one call; False when it is over the limit (and then it is not counted)."""
        now = time.monotonic()
        with self._lock:
            calls = self._calls.setdefault(key, deque())
            while calls and calls[0] <= now - self.window:
                calls.popleft()
            if len(calls) >= self.limit:
                return False
            calls.append(now)
            return True

    @property
    def retry_after(self) -> int:
        """GitLab's `too_many_requests!` sends the limiter's interval, not the time left."""
        return max(1, math.ceil(self.window))

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
