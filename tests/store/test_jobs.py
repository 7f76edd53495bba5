"""The job queue: coalescing, exclusive claims, leases, retries and parking."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from scim_bridge import clock
from scim_bridge import context
from scim_bridge.context import RequestContext
from scim_bridge.store import jobs as job_module
from scim_bridge.store.db import Database
from scim_bridge.store.jobs import JobQueue
from scim_bridge.store.schema import jobs


def enqueue(db: Database, entity: str = "u1") -> str:
    with db.transaction(write=True):
        return job_module.enqueue("user", entity)


def test_enqueue_coalesces_per_entity(db: Database) -> None:
    queue = JobQueue(db)
    for _ in range(3):
        enqueue(db)
    enqueue(db, "u2")
    listed = queue.list()
    assert [job.key for job in listed] == ["user:u1", "user:u2"]
    assert listed[0].generation == 3


def test_enqueue_rolls_back_with_the_write(db: Database) -> None:
    with pytest.raises(RuntimeError), db.transaction(write=True):
        job_module.enqueue("user", "u1")
        raise RuntimeError("the resource write failed")
    assert JobQueue(db).list() == []


def test_a_claimed_job_is_not_claimed_twice_until_its_lease_expires(db: Database) -> None:
    queue = JobQueue(db)
    enqueue(db)
    first = queue.claim_due("worker-a", lease_seconds=60)
    assert [job.key for job in first] == ["user:u1"]
    assert queue.claim_due("worker-b", lease_seconds=60) == []
    assert queue.claim("user:u1", "inline", lease_seconds=60) is None
    with db.transaction(write=True) as tx:
        tx.connection.execute(update(jobs).values(lease_until=clock.now() - timedelta(seconds=1)))
    assert [job.key for job in queue.claim_due("worker-b", lease_seconds=60)] == ["user:u1"]


def test_complete_keeps_a_job_that_a_newer_write_bumped(db: Database) -> None:
    queue = JobQueue(db)
    enqueue(db)
    (job,) = queue.claim_due("w", lease_seconds=60)
    enqueue(db)  # the user changed again while the job ran
    assert queue.complete(job) is False
    (again,) = queue.claim_due("w", lease_seconds=60)
    assert again.generation == job.generation + 1
    assert queue.complete(again) is True
    assert queue.list() == []


def test_retry_later_delays_and_counts_attempts(db: Database) -> None:
    queue = JobQueue(db)
    enqueue(db)
    (job,) = queue.claim_due("w", lease_seconds=60)
    queue.retry_later(job, 3600, "GitLab: 503")
    assert queue.claim_due("w", lease_seconds=60) == []
    (waiting,) = queue.list()
    assert waiting.attempts == 1 and waiting.last_error == "GitLab: 503"
    assert waiting.run_after > clock.now() + timedelta(minutes=59)


def test_parked_jobs_are_kept_visible_and_can_be_retried(db: Database) -> None:
    queue = JobQueue(db)
    enqueue(db)
    (job,) = queue.claim_due("w", lease_seconds=60)
    queue.park(job, "GitLab refused: email taken")
    assert queue.claim_due("w", lease_seconds=60) == []
    (parked,) = queue.list()
    assert parked.state == "parked"
    assert queue.retry_parked() == 1
    assert [j.key for j in queue.claim_due("w", lease_seconds=60)] == ["user:u1"]


def test_a_new_write_revives_a_parked_job(db: Database) -> None:
    queue = JobQueue(db)
    enqueue(db)
    (job,) = queue.claim_due("w", lease_seconds=60)
    queue.park(job, "refused")
    enqueue(db)
    (revived,) = queue.list()
    assert revived.state == "pending" and revived.attempts == 0


ENTRA = RequestContext(request_id="req-1", actor="token:entra", source="10.0.0.5")


def test_a_job_names_the_request_that_queued_it(db: Database) -> None:
    with context.bound(ENTRA):
        enqueue(db)
    (job,) = JobQueue(db).list()
    assert (job.actor, job.request_id, job.source) == ("token:entra", "req-1", "10.0.0.5")
    assert job.cause == ENTRA


def test_the_newest_request_to_queue_a_job_is_its_cause(db: Database) -> None:
    later = RequestContext(request_id="req-2", actor="client:entra", source="10.0.0.6")
    with context.bound(ENTRA):
        enqueue(db)
    with context.bound(later):
        enqueue(db)
    (job,) = JobQueue(db).list()
    assert job.cause == later


def test_work_queued_without_an_actor_keeps_the_cause_it_had(db: Database) -> None:
    """A command or the worker's start-up names nobody: it must not erase who asked first."""
    enqueue(db, "u2")  # nobody at all
    with context.bound(ENTRA):
        enqueue(db)
    with context.bound(RequestContext(request_id="cli-run")):
        enqueue(db)
    enqueue(db)
    queue = JobQueue(db)
    assert queue.get("user:u1").cause == ENTRA  # type: ignore[union-attr]
    assert queue.get("user:u2").cause == RequestContext()  # type: ignore[union-attr]


def test_a_claimed_job_carries_its_cause(db: Database) -> None:
    with context.bound(ENTRA):
        enqueue(db, "u1")
        enqueue(db, "u2")
    queue = JobQueue(db)
    inline = queue.claim("user:u1", "inline", lease_seconds=60)
    assert inline is not None and inline.cause == ENTRA
    (background,) = queue.claim_due("worker", lease_seconds=60)
    assert background.key == "user:u2" and background.cause == ENTRA


def claim_after_write(db: Database, queue: JobQueue, entity: str = "u1") -> job_module.Claim:
    """A request's write and its inline claim, in one transaction, as the SCIM write makes them."""
    with db.transaction(write=True):
        key = job_module.enqueue("user", entity)
        (claim,) = queue.claim_inline([key], "request", lease_seconds=60)
    return claim


def test_a_waiting_write_waits_for_the_run_that_covers_it_not_for_the_runs_after(
    db: Database,
) -> None:
    """A burst of writes keeps one job busy run after run: a request is done when the run that
    covered its write ends, whoever holds the job by then."""
    queue = JobQueue(db)
    running = claim_after_write(db, queue).job  # the first request runs the job
    assert running is not None
    waiting = claim_after_write(db, queue)  # a second write, while that run is in progress
    assert waiting.job is None
    assert queue.await_turn(waiting, "request-2", 60) == job_module.WAIT  # not covered by it
    assert queue.complete(running) is False  # the second write is still to apply: released
    (covering,) = queue.claim_due("worker", lease_seconds=60)  # another runner takes it up
    seen = queue.await_turn(waiting, "request-2", 60)
    assert isinstance(seen, job_module.Covering), "the run in progress covers the write"
    assert queue.await_turn(waiting, "request-2", 60, seen) == seen  # still the same run
    claim_after_write(db, queue)  # a third write during the covering run
    assert queue.complete(covering) is False
    (after,) = queue.claim_due("worker", lease_seconds=60)  # the run after it starts at once
    assert queue.await_turn(waiting, "request-2", 60, seen) == job_module.DONE
    assert queue.await_turn(waiting, "request-2", 60) != job_module.DONE, (
        "without having seen the covering run, a run in progress is waited for"
    )
    assert after.generation == 3


def test_pending_among_names_the_jobs_still_to_run_and_not_parked_ones(db: Database) -> None:
    queue = JobQueue(db)
    waiting, parked = enqueue(db, "u1"), enqueue(db, "u2")
    claimed = {job.key: job for job in queue.claim_due("w", lease_seconds=60)}
    queue.park(claimed[parked], "refused")
    assert queue.pending_among([waiting, parked, "user:never", waiting]) == {waiting}
    assert queue.pending_among([]) == set()
