"""Guards in front of the endpoints: a per-caller rate limit (token buckets).

Each gunicorn process keeps its own buckets, so the limit a caller meets is at least the configured
rate and at most that rate times the number of processes. Microsoft sets no rate for non-gallery
apps (Entra sends as fast as it is answered; gallery apps must hold 25/s, entra.md §2.6-2.7), and a
429 can send Entra's job to quarantine, so the default sits above what one process can serve
(``settings.schemas.DEFAULT_RATE_LIMIT_PER_SECOND``): a caller's requests reach the bucket only once
on a thread, so a caller the process is keeping up with is never refused. What bounds a runaway
client is the front door (``server.admission``: one address on half the threads at most, the rest
waiting unread); a credential-guessing loop never reaches this limit, as only a verified caller
spends from it (failed authentications have their own, per address: ``auth.authenticator``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_BUCKETS = 10_000  # distinct callers kept; idle, full buckets are dropped beyond this


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``rate`` requests per second per key, with bursts up to ``burst``."""

    def __init__(
        self, rate: float, burst: int, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.monotonic = monotonic
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float | None:
        """Spend one request for ``key``: None if allowed, else the seconds until one is."""
        return self._check(key, spend=True)

    def waiting(self, key: str) -> float | None:
        """Like :meth:`take` without spending: None if ``key`` has a request left."""
        return self._check(key, spend=False)

    def _check(self, key: str, *, spend: bool) -> float | None:
        with self._lock:
            bucket = self._refilled(key)
            if bucket.tokens < 1:
                return (1 - bucket.tokens) / self.rate
            if spend:
                bucket.tokens -= 1
            return None

    def _refilled(self, key: str) -> _Bucket:
        now = self.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        return bucket

    def _forget_full(self, now: float) -> None:
        for key, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.updated) * self.rate >= self.burst:
                del self._buckets[key]


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds, never 0 (RFC 9110 §10.2.3)."""
    return str(max(1, math.ceil(seconds)))
