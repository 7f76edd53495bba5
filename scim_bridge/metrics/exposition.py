"""One scrape of ``/metrics``: the process's (or all processes') instruments and the queue gauges.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``scim-bridge serve`` sets it for gunicorn's workers and the
background worker) the instruments are read from every process's files and added up; without it
(tests, a single process) they come from this process's registry.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client import generate_latest
from prometheus_client import multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from scim_bridge.metrics import instruments
from scim_bridge.metrics.queue_gauges import QueueCollector
from scim_bridge.store.jobs import JobQueue

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# What generate_latest writes; spelt out, as newer prometheus_client versions default to 1.0.0.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _ThisProcess(Collector):
    """This process's instruments, for a scrape's registry of its own."""

    def collect(self) -> Iterable[Metric]:
        return instruments.REGISTRY.collect()


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def render(queue: JobQueue) -> bytes:
    """The Prometheus text exposition (format 0.0.4) for one scrape."""
    registry = CollectorRegistry()
    directory = multiprocess_dir()
    if directory:
        multiprocess.MultiProcessCollector(registry, path=directory)
    else:
        registry.register(_ThisProcess())
    registry.register(QueueCollector(queue))
    return generate_latest(registry)
