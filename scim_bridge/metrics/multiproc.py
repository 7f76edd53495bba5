"""The directory prometheus_client's multiprocess mode shares between ``scim-bridge serve``'s processes.

Each gunicorn worker and the background worker write their counters to files there, and a scrape
adds them up. It is made fresh for each run (a stale file would resurrect old counts) and removed
when the run ends.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from scim_bridge.metrics.exposition import MULTIPROC_ENV


@contextmanager
def shared_directory() -> Iterator[dict[str, str]]:
    """A fresh directory; yields the environment for the processes that share it."""
    directory = tempfile.mkdtemp(prefix="scim-bridge-metrics-")
    try:
        yield {**os.environ, MULTIPROC_ENV: directory}
    finally:
        shutil.rmtree(directory, ignore_errors=True)
