"""Every metric and label that deploy/'s alert rules and dashboard query is in a real `serve`'s
/metrics once it has answered Entra and called GitLab (tests/monitoring_files.py reads them)."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import run_cli
from tests.e2e.live_server import Server
from tests.monitoring_files import expressions
from tests.monitoring_files import needs

pytestmark = pytest.mark.slow

USER = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "userName": "monitored.person@contoso.com",
    "externalId": "oid-monitored",
    "active": True,
    "name": {"givenName": "Monitored", "familyName": "Person"},
    "emails": [{"value": "monitored.person@contoso.com", "type": "work", "primary": True}],
}


def exposed(base: str) -> dict[str, set[str]]:
    """Each sample name in /metrics, with the label names it carries."""
    labels: dict[str, set[str]] = defaultdict(set)
    text = requests.get(f"{base}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels[sample.name] |= set(sample.labels)
    return labels


def test_every_name_the_monitoring_files_query_is_in_metrics(
    environment: dict[str, str], servers: list[Server], tmp_path: Path, gitlab: Any
) -> None:
    secret = run_cli(environment, "tokens", "create", "entra").stdout.split("token: ")[1].strip()
    server = Server(environment, tmp_path)
    servers.append(server)
    server.start()
    headers = {"Authorization": f"Bearer {secret}"}
    created = requests.post(
        f"{server.base}/scim/v2/Users",
        json=USER,
        headers={**headers, "Content-Type": "application/scim+json"},
        timeout=60,
    )
    assert created.status_code == 201, created.text
    assert requests.get(f"{server.base}/scim/v2/Users", headers=headers, timeout=30).ok

    wanted: dict[str, set[str]] = defaultdict(set)
    for _, expression in expressions():
        for metric, labels in needs(expression).items():
            wanted[metric] |= labels
    deadline = time.monotonic() + 30
    metrics = exposed(server.base)
    while not set(wanted) <= set(metrics) and time.monotonic() < deadline:
        time.sleep(0.2)  # the worker reads the GitLab token as it starts
        metrics = exposed(server.base)
    missing = sorted(set(wanted) - set(metrics))
    assert not missing, f"queried but not in /metrics: {missing}"
    for metric, labels in wanted.items():
        assert labels <= metrics[metric], f"{metric} lacks {sorted(labels - metrics[metric])}"
