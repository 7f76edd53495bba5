"""Running reconcile jobs: inline for the request that wrote them, then by the background worker.

Inline runs give Provision-on-demand real results and turn permanent GitLab refusals into SCIM
errors; they stop at the request's deadline. Whatever is left (GitLab down, slow, rate limiting) the
worker retries with exponential backoff and jitter, honouring ``Retry-After``, and parks a job that
keeps failing so it is visible instead of retried forever.

Every run happens under the context of the SCIM request that caused it: inline, the request's own;
in the background, the one the job recorded when it was queued (``Job.cause``). So the audit events
a run writes (its reconcile events, its GitLab calls, ``job.parked``) and the jobs it queues in turn
name the request's actor and id, however long after the request the work is done.

Transactions, and why they are few (issue 13). A request claims its own jobs in the transaction of
its write (``JobQueue.claim_inline``), so the write, its audit event, its jobs and their claim
commit together. A run then keeps its bookkeeping in a :class:`~.journal.Journal`: the audit
events of the GitLab calls it made and of what it did, and the reconciler's final writes (the
user's link, the groups its new account must join, a SCIM group's new mapping and marks, the
memberships settled). They are written in the one transaction that ends the run, with the job's
completion (or retry, or parking), and, inline, with the claim of the follow-up jobs the run
queued; in the background, with the claim of the worker's next job. A POST /Users thus costs
three write transactions: the write, the account's ``create_started_at``, the end of the run; a
PATCH adding a member to a mapped group four: the write, the end of the SCIM group's run, the
membership written ahead, the end of the GitLab group's run.

Crash safety. Two writes stay on their own, durable before the GitLab call they precede:

- ``links.mark_create_started`` before ``POST /users``: if the bridge dies after GitLab created the
  account but before the run ended, the rerun finds the account by its identity (or email) and
  recognises it as its own create by ``create_started_at`` (``account_finder.py``), so it links it
  as ``created``, never adopts it nor creates a second one.
- a membership the bridge is about to make is written ahead as managed (``memberships.py``) before
  GitLab is asked, so a crash after GitLab's answer cannot turn it into one "found in place".

A crash between a run's GitLab calls and the transaction that ends it loses only that
transaction: the kept audit events and the final writes, and the job stays claimed. Nothing
acknowledged to Entra is lost: the SCIM write and its job committed before any GitLab call. When
the lease expires the worker claims the job again and reruns the reconcile, which is
level-triggered: it reads the store and GitLab afresh and makes only the calls that still close a
difference. What the lost run did is found already applied (an account that exists, a membership
at its level), so the rerun saves the link and settles the marks the lost run could not, and its
audit events record what it did itself, calls made and changes found in place, never a change it
did not make. The audit trail therefore tells the truth about every committed run; the calls of
a run lost in a crash are missing from it, and GitLab's own logs hold them. The audit chain is
unaffected: a rolled-back transaction adds no event, and every committed one is chained by
``store/audit.py`` as before.

Concurrent writes coalesce: a run covers every write committed before its claim (it reads the
store after claiming). A request whose job another run holds waits for it (``JobQueue.await_turn``)
instead of running the same reconcile again, and claims only when no run covers its write.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from scim_bridge import context
from scim_bridge.provisioning.journal import Journal
from scim_bridge.provisioning.reconciling import Deadline
from scim_bridge.provisioning.reconciling import Outcome
from scim_bridge.provisioning.reconciling import Reconciler
from scim_bridge.provisioning.reconciling import Rejected
from scim_bridge.provisioning.reconciling import Retry
from scim_bridge.provisioning.worker_pool import WorkerPool
from scim_bridge.settings import ReconcileSettings
from scim_bridge.store.jobs import DONE
from scim_bridge.store.jobs import Claim
from scim_bridge.store.jobs import Covering
from scim_bridge.store.jobs import Job
from scim_bridge.store.jobs import JobQueue

log = logging.getLogger(__name__)

WORKER_LEASE_SECONDS = 300.0
INLINE_LEASE_MARGIN_SECONDS = 5.0
POLL_SECONDS = 0.05

# How a run ended: its outcome, or why it stopped.
Result = Outcome | Rejected | Retry


def runner_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Ending:
    """What the transaction that ends a run claimed: inline, the follow-ups; in the background,
    the worker's next job."""

    claims: list[Claim]
    next_job: Job | None = None


@dataclass(frozen=True)
class InlineWork:
    """A request's jobs, claimed (or waited for) in its write's transaction, and its deadline."""

    deadline: Deadline
    claims: list[Claim]


class JobRunner:
    def __init__(
        self,
        queue: JobQueue,
        reconcilers: dict[str, Reconciler],
        settings: ReconcileSettings,
        audit: Callable[[str, str | None, dict[str, object] | None], None],
        owner: str | None = None,
    ) -> None:
        self.queue = queue
        self.reconcilers = reconcilers
        self.settings = settings
        self.audit = audit
        self.owner = owner or runner_identity()
        self._random = random.Random()

    def backoff(self, attempts: int, retry_after: float | None) -> float:
        """Exponential with full jitter, at least what GitLab asked for."""
        ceiling = min(
            self.settings.backoff_max_seconds, self.settings.backoff_base_seconds * 2**attempts
        )
        delay = self._random.uniform(ceiling / 2, ceiling)
        return max(delay, retry_after or 0.0)

    def _reconcile(self, job: Job, deadline: Deadline) -> Outcome:
        return self.reconcilers[job.kind].reconcile(job.entity_id, deadline)

    # -- Inline ---------------------------------------------------------------

    def claim_inline(self, job_keys: list[str], seconds: float) -> InlineWork:
        """Claim a write's jobs, in the write's transaction when one is open; the deadline
        starts now."""
        deadline = Deadline.after(seconds)
        return InlineWork(deadline, self.queue.claim_inline(job_keys, self.owner, _lease(deadline)))

    def run_inline(self, job_keys: list[str], seconds: float) -> None:
        """Claim and run these jobs (see :meth:`run_claimed`)."""
        self.run_claimed(self.claim_inline(job_keys, seconds))

    def run_claimed(self, work: InlineWork) -> None:
        """Run the request's jobs, and the jobs they queue, until done or the deadline.

        A job another run holds is waited for: when that run covers the request's write, the
        request does not run it again. A job rejected in a way the client must hear of is
        completed, not parked, and raises :class:`Rejected`: the caller tells Entra and undoes
        the write. A job claimed but not run (the deadline passed) is given back to the worker.
        """
        deadline = work.deadline
        pending = deque(work.claims)
        try:
            while pending:
                claim = pending.popleft()
                job = claim.job
                if job is None:
                    job = self._await(claim, deadline)
                    if job is None:
                        continue
                if _passed(deadline):
                    self.queue.release(job)
                    continue
                pending.extend(self._run(job, deadline, inline=True).claims)
        finally:
            for claim in pending:
                if claim.job is not None:
                    self._give_back(claim.job)

    def _await(self, claim: Claim, deadline: Deadline) -> Job | None:
        """Wait while another run holds the job; None when a run covered the write (or at the
        deadline), the job when this request must run it."""
        covering: Covering | None = None
        while not _passed(deadline):
            turn = self.queue.await_turn(claim, self.owner, _lease(deadline), covering)
            if isinstance(turn, Job):
                return turn
            if turn == DONE or (deadline.remaining() or 0.0) <= POLL_SECONDS:
                return None
            covering = turn if isinstance(turn, Covering) else None
            time.sleep(POLL_SECONDS)
        return None

    def _give_back(self, job: Job) -> None:
        try:
            self.queue.release(job)
        except Exception:  # its lease expires: the worker gets it then
            log.exception("could not give back job %s", job.key)

    # -- Background -------------------------------------------------------------

    def run_due(self, limit: int = 10) -> int:
        """Run the jobs whose time has come; returns how many ran."""
        due = self.queue.claim_due(self.owner, WORKER_LEASE_SECONDS, limit)
        for job in due:
            self.run_background(job)
        return len(due)

    def run_background(
        self, job: Job, *, next_lease: Callable[[], float | None] | None = None
    ) -> Job | None:
        """Run one claimed job as the request that caused it: its events and follow-ups carry
        that cause. Follow-up jobs are left to the worker.

        With ``next_lease`` (asked as the run ends: a lease, or None for no next job), the
        transaction that ends the run also claims the next due job for this worker and returns
        it: a backlog costs one write transaction per job fewer than claiming apart (on SQLite,
        a turn at the one writer lock).
        """
        with context.bound(job.cause):
            return self._run(job, Deadline(), inline=False, next_lease=next_lease).next_job

    # -- One run ----------------------------------------------------------------

    def _run(
        self,
        job: Job,
        deadline: Deadline,
        *,
        inline: bool,
        next_lease: Callable[[], float | None] | None = None,
    ) -> Ending:
        """Reconcile, then end the run in one transaction; inline, with the follow-ups'
        claims, in the background, with the claim of the worker's next job if asked."""
        journal = Journal()
        result: Result
        with journal.kept():
            try:
                result = self._reconcile(job, deadline)
            except (Rejected, Retry) as stop:
                result = stop
            except Exception as error:  # a bug must not lose the work: the worker retries it
                log.exception("reconcile of %s failed", job.key)
                result = Retry(repr(error))
        return self._end(job, journal, result, deadline if inline else None, next_lease)

    def _end(
        self,
        job: Job,
        journal: Journal,
        result: Result,
        deadline: Deadline | None,
        next_lease: Callable[[], float | None] | None,
    ) -> Ending:
        """Write the run's events and final writes with its job's end. A final write refused
        (``Rejected``) or failing ends the run without the final writes, as refused or to retry."""

        def commit(result: Result, *, finals: bool) -> Ending:
            with self.queue.db.transaction(write=True):
                journal.write(finals=finals)
                claims = self._settle(job, result, deadline)
                lease = next_lease() if next_lease is not None else None
                if lease is None:
                    return Ending(claims)
                following = self.queue.claim_due(self.owner, lease, 1)
                return Ending(claims, following[0] if following else None)

        try:
            ending = commit(result, finals=True)
        except Rejected as refused:
            result = refused
            ending = commit(refused, finals=False)
        except Exception as error:
            log.exception("ending the run of %s failed", job.key)
            result = Retry(repr(error))
            ending = commit(result, finals=False)
        if isinstance(result, Rejected) and result.tell_client and deadline is not None:
            raise result
        return ending

    def _settle(self, job: Job, result: Result, deadline: Deadline | None) -> list[Claim]:
        """The job's end as its run's result says; inline, the follow-ups' claims."""
        if isinstance(result, Rejected):
            if result.tell_client and deadline is not None:
                self.queue.complete(job)
            else:
                self._park(job, result.detail)
            return []
        if isinstance(result, Retry):
            self._retry(job, result)
            return []
        self.queue.complete(job)
        if deadline is None or not result.follow_up:
            return []
        # Queued by this run's final writes, in this transaction: claimed with them.
        return self.queue.claim_inline(result.follow_up, self.owner, _lease(deadline))

    def _park(self, job: Job, reason: str) -> None:
        self.queue.park(job, reason)
        self.audit("job.parked", job.key, {"reason": reason})

    def _retry(self, job: Job, retry: Retry) -> None:
        """Run the job again later, with backoff; park it after ``max_attempts`` failures.

        Each failure is recorded: in the log here, on the job (`scim-bridge jobs`), and in the
        GitLab call counters of /metrics. A paced wait is no failure and never parks the job.
        """
        attempt = job.attempts + 1
        if retry.paced:
            log.info("job %s waits: %s", job.key, retry.detail)
        else:
            log.warning("job %s failed (attempt %d): %s", job.key, attempt, retry.detail)
        if retry.paced:
            self.queue.retry_later(job, retry.retry_after or 0.0, retry.detail, attempt=False)
        elif attempt >= self.settings.max_attempts:
            self._park(job, f"gave up after {attempt} attempts: {retry.detail}")
        else:
            self.queue.retry_later(job, self.backoff(job.attempts, retry.retry_after), retry.detail)

    def run_forever(self, stop: threading.Event) -> None:
        """The background worker: ``worker_concurrency`` jobs at once until ``stop`` is set."""
        pool = WorkerPool(
            self,
            self.settings.worker_concurrency,
            poll_seconds=self.settings.worker_poll_seconds,
            lease_seconds=WORKER_LEASE_SECONDS,
        )
        pool.run(stop)


def _lease(deadline: Deadline) -> float:
    """An inline claim's lease: the request's remaining time, and a margin."""
    return max(deadline.remaining() or 0.0, 0.0) + INLINE_LEASE_MARGIN_SECONDS


def _passed(deadline: Deadline) -> bool:
    remaining = deadline.remaining()
    return remaining is not None and remaining <= 0
