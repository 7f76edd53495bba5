"""The bridge's counters and histograms, one set per process.

They live in a registry of their own rather than prometheus_client's global one, so scraping never
mixes in another library's metrics and a test can read them without a running server. Under
``PROMETHEUS_MULTIPROC_DIR`` prometheus_client writes every value to a per-process file instead,
which :func:`scim_bridge.metrics.exposition.render` adds up across processes.

Labels are bounded and hold nothing about a user: routes are Flask rule templates, GitLab
endpoints are path templates without ids or queries.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Gauge
from prometheus_client import Histogram
from prometheus_client import disable_created_metrics

# `_created` series double the output for no use here (multiprocess mode has none either).
disable_created_metrics()

REGISTRY = CollectorRegistry(auto_describe=True)

# Inline reconciliation may hold a SCIM request up to its deadline (at most 55 s).
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
GITLAB_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter(
    "scim_bridge_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "scim_bridge_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
    buckets=REQUEST_BUCKETS,
    registry=REGISTRY,
)
GITLAB_CALLS = Counter(
    "scim_bridge_gitlab_calls",
    "Calls to the GitLab API (planned ones in dry-run included), by endpoint, status and outcome.",
    ["endpoint", "status", "outcome"],
    registry=REGISTRY,
)
GITLAB_DURATION = Histogram(
    "scim_bridge_gitlab_call_duration_seconds",
    "Time GitLab took to answer a call, by endpoint (planned calls left out).",
    ["endpoint"],
    buckets=GITLAB_BUCKETS,
    registry=REGISTRY,
)
DB_TRANSACTIONS = Counter(
    "scim_bridge_db_transactions",
    "Database transactions begun, by mode (write or read); a transaction joined by another is not.",
    ["mode"],
    registry=REGISTRY,
)
GITLAB_TOKEN_EXPIRY = Gauge(
    "scim_bridge_gitlab_token_expiry_timestamp_seconds",
    "When the bridge's GitLab token expires (Unix time, midnight UTC of its expiry date), as the "
    "worker last read it (at start and daily); +Inf for no expiry date.",
    registry=REGISTRY,
    # Set by the background worker only: under `serve`, the value it set last is the one reported
    # (absent until it has read the token); a process that never set it reports nothing.
    multiprocess_mode="mostrecent",
)
DRIFT_REPAIRS = Counter(
    "scim_bridge_drift_repairs",
    "Differences between GitLab and the store found by the scheduled drift check, each queued "
    "for repair, by kind (account or membership).",
    ["kind"],
    registry=REGISTRY,
)
# Both series from the start, at 0, so a rate or increase over them has a baseline.
for _kind in ("account", "membership"):
    DRIFT_REPAIRS.labels(_kind)
