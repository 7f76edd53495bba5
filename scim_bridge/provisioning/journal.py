"""What a reconcile run keeps for its end: the audit events it made and its final store writes.

A run's bookkeeping is written with its outcome, in the one transaction that completes, retries or
parks its job (``runner.py`` says why that is crash-safe). While the runner has a
:class:`Journal` bound, :func:`audit_event` keeps events (each with its own time and the run's
request context) instead of writing each in a transaction of its own, and :func:`at_end` keeps
the reconciler's final writes. With no journal bound (a reconciler called on its own, a CLI
command) both write at once, as before.

A write that must be durable before a GitLab call (``links.mark_create_started``, a membership
written ahead) does not go through here: it commits on its own, before the call.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from scim_bridge.store import audit
from scim_bridge.store.db import Database

_current: contextvars.ContextVar[Journal | None] = contextvars.ContextVar(
    "scim_bridge_run_journal", default=None
)


@dataclass(eq=False)
class Journal:
    """The events and final writes of one run, written by :meth:`write` in the runner's
    transaction."""

    events: list[dict[str, Any]] = field(default_factory=list)
    finals: list[Callable[[], None]] = field(default_factory=list)

    @contextmanager
    def kept(self) -> Iterator[Journal]:
        """Keep this context's events and final writes here for the block."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)

    def spill(self, db: Database, *, per_transaction: int, keep: int) -> None:
        """Write the oldest events, ``per_transaction`` to a transaction of their own, until at
        most ``keep`` are kept: a long read-only run (a drift turn, the access report) audits
        every GitLab read without a transaction per read, nor all of them held to its end."""
        while len(self.events) > keep:
            batch, self.events = self.events[:per_transaction], self.events[per_transaction:]
            with db.transaction(write=True):
                audit.record_pending(batch)

    def write(self, *, finals: bool = True) -> None:
        """In the open write transaction: the events (they happened first), then the writes."""
        audit.record_pending(self.events)
        if finals:
            for final in self.finals:
                final()


def audit_event(
    db: Database, action: str, target: str | None, detail: dict[str, Any] | None
) -> None:
    """Record an event: kept for the run's end while a journal is bound, else at once."""
    journal = _current.get()
    if journal is None:
        audit.record_now(db, action, target, detail)
        return
    journal.events.append(audit.pending_event(action, target, detail))


def at_end(write: Callable[[], None]) -> None:
    """Run a final store write in the transaction that ends the run, or now when none is kept.

    The write runs whatever the outcome (completed, retried, parked): register only what is
    true of GitLab as the run leaves it. It may raise ``Rejected``: the runner then ends the run
    without the final writes, as refused.
    """
    journal = _current.get()
    if journal is None:
        write()
        return
    journal.finals.append(write)
