"""The durable queue of reconcile work.

A job names an entity ("make GitLab agree with the store for user U"), never a call. There is one
row per entity: enqueuing again bumps its ``generation`` instead of adding a row, so pending work
coalesces. A runner claims a job with a lease; a crashed runner's lease simply expires. A run that
finishes completes the job only if no newer write bumped the generation meanwhile.

A run covers every write committed before its claim (it reads the store after claiming), so the
row remembers the generation the latest run claimed (``claimed_generation``). A request whose
write a run in progress covers waits for that run (:meth:`JobQueue.await_turn`) rather than
claiming and running the same reconcile again: concurrent writes to one entity coalesce into
fewer runs. A request claims its own jobs in the transaction of its write
(:meth:`JobQueue.claim_inline`), and a run claims the follow-up jobs it queued in the transaction
that completes it, so neither costs a transaction of its own.

A job also remembers who caused it (``actor``, ``request_id``, ``source`` of the request context
that queued it), so the events the background worker writes name the SCIM request behind them.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any

from sqlalchemy import and_
from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update

from scim_bridge import clock
from scim_bridge import context
from scim_bridge.store.db import Database
from scim_bridge.store.db import current_transaction
from scim_bridge.store.db import open_transaction
from scim_bridge.store.prepared import Prepared
from scim_bridge.store.schema import jobs

PENDING = "pending"
PARKED = "parked"


@dataclass(frozen=True)
class Job:
    id: int
    key: str
    kind: str
    entity_id: str
    generation: int
    state: str
    attempts: int
    run_after: datetime
    last_error: str | None
    # The request that caused the work (the newest attributed one); None when nobody is known.
    actor: str | None = None
    request_id: str | None = None
    source: str | None = None

    @property
    def cause(self) -> context.RequestContext:
        """The request context the work runs under, so its audit events and jobs name the cause."""
        return context.RequestContext(self.request_id, self.actor, self.source)


@dataclass(frozen=True)
class Claim:
    """A request's (or a run's) claim on one job: the job itself, or the write to wait for.

    ``generation`` is the job's generation once the caller's write committed: a run that claimed
    it or a later one covers that write. ``job_id`` tells the row apart from a newer one with the
    same key (a completed job's row is deleted; the next write inserts a new one).
    """

    key: str
    job_id: int
    generation: int
    job: Job | None = None


@dataclass(frozen=True)
class Covering:
    """A run in progress that covers a waiting write: told apart from a later run of the same
    job by the generation it claimed and its lease."""

    generation: int
    lease_until: datetime | None


WAIT = "wait"  # a run in progress (or one that must run first) has the job: poll again
DONE = "done"  # a run covered the write, or nothing is left to run


@dataclass(frozen=True)
class QueueStats:
    """The queue at a glance, for monitoring: how much work waits, and since when the oldest."""

    pending: int
    due: int
    parked: int
    oldest_due_created_at: datetime | None
    oldest_due_run_after: datetime | None


def job_key(kind: str, entity_id: str) -> str:
    return f"{kind}:{entity_id}"


def _job(mapping: Mapping[Any, Any]) -> Job:
    """The job a row holds (``row._mapping``, or a row this transaction inserted)."""
    return Job(
        id=mapping["id"],
        key=mapping["key"],
        kind=mapping["kind"],
        entity_id=mapping["entity_id"],
        generation=mapping["generation"],
        state=mapping["state"],
        attempts=mapping["attempts"],
        run_after=clock.aware(mapping["run_after"]),
        last_error=mapping["last_error"],
        actor=mapping["actor"],
        request_id=mapping["request_id"],
        source=mapping["source"],
    )


def _leased(row: Mapping[str, Any], now: datetime) -> bool:
    """Whether a run holds the job now (a lease that expired holds nothing)."""
    until = clock.aware(row["lease_until"])
    return until is not None and until >= now


# The statements every SCIM write and every run makes: built once (building one costs more than
# SQLite's work on it). Bind names differ from the columns they set, as SQLAlchemy requires.
_LEASE = Prepared(
    update(jobs)
    .where(jobs.c.id == bindparam("job_id"))
    .values(
        lease_owner=bindparam("owner"),
        lease_until=bindparam("until"),
        claimed_generation=bindparam("covers"),
    )
)
_SELECT_BY_KEY = select(jobs).where(jobs.c.key == bindparam("job_key"))
_BY_KEY = Prepared(_SELECT_BY_KEY)
_BY_KEY_LOCKED = Prepared(_SELECT_BY_KEY.with_for_update())
_CAUSE_COLUMNS = ("actor", "request_id", "source")
# A new write to a queued entity: a new generation, due now; with its cause when one is known.
_BUMP = (
    update(jobs)
    .where(jobs.c.key == bindparam("job_key"))
    .values(
        generation=jobs.c.generation + 1,
        state=PENDING,
        run_after=bindparam("now"),
        attempts=0,
        updated_at=bindparam("now"),
    )
)
_BUMP_WITH_CAUSE = Prepared(
    _BUMP.values({column: bindparam(f"cause_{column}") for column in _CAUSE_COLUMNS})
)
_BUMP_ALONE = Prepared(_BUMP)
_INSERT = insert(jobs)
_DONE = Prepared(
    delete(jobs).where(jobs.c.id == bindparam("job_id"), jobs.c.generation == bindparam("gen"))
)


def _lease(row: Mapping[Any, Any], owner: str, until: datetime) -> Job:
    """Lease one job row, selected (or inserted) in the current write transaction, to
    ``owner``: the run that claims it covers the generation the row holds now."""
    _LEASE.rowcount(
        current_transaction().connection,
        {"job_id": row["id"], "owner": owner, "until": until, "covers": row["generation"]},
    )
    return _job(row)


def _cause() -> dict[str, str | None]:
    """The columns naming who queues work now, or nothing when nobody is known.

    Within a job's run the runner binds the job's own cause, so follow-up work inherits it. A
    context without an actor (a CLI command, the worker's start-up) is not a cause: it must not
    erase the name of the request that queued the work still pending in this row.
    """
    current = context.current()
    if current.actor is None:
        return {}
    return {"actor": current.actor, "request_id": current.request_id, "source": current.source}


def enqueue(kind: str, entity_id: str, *, new: bool = False) -> str:
    """Ask for a reconcile of one entity, inside the writer's transaction; returns the job key.

    A parked job is revived: a new write is a new chance for it to succeed. Asking twice in one
    transaction writes once: the generation a run compares against is bumped by the commit. The
    current request context is recorded as the job's cause; the newest attributed cause wins.
    ``new`` says the entity was created in this transaction (a fresh id): no job can be queued
    for it yet, so there is none to bump.
    """
    tx = current_transaction()
    key = job_key(kind, entity_id)
    if key in tx.job_keys:
        return key
    now = clock.now()
    cause = _cause()
    bumped = 0
    if not new:
        bump = _BUMP_WITH_CAUSE if cause else _BUMP_ALONE
        bumped = bump.rowcount(
            tx.connection,
            {"job_key": key, "now": now, **{f"cause_{k}": v for k, v in cause.items()}},
        )
    inserted: dict[str, Any] | None = None
    if not bumped:
        inserted = {
            "key": key,
            "kind": kind,
            "entity_id": entity_id,
            "generation": 1,
            "state": PENDING,
            "attempts": 0,
            "run_after": now,
            "created_at": now,
            "updated_at": now,
            "last_error": None,
            **dict.fromkeys(_CAUSE_COLUMNS),
            **cause,
        }
        primary_key = tx.connection.execute(_INSERT, inserted).inserted_primary_key
        assert primary_key is not None  # a single-row insert always has one
        inserted["id"] = primary_key[0]
    tx.job_keys[key] = inserted
    return key


class JobQueue:
    """Claiming, finishing and inspecting jobs, each in a short transaction of its own, or in the
    caller's when one is open (a run completes its job with its final writes)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _claimable(self, now: datetime):  # type: ignore[no-untyped-def]
        return and_(
            jobs.c.state == PENDING,
            or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < now),
        )

    def claim(self, key: str, owner: str, lease_seconds: float) -> Job | None:
        """Claim one job by key whatever its schedule (an inline run), or None when it is leased."""
        now = clock.now()
        with self.db.transaction(write=True) as tx:
            statement = select(jobs).where(jobs.c.key == key, self._claimable(now))
            if not self.db.is_sqlite:
                statement = statement.with_for_update(skip_locked=True)
            row = tx.connection.execute(statement).first()
            if row is None:
                return None
            return _lease(row._mapping, owner, now + timedelta(seconds=lease_seconds))

    def claim_inline(self, keys: list[str], owner: str, lease_seconds: float) -> list[Claim]:
        """Claim the jobs of a write just made, in the writer's transaction (or one of its own).

        Each key gets a :class:`Claim`: with its job when it was free, else with the generation a
        later run must cover (see :meth:`await_turn`). Keys without a row are left out.
        """
        now = clock.now()
        claims: list[Claim] = []
        with self.db.transaction(write=True) as tx:
            # On PostgreSQL FOR UPDATE: the writer holds the row already.
            statement = _BY_KEY if self.db.is_sqlite else _BY_KEY_LOCKED
            for key in dict.fromkeys(keys):
                inserted = tx.job_keys.get(key)
                if inserted is not None:  # this transaction's own row: pending, leased to no one
                    row: Mapping[Any, Any] = inserted
                else:
                    found = statement.first(tx.connection, {"job_key": key})
                    if found is None:
                        continue
                    if found["state"] != PENDING or _leased(found, now):
                        claims.append(Claim(key, found["id"], found["generation"], None))
                        continue
                    row = found
                job = _lease(row, owner, now + timedelta(seconds=lease_seconds))
                claims.append(Claim(key, row["id"], row["generation"], job))
        return claims

    def await_turn(
        self, claim: Claim, owner: str, lease_seconds: float, covering: Covering | None = None
    ) -> Job | Covering | str:
        """One look at a job whose write someone else's run holds: :data:`DONE` when a run
        covered the write (or it was parked), a :class:`Covering` while a run that covers it is
        in progress, :data:`WAIT` while a run that does not is, or the job, claimed, when no run
        covers the write and none holds the job.

        ``covering`` is what the previous look returned: once that run has ended the write is
        covered, even if another run has the job by now (a burst of writes to one group keeps
        it busy run after run; the request must not wait for them all).

        A read transaction, and a write one only to claim.
        """
        now = clock.now()
        with self.db.transaction(write=False) as tx:
            row = _BY_KEY.first(tx.connection, {"job_key": claim.key})
        if row is None or row["id"] != claim.job_id or row["state"] != PENDING:
            return DONE  # completed by a run that claimed it after the write; or parked
        claimed = row["claimed_generation"]
        covered = claimed is not None and claimed >= claim.generation
        if _leased(row, now):
            if not covered:
                return WAIT
            run = Covering(claimed, clock.aware(row["lease_until"]))
            if covering is not None and run != covering:
                return DONE  # the run that covered the write ended; this one is another
            return run
        if covered:
            # A run covered the write and ended: completed, or released for a newer write (whose
            # own request runs it) or for a retry (the worker's).
            return DONE
        return self.claim(claim.key, owner, lease_seconds) or WAIT

    def release(self, job: Job) -> None:
        """Give back a claimed job that will not run now: due at once, for the worker."""
        now = clock.now()
        with self.db.transaction(write=True) as tx:
            tx.connection.execute(
                update(jobs)
                .where(jobs.c.id == job.id)
                .values(lease_owner=None, lease_until=None, run_after=now, updated_at=now)
            )

    def claim_due(self, owner: str, lease_seconds: float, limit: int = 10) -> list[Job]:
        """Claim the jobs whose time has come, oldest first; several workers never get the same one.

        Called on its own, it looks at the queue in a read transaction first: a worker polling
        an empty queue takes no write lock (on SQLite, the one lock every SCIM write needs) and
        writes nothing. Within a write transaction (a run's end claiming the worker's next job)
        the lock is held already, and the claim's own select is the look.
        """
        now = clock.now()
        if open_transaction() is None:
            with self.db.transaction(write=False) as tx:
                probe = select(jobs.c.id).where(self._claimable(now), jobs.c.run_after <= now)
                if tx.connection.execute(probe.limit(1)).first() is None:
                    return []
        with self.db.transaction(write=True) as tx:
            statement = (
                select(jobs)
                .where(self._claimable(now), jobs.c.run_after <= now)
                .order_by(jobs.c.run_after, jobs.c.id)
                .limit(limit)
            )
            if not self.db.is_sqlite:
                statement = statement.with_for_update(skip_locked=True)
            rows = tx.connection.execute(statement).all()
            if rows:
                tx.connection.execute(
                    update(jobs)
                    .where(jobs.c.id.in_([row.id for row in rows]))
                    .values(
                        lease_owner=owner,
                        lease_until=now + timedelta(seconds=lease_seconds),
                        # The rows are locked (FOR UPDATE; SQLite's writer lock): as selected.
                        claimed_generation=jobs.c.generation,
                    )
                )
            return [_job(row._mapping) for row in rows]

    def seconds_until_due(self) -> float | None:
        """How long until the earliest job no one holds is due (0: one is); None: none waits.

        A worker that found nothing due sleeps until then when that comes before its next poll:
        a retry runs as its backoff ends, not up to a poll interval later.
        """
        now = clock.now()
        with self.db.transaction(write=False) as tx:
            earliest: datetime | None = tx.connection.execute(
                select(func.min(jobs.c.run_after)).where(self._claimable(now))
            ).scalar()
        if earliest is None:
            return None
        waited: float = (clock.aware(earliest) - now).total_seconds()
        return max(waited, 0.0)

    def complete(self, job: Job) -> bool:
        """Finish a job; if a newer write came meanwhile, release it to run again instead."""
        with self.db.transaction(write=True) as tx:
            deleted = _DONE.rowcount(tx.connection, {"job_id": job.id, "gen": job.generation})
            if not deleted:
                tx.connection.execute(
                    update(jobs)
                    .where(jobs.c.id == job.id)
                    .values(lease_owner=None, lease_until=None, run_after=clock.now())
                )
            return bool(deleted)

    def retry_later(
        self, job: Job, delay_seconds: float, error: str, *, attempt: bool = True
    ) -> None:
        """Release a job to run again after a delay, remembering why it failed.

        ``attempt`` False is a wait on purpose (pacing): it does not bring the job nearer parking.
        """
        now = clock.now()
        with self.db.transaction(write=True) as tx:
            tx.connection.execute(
                update(jobs)
                .where(jobs.c.id == job.id)
                .values(
                    attempts=jobs.c.attempts + (1 if attempt else 0),
                    run_after=now + timedelta(seconds=delay_seconds),
                    lease_owner=None,
                    lease_until=None,
                    last_error=error,
                    updated_at=now,
                )
            )

    def park(self, job: Job, error: str) -> None:
        """Stop retrying a job that cannot succeed as things are; it stays visible until retried."""
        now = clock.now()
        with self.db.transaction(write=True) as tx:
            tx.connection.execute(
                update(jobs)
                .where(jobs.c.id == job.id, jobs.c.generation == job.generation)
                .values(
                    state=PARKED,
                    attempts=jobs.c.attempts + 1,
                    lease_owner=None,
                    lease_until=None,
                    last_error=error,
                    updated_at=now,
                )
            )
            # A newer write arrived during the run: it deserves a fresh attempt, not parking.
            tx.connection.execute(
                update(jobs)
                .where(jobs.c.id == job.id, jobs.c.generation != job.generation)
                .values(lease_owner=None, lease_until=None, run_after=now)
            )

    def retry_parked(self, key: str | None = None) -> int:
        """Put parked jobs (one, or all) back in the queue; returns how many."""
        now = clock.now()
        with self.db.transaction(write=True) as tx:
            statement = update(jobs).where(jobs.c.state == PARKED)
            if key is not None:
                statement = statement.where(jobs.c.key == key)
            return tx.connection.execute(
                statement.values(state=PENDING, attempts=0, run_after=now, updated_at=now)
            ).rowcount

    def list(self) -> list[Job]:
        with self.db.transaction(write=False) as tx:
            rows = tx.connection.execute(select(jobs).order_by(jobs.c.id)).all()
        return [_job(row._mapping) for row in rows]

    def get(self, key: str) -> Job | None:
        with self.db.transaction(write=False) as tx:
            row = tx.connection.execute(select(jobs).where(jobs.c.key == key)).first()
        return _job(row._mapping) if row is not None else None

    def stats(self) -> QueueStats:
        """Counts and the oldest due pending job, in two cheap queries (scraped by /metrics)."""
        now = clock.now()
        due = and_(jobs.c.state == PENDING, jobs.c.run_after <= now)
        with self.db.transaction(write=False) as tx:
            counts: dict[str, int] = dict(
                tx.connection.execute(
                    select(jobs.c.state, func.count()).group_by(jobs.c.state)
                ).all()
            )
            oldest = select(func.count(), func.min(jobs.c.created_at), func.min(jobs.c.run_after))
            row = tx.connection.execute(oldest.where(due)).one()
        return QueueStats(
            pending=int(counts.get(PENDING, 0)),
            due=int(row[0]),
            parked=int(counts.get(PARKED, 0)),
            oldest_due_created_at=clock.aware(row[1]),
            oldest_due_run_after=clock.aware(row[2]),
        )

    def pending_among(self, keys: Iterable[str]) -> set[str]:
        """Which of these jobs wait to run, or to run again (a drift repair already under way)."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return set()
        with self.db.transaction(write=False) as tx:
            rows = tx.connection.execute(
                select(jobs.c.key).where(jobs.c.key.in_(wanted), jobs.c.state == PENDING)
            )
            return {row.key for row in rows}

    def pending_count(self) -> int:
        with self.db.transaction(write=False) as tx:
            return int(
                tx.connection.execute(
                    select(func.count()).select_from(jobs).where(jobs.c.state == PENDING)
                ).scalar_one()
            )
