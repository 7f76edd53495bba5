"""The background worker runs N jobs at once, never two for one entity, and stops cleanly.

Concurrency is proven with the GitLab double's held requests and the jobs' leases (counts), never
with durations: a request held at the double is a job in flight.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import func
from sqlalchemy import select

from scim_bridge import clock
from scim_bridge.provisioning.worker_pool import WorkerPool
from scim_bridge.store.schema import jobs
from tests.conftest import BridgeUnderTest
from tests.conftest import entra_user
from tests.conftest import transactions

CREATE_USER = r"^/api/v4/users$"


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll until ``condition`` holds: a wait for an event, not a measure of speed."""
    give_up = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < give_up, f"never happened: {what}"
        time.sleep(0.01)


def backlog(
    gitlab: Any, make_bridge: Callable[..., BridgeUnderTest], users: int, **reconcile: Any
) -> BridgeUnderTest:
    """A bridge whose requests leave all their work to the worker (no inline deadline)."""
    settings = {"inline_deadline_seconds": 0, "worker_poll_seconds": 0.05, **reconcile}
    bridge = make_bridge(gitlab, reconcile=settings)
    for index in range(users):
        body = entra_user(f"user{index}@contoso.com", externalId=f"oid-{index}")
        assert bridge.scim.post("/Users", body).status_code == 201
    assert len(bridge.bridge.queue.list()) == users
    return bridge


def leased(bridge: BridgeUnderTest) -> int:
    with bridge.bridge.db.transaction(write=False) as tx:
        statement = select(func.count()).select_from(jobs).where(jobs.c.lease_owner.is_not(None))
        return int(tx.connection.execute(statement).scalar_one())


@contextmanager
def worker(bridge: BridgeUnderTest) -> Iterator[threading.Event]:
    """``scim-bridge worker``'s loop on a thread; yields its stop event, joins it at the end."""
    stop = threading.Event()
    thread = threading.Thread(target=bridge.bridge.runner.run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=60)
        assert not thread.is_alive()


def test_n_jobs_run_at_once_and_only_free_workers_claim(
    make_bridge: Callable[..., BridgeUnderTest], gitlab: Any
) -> None:
    bridge = backlog(gitlab, make_bridge, 7, worker_concurrency=3)
    release = threading.Event()
    gitlab.faults.add(method="POST", path_pattern=CREATE_USER, hold=release)
    with worker(bridge):
        wait_for(lambda: gitlab.held() == 3, "three account creations at GitLab at once")
        assert leased(bridge) == 3, "a job waiting for a worker would hold its lease for nothing"
        release.set()
        wait_for(lambda: bridge.bridge.queue.list() == [], "the backlog drained")
    assert len(gitlab.calls("POST", "/api/v4/users")) == 7
    assert len(gitlab.users()) == 1 + 7


def test_never_two_runs_for_one_entity_across_workers(
    make_bridge: Callable[..., BridgeUnderTest], gitlab: Any
) -> None:
    """Two instances' workers on one queue: the job's lease keeps the second off the entity, even
    when a newer write makes the job due again while it runs; the newer write runs after."""
    first = backlog(gitlab, make_bridge, 1, worker_concurrency=2)
    second = make_bridge(
        gitlab, reconcile={"inline_deadline_seconds": 0, "worker_poll_seconds": 0.05}
    )
    (user,) = first.scim.get("/Users").json["Resources"]
    release = threading.Event()
    gitlab.faults.add(method="POST", path_pattern=CREATE_USER, hold=release)
    with worker(first), worker(second):
        wait_for(lambda: gitlab.held() == 1, "the account creation at GitLab")
        rename = [{"op": "Replace", "path": "displayName", "value": "Renamed"}]
        assert second.scim.patch(f"/Users/{user['id']}", rename).status_code == 200
        (job,) = second.bridge.queue.list()
        assert job.generation == 2 and job.run_after <= clock.now(), "due again"
        assert second.bridge.queue.claim_due("a third worker", 300, 10) == [], "it is leased"
        assert gitlab.held() == 1
        release.set()
        wait_for(lambda: second.bridge.queue.list() == [], "both writes applied")
    assert len(gitlab.calls("POST", "/api/v4/users")) == 1
    (account,) = gitlab.users_with_identity("openid_connect", "oid-0")
    assert account["name"] == "Renamed"


def test_stop_finishes_the_jobs_in_flight_and_claims_no_more(
    make_bridge: Callable[..., BridgeUnderTest], gitlab: Any
) -> None:
    bridge = backlog(gitlab, make_bridge, 3, worker_concurrency=2)
    release = threading.Event()
    gitlab.faults.add(method="POST", path_pattern=CREATE_USER, hold=release)
    with worker(bridge) as stop:
        wait_for(lambda: gitlab.held() == 2, "two account creations at GitLab")
        stop.set()  # SIGTERM
        release.set()
    (left,) = bridge.bridge.queue.list()
    assert leased(bridge) == 0 and left.attempts == 0, "the third job was never claimed"
    assert len(gitlab.calls("POST", "/api/v4/users")) == 2
    assert len(gitlab.users()) == 1 + 2


def test_a_429_pauses_every_job_bound_for_that_gitlab(
    make_bridge: Callable[..., BridgeUnderTest], gitlab: Any
) -> None:
    """One job meets a 429 with Retry-After: 60: the jobs running beside it and the ones claimed
    after it send nothing more to GitLab; they wait for the pause's end, without parking."""
    bridge = backlog(gitlab, make_bridge, 6, worker_concurrency=3)
    release = threading.Event()
    gitlab.faults.add(status=429, retry_after=60, times=1)
    gitlab.faults.add(hold=release)  # requests sent before the 429 came back wait here

    def settled() -> bool:
        """Each job either held at GitLab (and leased) or back in the queue with its error (a
        job retried after the pause is not due again before it ends)."""
        held = gitlab.held()
        queued = [job for job in bridge.bridge.queue.list() if job.last_error]
        return len(queued) + held == 6 and leased(bridge) == held

    with worker(bridge):
        wait_for(settled, "every job met the 429 or the pause, or is held")
        in_flight = gitlab.held()
        assert in_flight <= 2, "sent before the 429 came back"
        release.set()
        wait_for(lambda: leased(bridge) == 0, "the held jobs met the pause after their answer")
        assert settled()
    statuses = [request.status for request in gitlab.requests]
    assert statuses == [429] + [200] * in_flight, "nothing reached GitLab during the pause"
    for job in bridge.bridge.queue.list():
        assert "429" in (job.last_error or "")
        assert (job.run_after - clock.now()).total_seconds() > 50, "back after the pause"
        assert job.state == "pending" and job.attempts == 1


def test_a_job_that_outlives_its_lease_is_not_run_twice_by_its_worker(
    make_bridge: Callable[..., BridgeUnderTest], gitlab: Any, caplog: Any
) -> None:
    """A lease of no time at all: the pool claims the running job again and again; its second
    run would race the first on one entity, so the pool does not start it."""
    bridge = backlog(gitlab, make_bridge, 1)
    release = threading.Event()
    gitlab.faults.add(method="POST", path_pattern=CREATE_USER, hold=release)
    pool = WorkerPool(bridge.bridge.runner, 2, poll_seconds=0.01, lease_seconds=0.0)
    stop = threading.Event()
    thread = threading.Thread(target=pool.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: gitlab.held() == 1, "the account creation at GitLab")
        wait_for(lambda: "not run twice" in caplog.text, "the job claimed again while it runs")
        assert pool.running == 1
    finally:
        stop.set()
        release.set()
        thread.join()
    assert len(gitlab.calls("POST", "/api/v4/users")) == 1


def test_a_worker_claims_its_next_job_as_it_ends_the_last(
    make_bridge: Callable[..., BridgeUnderTest], gitlab: Any
) -> None:
    """A backlog drains on two write transactions per account (its creation's mark, and the end
    that also claims the next job), plus the first claim: no claim transaction per job."""
    jobs_count = 6
    bridge = backlog(gitlab, make_bridge, jobs_count, worker_concurrency=1)
    bridge.bridge.protector.current()  # the protected accounts, resolved once before counting
    with transactions(bridge) as counted, worker(bridge):
        wait_for(lambda: bridge.bridge.queue.list() == [], "the backlog drained")
    assert len(gitlab.users()) == 1 + jobs_count
    assert counted["write"] == 2 * jobs_count + 1, counted


def test_a_retry_runs_when_its_backoff_ends_not_at_the_next_poll(
    make_bridge: Callable[..., BridgeUnderTest], gitlab: Any
) -> None:
    """GitLab refuses the first create; the retry, due a few milliseconds later, runs then: the
    worker sleeps until the next job is due, not for its whole poll interval (30 s here)."""
    bridge = backlog(gitlab, make_bridge, 1, worker_poll_seconds=30.0)
    gitlab.faults.add(method="POST", path_pattern=CREATE_USER, status=503, times=1)
    with worker(bridge):
        wait_for(lambda: len(gitlab.users()) == 2, "the account, on the retry", timeout=15.0)
    assert len(gitlab.calls("POST", "/api/v4/users")) == 2
