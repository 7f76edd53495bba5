"""A backlog made while GitLab was down: how fast, and how parallel, the bridge drains it.

    pip install . && python benchmarks/drain.py [--users 300] [--latency-ms 100] [--clients 16]
                                                [--backoff-max 1] [--database-url URL] [--check]

The GitLab double (its own process) starts answering 503 to every call, as an unreachable GitLab
behind a proxy would. A fresh `scim-bridge serve` (SQLite in a temporary directory) acknowledges
`--users` POST /Users from 16 clients, each queued as a reconcile job. Then GitLab comes back, each
call waiting `--latency-ms`, and the benchmark times how long until the bridge's job queue is
empty (read from /metrics every 0.1 s). Effective parallelism = GitLab calls made during the drain
x latency / drain time: how many calls were in flight on average.

The worker's retry backoff would otherwise decide when the drain starts (the retries during the
outage push the jobs up to `[reconcile] backoff_max_seconds`, 600 s by default, into the future),
so the run sets backoff_base_seconds to 0.1 and backoff_max_seconds to `--backoff-max` (the drain
then starts within that of GitLab's return), and max_attempts high enough that no job parks
during the outage. Everything else is the default `serve`. The accounts are then checked through
the double's GitLab API over HTTP.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

from harness import GITLAB_CALLS
from harness import BridgeServer
from harness import Double
from harness import Targets
from harness import entra_user
from harness import percentile
from harness import run_load
from harness import scim_request
from harness import temporary_directory

PROVIDER = "openid_connect"
TARGET_PARALLELISM = 6.0
MAX_ATTEMPTS = "1000000"


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--backoff-max", type=float, default=1.0, help="seconds, for the run")
    parser.add_argument("--database-url", default=None, help="an EMPTY database; default: SQLite")
    parser.add_argument("--queue-timeout", type=float, default=1800.0)
    parser.add_argument("--check", action="store_true", help="exit 1 if a target fails")
    return parser.parse_args()


def calls_not_refused(bridge: BridgeServer) -> float:
    """GitLab calls the bridge counted, but the outage's 503s."""
    by_status = bridge.metrics().by_label(GITLAB_CALLS, "status")
    return sum(count for status, count in by_status.items() if status != "503")


def main() -> int:
    args = parse()
    run = uuid.uuid4().hex[:6]
    settings = {
        "SCIM_BRIDGE_RECONCILE_BACKOFF_BASE_SECONDS": "0.1",
        "SCIM_BRIDGE_RECONCILE_BACKOFF_MAX_SECONDS": str(args.backoff_max),
        "SCIM_BRIDGE_RECONCILE_MAX_ATTEMPTS": MAX_ATTEMPTS,
    }
    print(
        f"backlog: {args.users} POST /Users from {args.clients} clients while GitLab answers 503; "
        f"then GitLab at {args.latency_ms:g} ms per call. For the run: "
        + ", ".join(
            f"{key.removeprefix('SCIM_BRIDGE_')}={value}" for key, value in settings.items()
        ),
        flush=True,
    )
    double = Double(args.latency_ms, down=True)
    external_ids = [f"oid-{run}-{i}" for i in range(args.users)]
    with temporary_directory("scim-bridge-drain-") as temporary:
        bridge = BridgeServer(
            Path(temporary), double, database_url=args.database_url, settings=settings
        )
        try:
            bridge.start()
            posts = [
                scim_request("POST", "/scim/v2/Users", entra_user(f"d{run}.{i}@contoso.com", oid))
                for i, oid in enumerate(external_ids)
            ]
            load = run_load(bridge.port, bridge.headers, posts, args.clients, args.processes)
            statuses = ", ".join(f"{s}: {n}" for s, n in load.by_status().items())
            queued = bridge.metrics().total("scim_bridge_jobs_pending")
            print(
                f"while down: {len(posts)} POST /Users in {load.seconds:.1f} s, answers {statuses}; "
                f"p50 {percentile(load.latencies, 0.5) * 1000:.0f} ms; {queued:.0f} jobs pending",
                flush=True,
            )
            before = calls_not_refused(bridge)
            double.command("up")
            up = time.monotonic()
            drained, end = bridge.wait_queue_empty(args.queue_timeout, poll=0.1)
            seconds = end.at - up
            calls = calls_not_refused(bridge) - before
            parked = end.total("scim_bridge_jobs_parked")
        finally:
            bridge.stop()
        double.set_latency(0)
        accounts = {
            identity["extern_uid"]
            for user in double.get_all("/users")
            for identity in user.get("identities", [])
            if identity["provider"] == PROVIDER
        }
        double.stop()
    present = sum(1 for oid in external_ids if oid in accounts)
    parallelism = calls * args.latency_ms / 1000.0 / max(seconds, 1e-9)
    print(
        f"drain: {seconds:.1f} s from GitLab's return to an empty queue"
        + ("" if drained else f" -- NOT EMPTY after {args.queue_timeout:g} s")
        + (f"; {parked:.0f} job(s) parked" if parked else "")
    )
    print(
        f"GitLab calls during the drain: {calls:.0f} ({calls / max(1, args.users):.2f} per user); "
        f"effective parallelism {calls:.0f} x {args.latency_ms:g} ms / {seconds:.1f} s "
        f"= {parallelism:.2f}"
    )
    print(f"in GitLab: {present}/{args.users} accounts with their identity")
    targets = Targets()
    targets.add(
        f"backlog drains with effective parallelism >= {TARGET_PARALLELISM:g}"
        + ("" if args.users == 300 else f" [ran with {args.users} users]"),
        f"{parallelism:.2f}",
        parallelism >= TARGET_PARALLELISM,
    )
    targets.add(
        "every queued account in GitLab",
        f"{args.users - present} missing",
        drained and present == args.users,
    )
    targets.print()
    return 1 if args.check and targets.failed else 0


if __name__ == "__main__":
    sys.exit(main())
