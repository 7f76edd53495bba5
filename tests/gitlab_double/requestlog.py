"""Every request the double answered, so tests can count calls and inspect what was sent."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RequestRecord:
    """One request; fields read as attributes or as keys (`record["query"]`)."""

    method: str
    path: str  # as sent, still URL-encoded (e.g. /api/v4/groups/acme%2Fdev)
    query: dict[str, Any]  # one value per key, or a list when the key repeats
    json: Any
    status: int
    token: str | None
    response: Any = None  # the answer's JSON body (or its text)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


class RequestLog:
    def __init__(self) -> None:
        self._records: list[RequestRecord] = []
        self._lock = threading.Lock()

    def add(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def all(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def matching(self, method: str | None = None, path: str | None = None) -> list[RequestRecord]:
        """Records with this method (any case) and exact path; None matches anything."""
        return [
            r
            for r in self.all()
            if (method is None or r.method == method.upper()) and (path is None or r.path == path)
        ]
