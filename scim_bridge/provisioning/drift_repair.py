"""Continuous drift repair: GitLab compared with the store on a schedule, and what differs repaired.

Entra sends only changes, so a membership removed or an account unblocked by hand in GitLab stays
so until something looks. The background worker looks every ``[reconcile] drift_interval_minutes``
(0: never): exactly one instance per interval, whichever takes the turn in the database
(``store/schedules.py``). A turn is what `scim-bridge reconcile --apply` does, without waiting:

- the same finder (``drift.py``), which reads GitLab only, and leaves out what the ownership rules
  forbid the bridge to write (accounts it does not own or must protect, memberships it does not
  manage);
- the same repairs: the reconcile jobs that already know how, queued for the worker, which makes
  the GitLab calls paced and retried like any other job's, each refused where ownership says so;
- each repair recorded in the audit trail (``drift.repair``) and the jobs queued under the actor
  ``drift``, so every change they make names it; and counted by kind in
  ``scim_bridge_drift_repairs_total``.

A turn that cannot read GitLab is logged and skipped; the next interval tries again.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import timedelta

from scim_bridge import context
from scim_bridge.metrics.instruments import DRIFT_REPAIRS
from scim_bridge.periodic import every
from scim_bridge.provisioning.drift import Drift
from scim_bridge.provisioning.drift import DriftFinder
from scim_bridge.provisioning.drift import queue_repairs
from scim_bridge.provisioning.journal import Journal
from scim_bridge.provisioning.reconciling import Retry
from scim_bridge.store import audit
from scim_bridge.store.db import Database
from scim_bridge.store.drift import DriftRecords
from scim_bridge.store.gitlab_memberships import GITLAB_GROUP_JOB
from scim_bridge.store.jobs import JobQueue
from scim_bridge.store.jobs import job_key
from scim_bridge.store.schedules import Schedules
from scim_bridge.store.users import USER_JOB

log = logging.getLogger(__name__)

SCHEDULE = "drift"
ACTOR = "drift"
# The comparison's audited GitLab reads, written this many to a transaction.
EVENTS_PER_TRANSACTION = 1000


class DriftRepair:
    """One instance's share of the schedule: takes its turns, and repairs in them."""

    def __init__(
        self,
        finder: DriftFinder,
        records: DriftRecords,
        queue: JobQueue,
        db: Database,
        *,
        interval: timedelta,
        owner: str,
        redact_values: bool = False,
    ) -> None:
        self.finder = finder
        self.records = records
        self.queue = queue
        self.db = db
        self.schedules = Schedules(db)
        self.interval = interval
        self.owner = owner
        self.redact_values = redact_values

    @property
    def poll_seconds(self) -> float:
        """How often to look whether the turn has come: a quarter interval, at most a minute."""
        return min(60.0, max(0.05, self.interval.total_seconds() / 4))

    def take_turn(self) -> bool:
        return self.schedules.take_turn(SCHEDULE, self.interval, self.owner)

    def repair(self) -> list[Drift]:
        """One turn: find the drift, and queue, audit and count its repairs.

        The GitLab reads of the comparison are audited like every call, but kept while it runs
        (a journal, as a reconcile run keeps its own) and written ``EVENTS_PER_TRANSACTION`` at a
        time, the last of them with the repairs: a large tenant's comparison reads every account,
        and a transaction per read would queue that many times at SQLite's writer lock.
        """
        run = context.RequestContext(request_id=f"drift-{uuid.uuid4().hex}", actor=ACTOR)
        journal = Journal()
        with context.bound(run):
            try:
                with journal.kept():
                    drifts = self.finder.find()
            except Retry as trouble:
                log.warning("drift check skipped: cannot read GitLab: %s", trouble.detail)
                drifts = []
            # A difference whose repair is still queued (GitLab slow, or down) is not a new one.
            waiting = self.queue.pending_among(repair_job(drift) for drift in drifts)
            drifts = [drift for drift in drifts if repair_job(drift) not in waiting]
            per = EVENTS_PER_TRANSACTION  # the last of them go with the repairs
            journal.spill(self.db, per_transaction=per, keep=per)
            with self.db.transaction(write=True):
                journal.write(finals=False)
                for drift in drifts:
                    audit.record("drift.repair", repair_target(drift), self._detail(drift))
                if drifts:
                    queue_repairs(self.records, drifts)
        for drift in drifts:
            DRIFT_REPAIRS.labels(drift.kind).inc()
        if drifts:
            log.info("drift check: %d difference(s) found, repairs queued", len(drifts))
        else:
            log.info("drift check: nothing new to repair")
        return drifts

    def _detail(self, drift: Drift) -> dict[str, str]:
        """What differed, and whose; the values (names, emails) left out where the audit
        redacts them."""
        detail = {"kind": drift.kind}
        if drift.kind == "membership" and drift.user_id is not None:
            detail["user_id"] = drift.user_id
        if not self.redact_values:
            detail |= {"target": drift.target, "desired": drift.desired, "actual": drift.actual}
        return detail

    def turn(self) -> list[Drift]:
        """Repair if this instance takes the turn that has come; nothing otherwise."""
        return self.repair() if self.take_turn() else []

    def start(self, stop: threading.Event) -> threading.Thread:
        """Until ``stop``: look for the turn every ``poll_seconds``, and repair in each taken."""
        return every(self.poll_seconds, self.turn, stop, name="drift-repair")


def repair_job(drift: Drift) -> str:
    """The job that repairs ``drift`` (``queue_repairs``): its user's, or its GitLab group's."""
    if drift.kind == "membership" and drift.gitlab_group is not None:
        return job_key(GITLAB_GROUP_JOB, drift.gitlab_group)
    return job_key(USER_JOB, drift.user_id or "")


def repair_target(drift: Drift) -> str | None:
    """The audit event's target: the GitLab group of a membership, else the SCIM user."""
    if drift.kind == "membership" and drift.gitlab_group is not None:
        return drift.gitlab_group
    return drift.user_id
