"""Member deletions paced at GitLab's rolling window, counted in the database: whatever the
machine's speed and however many processes delete, GitLab never has to refuse one."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from scim_bridge import clock
from tests.conftest import BridgeUnderTest
from tests.e2e.test_group_memberships import DEVS_OID
from tests.e2e.test_group_memberships import RULES
from tests.e2e.test_group_memberships import Entra
from tests.e2e.test_group_memberships import levels
from tests.e2e.test_group_memberships import without_root

WINDOW = 2.0  # GitLab's minute, shortened in the double and in the bridge alike


def deletes(gitlab: Any) -> list[int]:
    return [call.status for call in gitlab.requests if call.method == "DELETE"]


def test_150_removals_drain_through_the_worker_without_a_429(
    make_bridge: Callable[..., BridgeUnderTest], acme: Any
) -> None:
    acme.member_delete_window = WINDOW
    bridge = make_bridge(
        acme,
        groups={"rules": RULES},
        reconcile={"member_deletion_window_seconds": WINDOW, "worker_poll_seconds": 0.05},
    )
    entra = Entra(bridge, acme)
    users = [entra.user(f"user{index}") for index in range(150)]
    devs = entra.group("GitLab Developers", DEVS_OID, [scim_id for scim_id, _ in users])
    assert len(without_root(levels(acme))) == 150
    acme.clear_requests()
    entra.remove(devs, *[scim_id for scim_id, _ in users])
    stop = threading.Event()
    worker = threading.Thread(target=bridge.bridge.runner.run_forever, args=(stop,))
    worker.start()
    try:
        give_up = time.monotonic() + 120  # a wait for the outcome, not a measure of speed
        while without_root(levels(acme)) and time.monotonic() < give_up:
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join()
    assert without_root(levels(acme)) == {}
    assert deletes(acme) == [204] * 150, "no deletion refused, none repeated"
    assert bridge.bridge.queue.list() == []


def test_a_paced_job_another_process_takes_up_still_waits(
    make_bridge: Callable[..., BridgeUnderTest], acme: Any
) -> None:
    """The request's process made 60 deletions; the worker's (another Bridge on the same
    database, as the worker process is) runs the job before the minute is over: it waits too."""
    patient = {"inline_deadline_seconds": 600.0}
    serving = make_bridge(acme, groups={"rules": RULES}, reconcile=patient)
    worker = make_bridge(acme, groups={"rules": RULES}, reconcile=patient)
    entra = Entra(serving, acme)
    users = [entra.user(f"user{index}") for index in range(70)]
    devs = entra.group("GitLab Developers", DEVS_OID, [scim_id for scim_id, _ in users])
    acme.clear_requests()
    entra.remove(devs, *[scim_id for scim_id, _ in users])
    assert deletes(acme) == [204] * 60
    worker.run_worker(rounds=3)  # runs the job at once, however long its pacing asked to wait
    assert deletes(acme) == [204] * 60, "the other process counted the same 60"
    assert len(without_root(levels(acme))) == 10
    (job,) = worker.bridge.queue.list()
    assert "pacing member deletions" in (job.last_error or "")
    assert job.attempts == 0
    assert 0 < (job.run_after - clock.now()).total_seconds() <= 61
