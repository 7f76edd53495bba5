"""Verifying the audit hash chain (store/audit.py): what was edited, removed or reordered.

``verify()`` walks the chain in ``seq`` order, in batches from one snapshot, and finds what was done
to the table afterwards: an event whose content was edited (its hash no longer matches), events
removed (a gap in ``seq``, or a ``prev_hash`` that is not the previous event's hash), events moved
to another position, a tail cut off (the head is ahead of the last event), and rows inserted
outside the chain (no ``seq``). It cannot tell a whole table rewritten with its head: anchor the
head hash it prints elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import select

from scim_bridge.store.audit import BATCH
from scim_bridge.store.audit import GENESIS
from scim_bridge.store.audit import batches
from scim_bridge.store.audit import chain_head
from scim_bridge.store.audit import event_hash
from scim_bridge.store.audit import snapshot
from scim_bridge.store.db import Database
from scim_bridge.store.schema import audit_events

# Only so many problems are listed; the rest are counted.
MAX_PROBLEMS = 1000


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the chain, at the event (``seq``/``id``) where it shows."""

    kind: str  # edited | removed | reordered | truncated | unchained | head
    message: str
    seq: int | None = None
    id: int | None = None
    last_seq: int | None = None  # for a range of seqs

    @property
    def where(self) -> str:
        if self.seq is None:
            return "chain head" if self.id is None else f"id {self.id}"
        seqs = (
            f"seq {self.seq}"
            if self.last_seq in (None, self.seq)
            else f"seq {self.seq}-{self.last_seq}"
        )
        return seqs if self.id is None else f"{seqs} (id {self.id})"

    def __str__(self) -> str:
        return f"{self.where}: {self.kind} — {self.message}"


@dataclass
class Report:
    """What ``verify`` found: how many chained events, the head, and the problems."""

    events: int = 0
    head_seq: int | None = None
    head_hash: str | None = None
    problems: list[Problem] = field(default_factory=list)
    unlisted: int = 0  # problems beyond MAX_PROBLEMS, counted only

    @property
    def intact(self) -> bool:
        return not self.problems

    @property
    def problem_count(self) -> int:
        return len(self.problems) + self.unlisted

    def add(self, problem: Problem) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)
        else:
            self.unlisted += 1


@dataclass
class _Walk:
    """Where the walk is: the last event seen, and whether it was found wrong."""

    seq: int = 0
    hash: str = GENESIS
    id: int | None = None
    flagged: bool = False


def verify(db: Database) -> Report:
    """Walk the whole chain (streaming, in one snapshot) and report what does not hold."""
    report = Report()
    walk = _Walk()
    with snapshot(db) as connection:
        head = chain_head(connection)
        report.head_seq, report.head_hash = head if head is not None else (None, None)
        for rows, window in _windows(connection):
            memo: dict[str, int | None] = {}
            for row in rows:
                found = _check(row, walk, window, memo)
                for problem in found:
                    report.add(problem)
                flagged = any(problem.id == row["id"] for problem in found)
                walk = _Walk(row["seq"], row["hash"], row["id"], flagged)
                report.events += 1
        for problem in _check_head(head, walk):
            report.add(problem)
        for problem in _unchained(connection):
            report.add(problem)
    return report


def _windows(
    connection: Connection,
) -> Iterator[tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]]:
    """Each batch, with the events of it and of the batches either side by hash: a moved event
    is recognised by the event it was chained to, which may sit a little before or after it."""
    pages = batches(connection)
    previous: list[dict[str, Any]] = []
    current = next(pages, [])
    while current:
        following = next(pages, [])
        yield current, {row["hash"]: row for row in (*previous, *current, *following)}
        previous, current = current, following


def _check(
    row: Mapping[str, Any],
    walk: _Walk,
    window: Mapping[str, Mapping[str, Any]],
    memo: dict[str, int | None],
) -> list[Problem]:
    """The problems one event shows, given the event before it."""
    seq, row_id = row["seq"], row["id"]
    found = []
    if seq > walk.seq + 1:
        count = seq - walk.seq - 1
        found.append(
            Problem(
                "removed",
                f"{count} event(s) missing from the chain before seq {seq} (id {row_id})",
                seq=walk.seq + 1,
                last_seq=seq - 1,
            )
        )
    if event_hash(row) != row["hash"]:
        written_at = _written_at(row, window, memo)
        if written_at is not None:
            message = f"this event was written as seq {written_at}"
            found.append(Problem("reordered", message, seq=seq, id=row_id))
        else:
            message = "stored hash does not match its content"
            found.append(Problem("edited", message, seq=seq, id=row_id))
    elif seq == walk.seq + 1 and row["prev_hash"] != walk.hash and not walk.flagged:
        before = "the genesis value" if walk.seq == 0 else f"the hash of seq {walk.seq}"
        message = f"prev_hash is not {before}: events before it were removed or rewritten"
        found.append(Problem("removed", message, seq=seq, id=row_id))
    return found


def _written_at(
    row: Mapping[str, Any], window: Mapping[str, Mapping[str, Any]], memo: dict[str, int | None]
) -> int | None:
    """The seq a mismatching event was written at, found through the events it follows.

    An event moved elsewhere still hashes correctly at its old seq, which is one past the old seq
    of the event its ``prev_hash`` names (itself perhaps moved): follow those links back through
    the window to an event that is intact where it is, then check each step forward.
    """
    path: list[Mapping[str, Any]] = []
    current = row
    while current["hash"] not in memo and len(path) <= len(window):
        if current is not row and event_hash(current) == current["hash"]:
            memo[current["hash"]] = current["seq"]
            break
        path.append(current)
        predecessor = window.get(current["prev_hash"])
        if current["prev_hash"] == GENESIS or predecessor is None:
            break
        current = predecessor
    for event in reversed(path):
        before = 0 if event["prev_hash"] == GENESIS else memo.get(event["prev_hash"])
        seq = None if before is None else before + 1
        if seq is not None and event_hash({**event, "seq": seq}) != event["hash"]:
            seq = None
        memo[event["hash"]] = seq
    return memo.get(row["hash"])


def _check_head(head: tuple[int, str] | None, walk: _Walk) -> list[Problem]:
    """The head must name the last event: else the tail was cut off, or events added past it."""
    if head is None:
        if walk.seq == 0:
            return []
        return [Problem("head", "the chain head row is missing")]
    head_seq, head_hash = head
    if head_seq > walk.seq:
        message = (
            f"the chain head is at seq {head_seq} but the last event is seq {walk.seq}: "
            "the newest events were removed"
        )
        return [Problem("truncated", message, seq=walk.seq + 1, last_seq=head_seq)]
    if head_seq < walk.seq:
        message = (
            f"events past the chain head (seq {head_seq}): "
            "written outside the bridge, or the head was rewound"
        )
        return [Problem("head", message, seq=head_seq + 1, last_seq=walk.seq)]
    if head_hash != walk.hash:
        message = "its hash differs from the chain head's: the last event was rewritten"
        return [Problem("edited", message, seq=walk.seq, id=walk.id)]
    return []


def _unchained(connection: Connection) -> Iterator[Problem]:
    """Rows without a seq: inserted into the table outside the chain."""
    after = 0
    while True:
        ids = list(
            connection.execute(
                select(audit_events.c.id)
                .where(audit_events.c.seq.is_(None), audit_events.c.id > after)
                .order_by(audit_events.c.id)
                .limit(BATCH)
            ).scalars()
        )
        for row_id in ids:
            yield Problem("unchained", "not part of the chain (no seq)", id=row_id)
        if len(ids) < BATCH:
            return
        after = ids[-1]
