"""What the monitoring files in deploy/ ask of /metrics: the metric and label names their PromQL
names (shared by tests/test_monitoring_files.py and tests/e2e/test_monitoring_live.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
ALERTS = DEPLOY / "prometheus" / "scim-bridge-alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "scim-bridge-alerts.test.yml"
DASHBOARD = DEPLOY / "grafana" / "scim-bridge-dashboard.json"

METRIC = re.compile(r"\bscim_bridge_[a-z0-9_]+\b")
SELECTOR = re.compile(r"\{([^}]*)\}")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
MATCHER = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
# Added by Prometheus when it scrapes, not by the bridge.
TARGET_LABELS = frozenset({"instance", "job"})


def expressions() -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every alert rule and every dashboard query."""
    rules = yaml.safe_load(ALERTS.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            yield f"alert {rule['alert']}", str(rule["expr"])
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield f"panel {panel['title']!r}", str(target["expr"])
    for variable in dashboard["templating"]["list"]:
        query = variable.get("definition")
        if query:
            yield f"variable {variable['name']}", str(query)


def needs(expression: str) -> dict[str, set[str]]:
    """Each metric an expression names, with the label names it selects or groups by there."""
    metrics = set(METRIC.findall(expression))
    labels = {
        name for selector in SELECTOR.findall(expression) for name in MATCHER.findall(selector)
    }
    labels |= {
        name.strip()
        for grouping in GROUPING.findall(expression)
        for name in grouping.split(",")
        if name.strip()
    }
    labels -= TARGET_LABELS
    return {metric: set(labels) for metric in metrics}
