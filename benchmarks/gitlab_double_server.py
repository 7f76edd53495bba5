"""The GitLab double (tests/gitlab_double) in a process of its own, for the benchmarks.

    python benchmarks/gitlab_double_server.py [--latency-ms 100] [--group acme/engineering ...]
                                              [--down]

A process of its own so the double's work does not share a GIL with the load generator or the
bridge. Every call first waits the latency (a fault rule on every request), as a remote GitLab
would. It prints one JSON line on stdout, ``{"url": ..., "token": ...}`` (the admin token, for the
bridge's ``SCIM_BRIDGE_GITLAB_TOKEN``), then answers one JSON line per command read on stdin:

- ``latency MS``: every later call waits MS milliseconds;
- ``down`` / ``up``: every call answers 503 (GitLab unreachable) / GitLab is back;
- ``stats``: requests answered so far (by status), internal errors, this process's CPU seconds;
- ``quit``: stop.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from werkzeug.serving import WSGIRequestHandler
from werkzeug.serving import make_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's tests/ package

from tests.gitlab_double import GitLabDouble


class QuietHandler(WSGIRequestHandler):
    """No access log: thousands of lines would cost the double's CPU, and say nothing."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument(
        "--group", action="append", default=[], help="a group path to seed (parents first)"
    )
    parser.add_argument("--down", action="store_true", help="start answering 503 to everything")
    return parser.parse_args()


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def stats(double: GitLabDouble) -> dict[str, Any]:
    records = double.requests
    return {
        "requests": len(records),
        "by_status": dict(Counter(str(record.status) for record in records)),
        "internal_errors": len(double.internal_errors),
        "cpu_seconds": round(cpu_seconds(), 3),
    }


def serve(double: GitLabDouble) -> str:
    """Serve the double's app threaded, one thread per connection, as GitLabDouble.start does."""
    server = make_server("127.0.0.1", 0, double.app, threaded=True, request_handler=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True, name="gitlab-double").start()
    return f"http://127.0.0.1:{server.server_port}"


def main() -> None:
    args = parse()
    double = GitLabDouble(admin_token=f"glpat-{secrets.token_urlsafe(20)}")
    for path in args.group:
        double.add_group(path)
    rule = double.faults.add(latency=args.latency_ms / 1000.0)  # every method, every path
    if args.down:
        double.down()
    print(json.dumps({"url": serve(double), "token": double.admin_token}), flush=True)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        answer: dict[str, Any] = {"ok": True}
        if command == "latency":
            rule.latency = float(argument) / 1000.0
        elif command == "down":
            double.down()
        elif command == "up":
            double.up()
        elif command == "stats":
            answer = stats(double)
        elif command == "quit":
            break
        else:
            answer = {"ok": False, "error": f"unknown command {command!r}"}
        print(json.dumps(answer), flush=True)
    double.app.stopping.set()  # release delayed requests


if __name__ == "__main__":
    main()
