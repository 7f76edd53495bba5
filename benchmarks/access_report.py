"""The access report's memory: flat from 1,000 to 10,000 users (issue 14).

    pip install . && python benchmarks/access_report.py [--users 10000] [--first 1000] [--check]

A tenant of `--first` users, then of `--users`, is seeded directly (the store by bulk inserts into
a SQLite file, the GitLab double in this process by its seeding API, no SCIM requests): every user
in the Entra group "Eng Readers" (rule 1, acme/eng reporter), every tenth also in "Eng Leads"
(rule 2, maintainer), each linked to an account with an identity, a member of acme/eng at its
level, the membership managed by the bridge (every twentieth raised from reporter) and named in a
`reconcile.memberships` audit event per 500 users; plus one orphaned account with an identity
and one manual member per 100 users.

At each size `scim-bridge access report --format csv` runs as the operator runs it, its output to
a file; the benchmark prints the rows by kind, the GitLab calls (all of them GETs), and the peak
RSS of the report's process (its `VmHWM`, which the process writes to a file as it exits), then
the ratio of the two peaks: the report streams, so it should not grow with the tenant (target < 1.5x).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC
from datetime import datetime
from pathlib import Path

from harness import Targets
from harness import temporary_directory
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's tests/ package

from scim_bridge.bridge import Bridge
from scim_bridge.settings import settings_from_toml
from scim_bridge.store import audit
from scim_bridge.store.schema import group_members
from scim_bridge.store.schema import group_targets
from scim_bridge.store.schema import groups
from scim_bridge.store.schema import managed_memberships
from scim_bridge.store.schema import user_links
from scim_bridge.store.schema import users
from tests.gitlab_double import GitLabDouble

TOKEN = "glpat-benchmark-admin"
PROVIDER = "openid_connect"
REPORTER, MAINTAINER, DEVELOPER = 20, 40, 30
PATH = "acme/eng"
READERS, LEADS = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"
RULES = f"""
[[groups.rules]]
display_name = "Eng Readers"
gitlab_group = "{PATH}"
access_level = "reporter"

[[groups.rules]]
display_name = "Eng Leads"
gitlab_group = "{PATH}"
access_level = "maintainer"
"""
EVENT_USERS = 500  # users named per reconcile.memberships event, as the reconciler batches them
INSERT_ROWS = 5000
TARGET_RSS_RATIO = 1.5


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--first", type=int, default=1_000, help="users at the first sample")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target fails")
    args = parser.parse_args()
    if not 1 <= args.first <= args.users:
        parser.error("--first must be between 1 and --users")
    return args


# `scim-bridge access report --format csv`, as `python -m scim_bridge` runs it, writing its peak
# RSS (VmHWM, KiB) to the file named by its argument as it exits. Not the ru_maxrss that wait4
# gives: Linux carries a process's maxrss across fork and exec, so the child's would start at
# this benchmark's own size, which grows with the tenant it holds.
REPORT_RECORDING_ITS_PEAK = """
import atexit, re, sys
from pathlib import Path

peak_file = Path(sys.argv[1])

def record_peak():
    status = Path("/proc/self/status").read_text()
    peak_file.write_text(re.search(r"VmHWM:\\s+(\\d+)", status).group(1))

atexit.register(record_peak)
from scim_bridge.cli import main
main(["access", "report", "--format", "csv"], prog_name="scim-bridge")
"""


class Tenant:
    """The store and the double, grown user by user to a size."""

    def __init__(self, directory: Path, double: GitLabDouble) -> None:
        self.double = double
        self.database_url = f"sqlite:///{directory / 'bridge.db'}"
        settings = settings_from_toml({"database": {"url": self.database_url}}, {})
        self.bridge = Bridge(settings)
        self.size = 0
        now = datetime.now(UTC)
        with self.bridge.db.transaction(write=True) as tx:
            for group_id, name, level in ((READERS, "Eng Readers", 20), (LEADS, "Eng Leads", 40)):
                tx.connection.execute(
                    insert(groups).values(
                        id=group_id,
                        display_name=name,
                        display_name_key=name.lower(),
                        external_id=None,
                        data={"displayName": name},
                        created=now,
                        last_modified=now,
                        version=1,
                    )
                )
                tx.connection.execute(
                    insert(group_targets).values(
                        group_id=group_id,
                        gitlab_group=PATH,
                        access_level=level,
                        created_by_bridge=False,
                    )
                )

    def grow(self, size: int) -> None:
        """Users ``self.size`` .. ``size - 1``, with their accounts, memberships and events."""
        now = datetime.now(UTC)
        rows: dict[str, list[dict[str, object]]] = {
            "users": [],
            "links": [],
            "members": [],
            "managed": [],
        }
        changes: list[dict[str, object]] = []
        for index in range(self.size, size):
            name = f"user{index:06d}"
            user_id = f"{index:08d}-0000-0000-0000-000000000000"
            lead = index % 10 == 0
            raised = index % 20 == 5
            level = MAINTAINER if lead or raised else REPORTER
            account = self.double.add_user(
                name, f"{name}@contoso.com", identities=[(PROVIDER, f"oid-{index}")]
            )["id"]
            self.double.add_member(PATH, account, level)
            rows["users"].append(
                {
                    "id": user_id,
                    "user_name": f"{name}@contoso.com",
                    "user_name_key": f"{name}@contoso.com",
                    "external_id": f"oid-{index}",
                    "active": True,
                    "data": {"userName": f"{name}@contoso.com", "externalId": f"oid-{index}"},
                    "created": now,
                    "last_modified": now,
                    "version": 1,
                }
            )
            rows["links"].append(
                {
                    "user_id": user_id,
                    "gitlab_user_id": account,
                    "gitlab_username": name,
                    "source_user_name": f"{name}@contoso.com",
                    "origin": "created",
                    "updated_at": now,
                }
            )
            rows["members"].append({"group_id": READERS, "member_id": user_id, "display": None})
            if lead or raised:
                rows["members"].append({"group_id": LEADS, "member_id": user_id, "display": None})
            rows["managed"].append(
                {
                    "gitlab_group": PATH,
                    "gitlab_user_id": account,
                    "access_level": level,
                    "prior_level": REPORTER if raised else None,
                }
            )
            action = "raised" if raised else "set"
            changes.append({"users": [user_id], "gitlab_user_id": account, "action": action})
            if index % 100 == 99:  # an orphan, and a manual member
                self.double.add_user(
                    f"orphan{index:06d}",
                    f"o{index}@example.com",
                    identities=[(PROVIDER, f"x{index}")],
                )
                manual = self.double.add_user(f"manual{index:06d}", f"m{index}@example.com")
                self.double.add_member(PATH, manual["id"], DEVELOPER)
        tables = (
            (users, "users"),
            (user_links, "links"),
            (group_members, "members"),
            (managed_memberships, "managed"),
        )
        with self.bridge.db.transaction(write=True) as tx:
            for table, key in tables:
                for start in range(0, len(rows[key]), INSERT_ROWS):
                    tx.connection.execute(insert(table), rows[key][start : start + INSERT_ROWS])
            for start in range(0, len(changes), EVENT_USERS):
                detail = {"actions": [], "changes": changes[start : start + EVENT_USERS]}
                audit.record("reconcile.memberships", PATH, detail | {"planned": False})
        self.size = size

    def report(self, directory: Path) -> tuple[int, Counter[str], float]:
        """Run the report as the operator does; (peak RSS KiB, rows by kind, seconds)."""
        config = directory / "bridge.toml"
        config.write_text(RULES, encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCIM_BRIDGE_")}
        env |= {
            "SCIM_BRIDGE_DATABASE_URL": self.database_url,
            "SCIM_BRIDGE_GITLAB_URL": self.double.url,
            "SCIM_BRIDGE_GITLAB_TOKEN": TOKEN,
            "SCIM_BRIDGE_CONFIG": str(config),
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        }
        output = directory / f"report-{self.size}.csv"
        peak_file = directory / f"peak-{self.size}.txt"
        began = time.monotonic()
        with output.open("w", encoding="utf-8") as out:
            process = subprocess.Popen(
                [sys.executable, "-c", REPORT_RECORDING_ITS_PEAK, str(peak_file)],
                env=env,
                stdout=out,
                stderr=subprocess.PIPE,
            )
            process.wait()
        seconds = time.monotonic() - began
        if process.returncode != 0:
            assert process.stderr is not None
            sys.exit(f"the report failed: {process.stderr.read().decode()}")
        with output.open(encoding="utf-8") as text:
            kinds = Counter(row["kind"] for row in csv.DictReader(text))
        return int(peak_file.read_text()), kinds, seconds  # KiB


def main() -> int:
    args = parse()
    print(
        f"access report: {args.first} then {args.users} users in {PATH} (two rules), "
        "1% orphans and 1% manual members",
        flush=True,
    )
    peaks: list[tuple[int, int]] = []
    with (
        temporary_directory("scim-bridge-access-report-") as temporary,
        GitLabDouble(TOKEN) as double,
    ):
        directory = Path(temporary)
        double.add_group("acme")
        double.add_group(PATH)
        tenant = Tenant(directory, double)
        for size in (args.first, args.users):
            tenant.grow(size)
            double.clear_requests()
            peak, kinds, seconds = tenant.report(directory)
            methods = Counter(request.method for request in double.requests)
            peaks.append((size, peak))
            print(
                f"  {size} users: rows {kinds['membership']} memberships, {kinds['orphan']} "
                f"orphans, {kinds['manual']} manual; GitLab calls {sum(methods.values())} "
                f"({', '.join(f'{n} {m}' for m, n in sorted(methods.items()))}); "
                f"peak RSS {peak / 1024:.1f} MiB; {seconds:.1f} s (shares the machine)",
                flush=True,
            )
            expected = (size, size // 100, size // 100)
            found = (kinds["membership"], kinds["orphan"], kinds["manual"])
            if found != expected or set(methods) != {"GET"}:
                print(f"  UNEXPECTED: rows {found}, wanted {expected}; methods {dict(methods)}")
                return 1
        tenant.bridge.db.dispose()
    (first, rss_first), (last, rss_last) = peaks
    ratio = rss_last / max(1, rss_first)
    print(
        f"peak RSS of the report process (VmHWM): at {first} users {rss_first / 1024:.1f} MiB; "
        f"at {last} users {rss_last / 1024:.1f} MiB; ratio {ratio:.2f}"
    )
    targets = Targets(issue=14)
    targets.add(
        f"peak RSS at {last} users < {TARGET_RSS_RATIO}x at {first}",
        f"{ratio:.2f}x",
        ratio < TARGET_RSS_RATIO,
    )
    targets.print()
    return 1 if args.check and targets.failed else 0


if __name__ == "__main__":
    sys.exit(main())
