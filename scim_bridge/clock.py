"""Time in one place: aware UTC datetimes everywhere, so SQLite and PostgreSQL compare alike."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from typing import overload


def now() -> datetime:
    return datetime.now(UTC)


@overload
def aware(value: datetime) -> datetime: ...
@overload
def aware(value: datetime | None) -> datetime | None: ...
def aware(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes for what was stored as UTC; make them aware again."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
