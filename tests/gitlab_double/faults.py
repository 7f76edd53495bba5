"""Fault injection: latency, held requests, 5xx and 429 answers, on chosen requests.

Rules apply in the order they were added. A rule first sleeps `latency`, then waits for
`hold` (a `threading.Event`), then, if it has a `status`, answers it without processing the
request; rules without a status let the request go on (to the next rule, then the API).
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass


@dataclass
class FaultRule:
    method: str | None = None
    path_pattern: re.Pattern[str] | None = None
    status: int | None = None
    retry_after: float | None = None
    latency: float = 0.0
    probability: float = 1.0
    times: int | None = None
    hold: threading.Event | None = None
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_pattern is None or bool(self.path_pattern.search(path))


class Faults:
    """The rule list; `probability` draws come from a seeded `random.Random` (reproducible)."""

    def __init__(self, seed: int = 0) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._random = random.Random(seed)

    def add(
        self,
        method: str | None = None,
        path_pattern: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        latency: float = 0.0,
        probability: float = 1.0,
        times: int | None = None,
        hold: threading.Event | None = None,
    ) -> FaultRule:
        """Add a rule; `path_pattern` is a regex searched in the request path."""
        rule = FaultRule(
            method=method,
            path_pattern=re.compile(path_pattern) if path_pattern else None,
            status=status,
            retry_after=retry_after,
            latency=latency,
            probability=probability,
            times=times,
            hold=hold,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def seed(self, seed: int) -> None:
        with self._lock:
            self._random.seed(seed)

    def candidates(self, method: str, path: str) -> list[FaultRule]:
        """Rules whose method and path match, in order (not yet fired)."""
        with self._lock:
            return [r for r in self._rules if r.matches(method, path)]

    def fire(self, rule: FaultRule) -> bool:
        """Whether the rule applies to this request; consumes one of its `times`."""
        with self._lock:
            if rule.times is not None and rule.fired >= rule.times:
                return False
            if rule.probability < 1.0 and self._random.random() >= rule.probability:
                return False
            rule.fired += 1
            return True
