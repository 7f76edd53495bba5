"""Running reconcile jobs: inline for the request that wrote them, then by the background worker.

Inline runs give Provision-on-demand real results and turn permanent GitLab refusals into SCIM
errors; they stop at the request's deadline. Whatever is left (GitLab down, slow, rate limiting) the
worker retries with exponential backoff and jitter, honouring ``Retry-After``, and parks a job that
keeps failing so it is visible instead of retried forever.

Every run happens under the context of the SCIM request that caused it: inline, the request's own;
in the background, the one the job recorded when it was queued (``Job.cause``). So the audit events
a run writes (its reconcile events, its GitLab calls, ``job.parked``) and the jobs it queues in turn
name the request's actor and id, however long after the request the work is done.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable

from scim_bridge import context
from scim_bridge.provisioning.reconciling import Deadline
from scim_bridge.provisioning.reconciling import Outcome
from scim_bridge.provisioning.reconciling import Reconciler
from scim_bridge.provisioning.reconciling import Rejected
from scim_bridge.provisioning.reconciling import Retry
from scim_bridge.provisioning.worker_pool import WorkerPool
from scim_bridge.settings import ReconcileSettings
from scim_bridge.store.jobs import Job
from scim_bridge.store.jobs import JobQueue

log = logging.getLogger(__name__)

WORKER_LEASE_SECONDS = 300.0
INLINE_LEASE_MARGIN_SECONDS = 5.0
POLL_SECONDS = 0.05


def runner_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


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

    def run_inline(self, job_keys: list[str], seconds: float) -> None:
        """Run the request's jobs, and the jobs they queue, until done or the deadline.

        A job rejected in a way the client must hear of is completed, not parked, and raises
        :class:`Rejected`: the caller tells Entra and undoes the write.
        """
        deadline = Deadline.after(seconds)
        pending = list(job_keys)
        seen: set[str] = set()
        while pending:
            key = pending.pop(0)
            remaining = deadline.remaining()
            if key in seen or remaining is None or remaining <= 0:
                continue
            seen.add(key)
            job = self._claim_inline(key, deadline)
            if job is None:
                continue
            try:
                outcome = self._reconcile(job, deadline)
            except Rejected as rejection:
                if rejection.tell_client:
                    self.queue.complete(job)
                    raise
                self._park(job, rejection.detail)
            except Retry as retry:
                self._retry(job, retry)
            except Exception as error:  # a bug must not lose the work: the worker retries it
                log.exception("reconcile of %s failed", key)
                self._retry(job, Retry(repr(error)))
            else:
                self.queue.complete(job)
                pending.extend(outcome.follow_up)

    def _claim_inline(self, key: str, deadline: Deadline) -> Job | None:
        """Claim the job; while another runner holds it, wait for it until the deadline."""
        while True:
            remaining = deadline.remaining() or 0.0
            job = self.queue.claim(key, self.owner, remaining + INLINE_LEASE_MARGIN_SECONDS)
            if job is not None:
                return job
            if self.queue.get(key) is None or remaining <= POLL_SECONDS:
                return None
            time.sleep(POLL_SECONDS)

    # -- Background -------------------------------------------------------------

    def run_due(self, limit: int = 10) -> int:
        """Run the jobs whose time has come; returns how many ran."""
        due = self.queue.claim_due(self.owner, WORKER_LEASE_SECONDS, limit)
        for job in due:
            self.run_background(job)
        return len(due)

    def run_background(self, job: Job) -> None:
        """Run one job as the request that caused it: its events and follow-ups carry that cause."""
        with context.bound(job.cause):
            try:
                self._reconcile(job, Deadline())
            except Rejected as rejection:
                self._park(job, rejection.detail)
            except Retry as retry:
                self._retry(job, retry)
            except Exception as error:
                log.exception("reconcile of %s failed", job.key)
                self._retry(job, Retry(repr(error)))
            else:
                self.queue.complete(job)

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
