"""How a group PATCH scales with the group's size: one member added to (and removed from) a group
of 50,000, against the same PATCH on a group of 10, in the same run.

    pip install . && python benchmarks/group_patch.py [--members 50000] [--rounds 30] [--database-url URL]

It drives the Flask app in-process (no network), in dry-run (GitLab calls are planned, so GitLab's
own latency is left out: this measures the bridge), with a rule mapping both groups to a GitLab
group so the whole reconcile path runs. It reports median and p95 latency and the peak memory a
PATCH allocates (tracemalloc), each as a ratio of large to small. The group is filled straight into
the database (setup, not measured); its members are then settled by the worker before timing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid

from sqlalchemy import insert

from scim_bridge import clock
from scim_bridge.app import create_app
from scim_bridge.bridge import Bridge
from scim_bridge.settings import settings_from_toml
from scim_bridge.store import memberships
from scim_bridge.store.schema import group_members
from scim_bridge.store.schema import user_links

PATCH_SCHEMA = ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]
BUDGET_MS = 200.0


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    return parser.parse_args()


class Bench:
    def __init__(self, database_url: str) -> None:
        rules = [
            {"display_name": name, "gitlab_group": "acme/engineering", "access_level": 30}
            for name in ("Big", "Small")
        ]
        settings = settings_from_toml(
            {"database": {"url": database_url}, "groups": {"rules": rules}}
        )
        self.bridge = Bridge(settings)
        self.app = create_app(bridge=self.bridge)
        token = self.bridge.tokens.create(f"bench-{uuid.uuid4().hex[:6]}")
        self.http = self.app.test_client()
        self.headers = {"Authorization": f"Bearer {token}"}
        self.next_id = 100

    def group(self, name: str, members: int) -> str:
        body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name}
        response = self.http.post("/scim/v2/Groups", json=body, headers=self.headers)
        assert response.status_code == 201, response.json
        group_id: str = response.json["id"]
        ids = [f"member-{name}-{i}" for i in range(members)]
        rows = [{"group_id": group_id, "member_id": member_id} for member_id in ids]
        with self.bridge.db.transaction(write=True) as tx:
            for start in range(0, len(rows), 5000):
                tx.connection.execute(insert(group_members), rows[start : start + 5000])
            memberships.note_changes(group_id, ids)
        self.link(ids)
        while self.bridge.runner.run_due(limit=50):  # settle: map the group, look at every member
            pass
        return group_id

    def link(self, user_ids: list[str]) -> None:
        """Give users GitLab accounts, so every member goes through the whole decision."""
        now = clock.now()
        rows = [
            {"user_id": user_id, "gitlab_user_id": self.next_id + i, "updated_at": now}
            for i, user_id in enumerate(user_ids)
        ]
        self.next_id += len(rows)
        with self.bridge.db.transaction(write=True) as tx:
            for start in range(0, len(rows), 5000):
                tx.connection.execute(insert(user_links), rows[start : start + 5000])

    def patch(self, group_id: str, op: str, member: str) -> float:
        operation = {"op": op, "path": "members", "value": [{"value": member}]}
        body = {"schemas": PATCH_SCHEMA, "Operations": [operation]}
        started = time.perf_counter()
        response = self.http.patch(f"/scim/v2/Groups/{group_id}", json=body, headers=self.headers)
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 204, response.get_data(as_text=True)
        return elapsed

    def round_trip(self, group_id: str) -> tuple[float, float]:
        member = f"new-{uuid.uuid4().hex[:8]}"
        self.link([member])
        return self.patch(group_id, "Add", member), self.patch(group_id, "Remove", member)

    def peak_memory(self, group_id: str) -> int:
        tracemalloc.start()
        tracemalloc.reset_peak()
        self.round_trip(group_id)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return peak


def main() -> int:
    args = parse()
    with tempfile.TemporaryDirectory() as directory:
        url = args.database_url or f"sqlite:///{directory}/bench.db"
        bench = Bench(url)
        print(f"setting up on {url.split('://')[0]}: groups of 10 and {args.members:,} members ...")
        small = bench.group("Small", 10)
        big = bench.group("Big", args.members)
        for group_id in (small, big):  # warm up
            bench.round_trip(group_id)
        timings: dict[str, dict[str, list[float]]] = {
            size: {"add": [], "remove": []} for size in ("small", "big")
        }
        for _ in range(args.rounds):
            for size, group_id in (("small", small), ("big", big)):
                added, removed = bench.round_trip(group_id)
                timings[size]["add"].append(added)
                timings[size]["remove"].append(removed)
        memory = {size: bench.peak_memory(gid) for size, gid in (("small", small), ("big", big))}
        bench.bridge.db.dispose()

    def p95(values: list[float]) -> float:
        return sorted(values)[max(0, int(len(values) * 0.95) - 1)]

    print(
        f"\n{'PATCH, one member':22} {'10 members':>14} {f'{args.members:,} members':>16} {'ratio':>7}"
    )
    verdict = True
    for op in ("add", "remove"):
        small_median = statistics.median(timings["small"][op])
        big_median = statistics.median(timings["big"][op])
        print(
            f"{op + ' median (ms)':22} {small_median:14.1f} {big_median:16.1f} "
            f"{big_median / small_median:7.2f}"
        )
        small_p95, big_p95 = p95(timings["small"][op]), p95(timings["big"][op])
        print(f"{op + ' p95 (ms)':22} {small_p95:14.1f} {big_p95:16.1f} {big_p95 / small_p95:7.2f}")
        verdict &= big_median < BUDGET_MS
    small_kib, big_kib = memory["small"] / 1024, memory["big"] / 1024
    print(f"{'peak memory (KiB)':22} {small_kib:14.0f} {big_kib:16.0f} {big_kib / small_kib:7.2f}")
    print(
        f"\nmedian under {BUDGET_MS:.0f} ms for {args.members:,} members: "
        f"{'yes' if verdict else 'NO'}; memory ratio {big_kib / small_kib:.2f} (1.0 = flat)"
    )
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
