"""The background worker: N reconcile jobs at once, never two for one entity.

Modelled on Kubernetes' controller-runtime: the durable queue (``store/jobs.py``) dedups by key
(one row per entity, pending work coalesces), a job's lease keeps every other worker, in this
process or another, off that entity while it runs, and each job retries with its own backoff
(``JobRunner``), under the GitLab-wide pause the transport keeps after a 429.

Jobs are claimed only for free workers: a claimed job waiting for a thread would hold a lease for
nothing, out of reach of the other instances' workers. A worker that ends a job claims its next
one in the same transaction (``JobRunner.run_background(next_lease=…)``), so a backlog drains
without a claim transaction of its own per job; the pool claims for workers that came free idle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from scim_bridge.store.jobs import Job

log = logging.getLogger(__name__)

LEASE_SECONDS = 300.0
# The shortest sleep between claims when nothing is due: a job due "now" that another instance is
# claiming must not make this one spin.
MIN_WAIT_SECONDS = 0.05


class ClaimsDue(Protocol):
    def claim_due(self, owner: str, lease_seconds: float, limit: int = 10) -> list[Job]: ...

    def seconds_until_due(self) -> float | None: ...


class BackgroundRunner(Protocol):
    """What the pool needs of ``JobRunner``: its queue, its lease owner, and one job's run."""

    @property
    def queue(self) -> ClaimsDue: ...

    @property
    def owner(self) -> str: ...

    def run_background(
        self, job: Job, *, next_lease: Callable[[], float | None] | None = None
    ) -> Job | None: ...


class WorkerPool:
    """Claims due jobs for its free workers and runs each on a thread of its own."""

    def __init__(
        self,
        runner: BackgroundRunner,
        concurrency: int,
        *,
        poll_seconds: float,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        if concurrency < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.runner = runner
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self._lock = threading.Lock()
        self._running = 0
        self._keys: set[str] = set()  # the jobs running here
        self._finished = threading.Event()  # a worker came free: there is room to claim again
        self._stop = threading.Event()  # set: a worker claims no next job

    @property
    def running(self) -> int:
        with self._lock:
            return self._running

    def run(self, stop: threading.Event) -> None:
        """Run jobs until ``stop`` is set, then return once the jobs in flight have finished."""
        self._stop = stop
        log.info("worker %s started, %d at once", self.runner.owner, self.concurrency)
        next_claim = 0.0
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="reconcile") as executor:
            while not stop.is_set():
                self._finished.clear()
                free = self.concurrency - self.running
                if free and time.monotonic() >= next_claim:
                    # Nothing due (one read): look again when the next job is, within the poll.
                    # Else claim; all free workers got a job: claim again as soon as one comes
                    # free; fewer: the queue has nothing more due now, ask when it will.
                    wait = self._idle_wait()
                    if not wait:
                        claimed = self._claim(free)
                        for job in claimed:
                            self._start(executor, job)
                        wait = 0.0 if len(claimed) == free else self._idle_wait(at_least=True)
                    next_claim = time.monotonic() + wait if wait else 0.0
                # Woken early by a worker coming free; `stop` is looked at twice a second.
                timeout = min(self.poll_seconds, 0.5)
                if free and next_claim:
                    timeout = min(timeout, max(next_claim - time.monotonic(), MIN_WAIT_SECONDS))
                if self._finished.wait(timeout):
                    next_claim = 0.0
            log.info("worker %s stopping: %d job(s) in flight", self.runner.owner, self.running)
        log.info("worker %s stopped", self.runner.owner)

    def _idle_wait(self, *, at_least: bool = False) -> float:
        """Until the next job is due (0: one is), within the poll interval; ``at_least`` the
        floor, for a queue just claimed from (a job due now is one another worker is taking)."""
        try:
            due = self.runner.queue.seconds_until_due()
        except Exception:  # the database is away: look again after the poll interval
            log.exception("reading when the next job is due failed")
            due = None
        wait = self.poll_seconds if due is None else min(self.poll_seconds, due)
        return max(wait, MIN_WAIT_SECONDS) if at_least or wait > 0 else 0.0

    def _claim(self, free: int) -> list[Job]:
        try:
            return self.runner.queue.claim_due(self.runner.owner, self.lease_seconds, free)
        except Exception:  # the database is away: look again after the poll interval
            log.exception("claiming due jobs failed; retrying")
            return []

    def _start(self, executor: ThreadPoolExecutor, job: Job) -> None:
        with self._lock:
            if not self._take(job):
                return
            self._running += 1
        executor.submit(self._run, job)

    def _next_lease(self) -> float | None:
        """A worker's next job's lease, as its run ends; None once the pool is stopping."""
        return None if self._stop.is_set() else self.lease_seconds

    def _take(self, job: Job) -> bool:
        """Note ``job`` as running here, unless it already is (call with the lock held)."""
        if job.key in self._keys:
            # Its lease expired while it still runs here: a second run would race the first
            # on one entity. The new lease keeps the others off until this run is done.
            log.warning("job %s outlived its lease and still runs here; not run twice", job.key)
            return False
        self._keys.add(job.key)
        return True

    def _run(self, job: Job) -> None:
        """Run ``job``, then each next job its ending claimed, until none or the pool stops."""
        current: Job | None = job
        while current is not None:
            following: Job | None = None
            try:
                following = self.runner.run_background(current, next_lease=self._next_lease)
            except Exception:  # the job's own outcome could not be saved: its lease expires
                log.exception("job %s failed outside its reconcile", current.key)
            finally:
                with self._lock:
                    self._keys.discard(current.key)
                    if following is not None and not self._take(following):
                        following = None
                    if following is None:
                        self._running -= 1
            current = following
        self._finished.set()
