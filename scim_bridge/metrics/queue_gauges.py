"""The job queue's gauges, read from the database when Prometheus scrapes.

Computed at scrape time rather than kept by the processes that change the queue: the database is
the one place that knows, whichever process (a gunicorn worker, the background worker, another
instance) enqueued, ran or parked a job. The collector is added to each scrape's registry once,
so the gauges are reported once, not once per process.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from scim_bridge import clock
from scim_bridge.store.jobs import JobQueue

log = logging.getLogger(__name__)


class QueueCollector(Collector):
    """Pending, due and parked job counts, and how long the oldest due job has waited."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            stats = self.queue.stats()
        except Exception as error:
            # A scrape must still answer (with the request counters) when the database does not.
            log.warning("cannot read the job queue for /metrics: %s", type(error).__name__)
            yield _gauge("scim_bridge_jobs_stats_ok", "1 when the queue could be read.", 0)
            return
        yield _gauge("scim_bridge_jobs_stats_ok", "1 when the queue could be read.", 1)
        yield _gauge(
            "scim_bridge_jobs_pending", "Reconcile jobs waiting to run, due or not.", stats.pending
        )
        yield _gauge("scim_bridge_jobs_due", "Pending jobs whose time to run has come.", stats.due)
        yield _gauge(
            "scim_bridge_jobs_parked",
            "Jobs that stopped retrying until an operator retries them.",
            stats.parked,
        )
        now = clock.now()
        oldest = stats.oldest_due_created_at
        yield _gauge(
            "scim_bridge_jobs_oldest_due_age_seconds",
            "Age of the oldest due pending job (since it was first enqueued); 0 when none is due.",
            max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        )
        waiting = stats.oldest_due_run_after
        yield _gauge(
            "scim_bridge_jobs_oldest_due_wait_seconds",
            "How long the longest-waiting due job has been due without running; 0 when none is.",
            max(0.0, (now - waiting).total_seconds()) if waiting else 0.0,
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
