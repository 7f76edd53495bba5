"""Entra's initial cycle: 10,000 users, 100 groups, 50,000 memberships, at 16 clients, GitLab 100 ms.

    pip install . && python benchmarks/initial_sync.py [--users 10000] [--groups 100]
                                    [--memberships 50000] [--batch 50] [--clients 16]
                                    [--latency-ms 100] [--database-url URL] [--check]

A fresh `scim-bridge serve` (default settings but the per-caller rate limit, raised; SQLite in a
temporary directory) and the GitLab double (its own process, `--latency-ms` on every call) with
the GitLab groups acme/team-NNN, each mapped by a [groups] rule (display name "Team NNN", developer)
receive what Entra sends in an initial cycle (entra.md §1.1: objects first, group members in later
updates), 16 clients at a time:

1. POST /Users for every user (the first `--rss-at` of them as a batch of their own, so the bridge's
   peak RSS can be read when they are done);
2. POST /Groups for every group, created empty, as Entra does;
3. PATCH /Groups/{id} adding the members, `--batch` per PATCH (Entra's multi-member PATCH;
   entra.md: "at least 50 member operations"), group after group, so concurrent PATCHes often
   reach the same group. Group g holds users g*(users/groups) ... onward, so each user is in about
   memberships/users groups.

Then it waits until the bridge's job queue is empty, and checks through the double's GitLab API
over HTTP (latency set to 0 for the check) that every account exists with its identity and every
membership is there. It prints the wall time, p99 per operation type, the GitLab calls the bridge
counted against the floor (what GitLab needs at minimum: one POST /users per user; one lookup per
mapped GitLab group; per PATCH batch one member lookup and one multi-add per 100 members of its
group and level), the peak RSS (VmHWM summed over the bridge's processes) after `--rss-at` users,
after all users and at the end, the time from the last answer until the queue was empty, and (on
SQLite) the largest size of the bridge's write-ahead log file and its size at the end.
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from harness import GITLAB_CALLS
from harness import BridgeServer
from harness import Double
from harness import LoadResult
from harness import Targets
from harness import add_members
from harness import delta
from harness import entra_group
from harness import entra_user
from harness import percentile
from harness import run_load
from harness import scim_request
from harness import temporary_directory

PROVIDER = "openid_connect"  # the bridge's default [gitlab] identity_provider
DEVELOPER = 30
MULTI_ADD = 100  # users per POST /groups/:id/members (gitlab.md)
TARGET_FLOOR_RATIO = 1.1
TARGET_RSS_RATIO = 1.5


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--memberships", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=50, help="members per PATCH")
    parser.add_argument("--rss-at", type=int, default=1_000, help="users done at the first sample")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--database-url", default=None, help="an EMPTY database; default: SQLite")
    parser.add_argument("--queue-timeout", type=float, default=3600.0)
    parser.add_argument("--check", action="store_true", help="exit 1 if a target fails")
    args = parser.parse_args()
    if args.memberships > args.users * args.groups:
        parser.error("--memberships cannot exceed --users x --groups")
    if min(args.users, args.groups, args.batch, args.clients) < 1:
        parser.error("--users, --groups, --batch and --clients must be at least 1")
    return args


def layout(users: int, groups: int, memberships: int) -> list[list[int]]:
    """Each group's member user indexes: memberships spread evenly, no pair twice."""
    stride = max(1, users // groups)
    members = []
    for group in range(groups):
        count = memberships // groups + (1 if group < memberships % groups else 0)
        members.append([(group * stride + j) % users for j in range(count)])
    return members


def floor_calls(users: int, groups: int, batches: list[int]) -> int:
    """What GitLab needs at minimum for this cycle (see the module docstring)."""
    return users + groups + sum(2 * math.ceil(size / MULTI_ADD) for size in batches)


class Report:
    def __init__(self) -> None:
        self.loads: dict[str, list[LoadResult]] = defaultdict(list)

    def phase(self, name: str, load: LoadResult) -> None:
        self.loads[name].append(load)
        statuses = ", ".join(f"{s}: {n}" for s, n in load.by_status().items())
        print(
            f"  {name}: {len(load.latencies)} in {load.seconds:.1f} s "
            f"({load.rate:.1f}/s), answers {statuses}",
            flush=True,
        )

    def table(self) -> None:
        print(f"\n  {'operation':<14} {'requests':>8} {'2xx %':>7} {'p50 ms':>8} {'p99 ms':>8}")
        for name, loads in self.loads.items():
            latencies = [value for load in loads for value in load.latencies]
            statuses = [value for load in loads for value in load.statuses]
            ok = sum(200 <= s < 300 for s in statuses) / max(1, len(statuses))
            print(
                f"  {name:<14} {len(latencies):8d} {ok * 100:7.2f} "
                f"{percentile(latencies, 0.5) * 1000:8.1f} {percentile(latencies, 0.99) * 1000:8.1f}"
            )


def check_gitlab(
    double: Double, external_ids: list[str], members: list[list[int]], paths: list[str]
) -> tuple[int, int]:
    """(accounts missing, memberships missing), read through the double's API over HTTP."""
    accounts: dict[str, int] = {}
    for user in double.get_all("/users"):
        for identity in user.get("identities", []):
            if identity["provider"] == PROVIDER:
                accounts[identity["extern_uid"]] = user["id"]
    missing_accounts = sum(1 for oid in external_ids if oid not in accounts)
    missing_members = 0
    for path, indexes in zip(paths, members, strict=True):
        present = {
            member["id"]
            for member in double.get_all(f"/groups/{path.replace('/', '%2F')}/members")
            if member["access_level"] == DEVELOPER
        }
        missing_members += sum(1 for i in indexes if accounts.get(external_ids[i]) not in present)
    return missing_accounts, missing_members


class LogWatch:
    """The size of the bridge's SQLite log file (``-wal``), sampled twice a second: the bridge
    empties it past a limit (scim_bridge/store/sqlite_writes.py), and this shows it stays there."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.largest = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        if self.path is not None:
            self._thread.start()

    def stop(self) -> tuple[int, int] | None:
        """(largest, now) in bytes; None for a database that is not a SQLite file."""
        self._stopped.set()
        if self.path is None:
            return None
        if self._thread.is_alive():
            self._thread.join()
        return max(self.largest, self._size()), self._size()

    def _size(self) -> int:
        try:
            return self.path.stat().st_size if self.path is not None else 0
        except OSError:
            return 0

    def _run(self) -> None:
        while not self._stopped.wait(0.5):
            self.largest = max(self.largest, self._size())


def main() -> int:
    args = parse()
    run = uuid.uuid4().hex[:6]
    paths = [f"acme/team-{g:03d}" for g in range(args.groups)]
    names = [f"Team {g:03d}" for g in range(args.groups)]
    external_ids = [f"oid-{run}-{i}" for i in range(args.users)]
    members = layout(args.users, args.groups, args.memberships)
    print(
        f"initial cycle: {args.users} users, {args.groups} groups, {args.memberships} memberships "
        f"({args.batch} per PATCH), {args.clients} clients, GitLab latency {args.latency_ms:g} ms",
        flush=True,
    )
    report = Report()
    double = Double(args.latency_ms, groups=["acme", *paths])
    with temporary_directory("scim-bridge-initial-sync-") as temporary:
        bridge = BridgeServer(
            Path(temporary),
            double,
            database_url=args.database_url,
            rules=[(name, path, "developer") for name, path in zip(names, paths, strict=True)],
        )
        log_file = None if args.database_url else Path(temporary) / "bridge.db-wal"
        watch = LogWatch(log_file)
        try:
            bridge.start()
            watch.start()
            start = bridge.metrics()
            cpu_before = double.command("stats")["cpu_seconds"]
            common: dict[str, Any] = {"clients": args.clients, "processes": args.processes}

            def send(requests: list[Any], capture: bool = False) -> LoadResult:
                return run_load(
                    bridge.port, bridge.headers, requests, capture_ids=capture, **common
                )

            users = [
                scim_request("POST", "/scim/v2/Users", entra_user(f"s{run}.{i}@contoso.com", oid))
                for i, oid in enumerate(external_ids)
            ]
            first = min(args.rss_at, args.users)
            began = time.monotonic()
            user_ids: list[str | None] = []
            for part in (users[:first], users[first:]):
                if part:
                    load = send(part, capture=True)
                    report.phase("POST /Users", load)
                    user_ids.extend(load.ids)
                if len(user_ids) == first:
                    rss_first = bridge.peak_rss_kib()
            rss_users = bridge.peak_rss_kib()
            groups = [
                scim_request("POST", "/scim/v2/Groups", entra_group(name, f"gid-{run}-{g}"))
                for g, name in enumerate(names)
            ]
            load = send(groups, capture=True)
            report.phase("POST /Groups", load)
            group_ids = load.ids
            patches, batch_sizes = [], []
            for group_id, indexes in zip(group_ids, members, strict=True):
                ids = [user_ids[i] for i in indexes if user_ids[i]]
                for offset in range(0, len(ids), args.batch):
                    chunk = ids[offset : offset + args.batch]
                    patches.append(
                        scim_request("PATCH", f"/scim/v2/Groups/{group_id}", add_members(chunk))
                    )
                    batch_sizes.append(len(chunk))
            load = send(patches)
            report.phase("PATCH /Groups", load)
            answered = time.monotonic()
            drained, end = bridge.wait_queue_empty(args.queue_timeout)
            finished = end.at
            rss_end = bridge.peak_rss_kib()
            cpu_double = double.command("stats")["cpu_seconds"] - cpu_before
            parked = end.total("scim_bridge_jobs_parked")
            calls = delta(
                end.by_label(GITLAB_CALLS, "endpoint"), start.by_label(GITLAB_CALLS, "endpoint")
            )
            log_sizes = watch.stop()
        finally:
            watch.stop()
            bridge.stop()
        double.set_latency(0)
        missing_accounts, missing_members = check_gitlab(double, external_ids, members, paths)
        double.stop()

    report.table()
    print(
        f"\nwall time: {finished - began:.1f} s (first POST to empty queue); "
        f"queue empty {finished - answered:.1f} s after the last answer"
        + ("" if drained else f" -- NOT EMPTY after {args.queue_timeout:g} s")
        + (f"; {parked:.0f} job(s) parked" if parked else "")
    )
    total = sum(calls.values())
    floor = floor_calls(args.users, args.groups, batch_sizes)
    print(
        f"GitLab calls: {total:.0f}; floor {floor} = {args.users} POST /users + {args.groups} "
        f"group lookups + {floor - args.users - args.groups} for {len(batch_sizes)} PATCH batches "
        "(a member lookup and a multi-add per 100 members); ratio "
        f"{total / max(1, floor):.2f}"
    )
    for name, count in calls.items():
        print(f"  {name:<40} {count:8.0f}")
    print(
        f"peak RSS of the bridge's processes (VmHWM, summed / largest): after {first} users "
        f"{rss_first[0] / 1024:.0f} / {rss_first[1] / 1024:.0f} MiB; after {args.users} users "
        f"{rss_users[0] / 1024:.0f} / {rss_users[1] / 1024:.0f} MiB; at the end "
        f"{rss_end[0] / 1024:.0f} / {rss_end[1] / 1024:.0f} MiB"
    )
    if log_sizes is not None:
        largest, last = log_sizes
        print(
            f"SQLite write-ahead log file: largest {largest / 2**20:.0f} MiB (sampled twice a "
            f"second), {last / 2**20:.0f} MiB at the end"
        )
    print(f"GitLab double's CPU during the cycle: {cpu_double:.1f} s (shares the machine)")
    print(
        f"in GitLab: {args.users - missing_accounts}/{args.users} accounts with their identity, "
        f"{args.memberships - missing_members}/{args.memberships} memberships"
    )
    targets = Targets()
    complete = missing_accounts == 0 and missing_members == 0 and drained
    targets.add(
        "every account and membership in GitLab",
        f"{missing_accounts + missing_members} missing",
        complete,
    )
    ratio = total / max(1, floor)
    targets.add(
        f"GitLab calls <= {TARGET_FLOOR_RATIO}x the floor",
        f"{ratio:.2f}x",
        ratio <= TARGET_FLOOR_RATIO,
    )
    rss_ratio = rss_end[0] / max(1, rss_first[0])
    targets.add(
        f"peak RSS at {args.users} users < {TARGET_RSS_RATIO}x at {first}",
        f"{rss_ratio:.2f}x",
        rss_ratio < TARGET_RSS_RATIO,
    )
    targets.print()
    return 1 if args.check and targets.failed else 0


if __name__ == "__main__":
    sys.exit(main())
