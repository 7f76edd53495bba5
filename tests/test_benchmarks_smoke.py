"""The issue 13 benchmarks still run: each at a tiny size, exiting 0 and printing its figure lines.

Performance figures are never asserted here (they depend on the machine); only that each benchmark
completes, prints what it promises, and that the work it sent reached GitLab.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run(script: str, *args: str) -> str:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SCIM_BRIDGE_")}
    env["SCIM_BRIDGE_SERVER_WORKERS"] = "1"  # one gunicorn worker to start: the smoke is not timed
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_load_prints_each_case_and_target() -> None:
    out = run(
        "load.py",
        *("--clients", "4", "--get-requests", "24", "--writes", "6", "--idle-seconds", "1"),
    )
    for line in ("GitLab latency 0 ms", "GitLab latency 100 ms", "hello-world GET /"):
        assert line in out
    for case in ("GET ?filter=userName", "POST /Users", "PATCH /Groups add-member"):
        assert out.count(f"\n  {case:<26} ") == 2, out  # a row in each latency's table
        assert f"{case}: answers" in out
    assert "GitLab calls per op while answering: POST /users" in out
    if sys.platform == "linux":  # read from /proc
        assert out.count("bridge CPU per op: ") == 6, out  # each case at each latency
    for target in ("filter GET >= 0.5x", "POST /Users overhead", "write transactions per"):
        assert target in out
    assert "targets (issue 13)" in out


def test_initial_sync_completes_and_prints_its_figures() -> None:
    out = run(
        "initial_sync.py",
        *("--users", "12", "--groups", "2", "--memberships", "16", "--batch", "5"),
        *("--rss-at", "4", "--clients", "4", "--latency-ms", "20"),
    )
    for figure in ("wall time:", "GitLab calls:", "floor", "peak RSS", "after 4 users"):
        assert figure in out
    assert "in GitLab: 12/12 accounts with their identity, 16/16 memberships" in out
    assert re.search(r"every account and membership in GitLab +0 missing +PASS", out), out


def test_drain_empties_the_backlog_and_prints_parallelism() -> None:
    out = run("drain.py", "--users", "6", "--clients", "3", "--latency-ms", "20")
    assert "while down: 6 POST /Users" in out
    assert "effective parallelism" in out
    assert "in GitLab: 6/6 accounts with their identity" in out


def test_access_report_prints_rows_calls_and_its_memory_ratio() -> None:
    out = run("access_report.py", "--users", "300", "--first", "100")
    assert "100 users: rows 100 memberships, 1 orphans, 1 manual" in out, out
    assert "300 users: rows 300 memberships, 3 orphans, 3 manual" in out, out
    assert "peak RSS of the report process (VmHWM): at 100 users" in out
    assert re.search(r"GitLab calls \d+ \(\d+ GET\)", out), out
    assert "peak RSS at 300 users < 1.5x at 100" in out
