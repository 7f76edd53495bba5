"""Who is asking, and under which request id: carried to the audit log without threading it through calls.

A SCIM request binds its own context; the background worker binds, for each job, the context of the
request that queued it (``store.jobs.Job.cause``), so the work done later still names its cause.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    """The verified caller (``token:NAME``...), the request id, and the caller's address."""

    request_id: str | None = None
    actor: str | None = None
    source: str | None = None


_NOBODY = RequestContext()
_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "scim_bridge_request_context", default=None
)


def current() -> RequestContext:
    return _current.get() or _NOBODY


@contextmanager
def bound(context: RequestContext) -> Iterator[RequestContext]:
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
