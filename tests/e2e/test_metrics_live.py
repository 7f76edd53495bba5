"""The real `scim-bridge serve` with two gunicorn workers: /metrics adds up what every worker
served, and every log line (gunicorn's and the app's) is JSON carrying the request id."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ADMIN_TOKEN
from tests.conftest import run_cli
from tests.e2e.live_server import Server

pytestmark = pytest.mark.slow

USERS_ROUTE = "/scim/v2/Users"
# A filter holds an email: the access log must keep the path only.
QUERY = '?filter=userName eq "hidden.person@contoso.com"'


def counted(base: str, status: int) -> float:
    """``GET /scim/v2/Users`` answers with ``status``, as one scrape (of either worker) reports."""
    text = requests.get(f"{base}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "scim_bridge_http_requests_total" and sample.labels == {
                "method": "GET",
                "route": USERS_ROUTE,
                "status": str(status),
            }:
                return sample.value
    return 0.0


def json_lines(log: Path) -> list[dict[str, Any]]:
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def wait_for(log: Path, found: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    """The log's JSON lines once ``found`` holds (gunicorn writes the access line after answering)."""
    deadline = time.monotonic() + 10
    while True:
        entries = json_lines(log)
        if found(entries) or time.monotonic() > deadline:
            return entries
        time.sleep(0.05)


def test_counters_add_up_across_workers_and_log_lines_are_json(
    environment: dict[str, str], servers: list[Server], tmp_path: Path
) -> None:
    secret = run_cli(environment, "tokens", "create", "entra").stdout.split("token: ")[1].strip()
    server = Server(environment, tmp_path, workers=2)
    servers.append(server)
    server.start()
    log = Path(server.log.name)
    run = uuid.uuid4().hex[:8]

    sent: list[str] = []
    pids: set[int] = set()
    # Fresh connections, until both workers have answered some (then at least 20 in all).
    while len(sent) < 20 or (len(pids) < 2 and len(sent) < 200):
        request_id = f"live-{run}-{len(sent)}"
        response = requests.get(
            f"{server.base}{USERS_ROUTE}{QUERY}",
            headers={"Authorization": f"Bearer {secret}", "X-Request-Id": request_id},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        assert response.headers["X-Request-Id"] == request_id
        sent.append(request_id)
        if len(sent) % 10 == 0:
            entries = wait_for(
                log, lambda e: sum(x.get("request_id") in sent for x in e) >= len(sent)
            )
            pids = {entry["pid"] for entry in entries if entry.get("request_id") in sent}
    assert len(pids) == 2, f"one worker answered all {len(sent)} requests"
    refused_id = f"live-{run}-refused"
    refused = requests.get(
        f"{server.base}{USERS_ROUTE}",
        headers={"Authorization": "Bearer not-a-token", "X-Request-Id": refused_id},
        timeout=30,
    )
    assert refused.status_code == 401

    # Whichever worker answers the scrape, it reports what both served.
    for _ in range(6):
        assert counted(server.base, 200) == len(sent)
        assert counted(server.base, 401) == 1

    entries = wait_for(
        log, lambda e: any(x.get("request_id") == refused_id and x.get("status") for x in e)
    )
    access = {
        entry["request_id"]: entry
        for entry in entries
        if entry["logger"] == "gunicorn.access" and entry["request_id"]
    }
    for request_id in sent:
        line = access[request_id]
        assert (line["method"], line["path"], line["status"]) == ("GET", USERS_ROUTE, 200)
        assert line["level"] == "INFO" and line["time"].endswith("Z")
    assert access[refused_id]["status"] == 401
    app_lines = [entry for entry in entries if entry["logger"].startswith("scim_bridge.")]
    assert any(
        entry["request_id"] == refused_id and "refused" in entry["message"] for entry in app_lines
    ), "the app's own line about the refusal carries the request id"
    assert any(
        entry["logger"] == "gunicorn.error" and "Booting worker" in entry["message"]
        for entry in entries
    )
    text = log.read_text(encoding="utf-8")
    assert "contoso" not in text and secret not in text


def token_expiry(base: str) -> float | None:
    text = requests.get(f"{base}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "scim_bridge_gitlab_token_expiry_timestamp_seconds":
                return sample.value
    return None


def test_the_worker_reads_the_gitlab_token_and_every_worker_reports_its_expiry(
    environment: dict[str, str], servers: list[Server], tmp_path: Path, gitlab: Any
) -> None:
    """The background worker reads the token at start; gunicorn's workers, which answer the
    scrape, report what it read (prometheus_client's multiprocess files, most recent value)."""
    day = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=29)
    gitlab.set_token_expiry(ADMIN_TOKEN, day)
    server = Server(environment, tmp_path, workers=2)
    servers.append(server)
    server.start()
    expected = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()
    deadline = time.monotonic() + 30
    while token_expiry(server.base) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    for _ in range(6):  # whichever worker answers the scrape
        assert token_expiry(server.base) == expected
    lines = wait_for(
        Path(server.log.name), lambda e: any("expires on" in x.get("message", "") for x in e)
    )
    assert any(
        entry["level"] == "WARNING" and f"expires on {day.isoformat()}" in entry["message"]
        for entry in lines
    )
