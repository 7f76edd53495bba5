"""The alert rules and the dashboard in deploy/: loaded by their tools where these can be had, and
well formed. That every name they use is in /metrics is tests/e2e/test_monitoring_live.py."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.monitoring_files import ALERT_TESTS
from tests.monitoring_files import ALERTS
from tests.monitoring_files import DASHBOARD
from tests.monitoring_files import expressions
from tests.monitoring_files import needs

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (.ci/run fetches Debian's)"
)


@needs_promtool
def test_promtool_loads_the_rules() -> None:
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 7 rules found" in done.stdout


@needs_promtool
def test_each_alert_fires_on_what_it_names_and_only_then() -> None:
    """promtool's unit tests of the rules: parked jobs, a stuck queue, 5xx, GitLab failing, the
    token expiring within 14 days, a token without expiry that never alerts, and drift repairs
    rising."""
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, "test", "rules", ALERT_TESTS.name],
        cwd=ALERT_TESTS.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_and_panel_queries_the_bridges_metrics() -> None:
    found = list(expressions())
    alerts = {where for where, _ in found if where.startswith("alert ")}
    assert alerts == {
        "alert ScimBridgeJobsParked",
        "alert ScimBridgeQueueStuck",
        "alert ScimBridgeQueueUnreadable",
        "alert ScimBridgeServerErrors",
        "alert ScimBridgeGitLabErrors",
        "alert ScimBridgeGitLabTokenExpiring",
        "alert ScimBridgeDriftRepairsRising",
    }
    for where, expression in found:
        assert needs(expression), f"{where} names no scim_bridge metric: {expression}"


def test_the_dashboard_is_importable_grafana_json() -> None:
    """What Grafana's import needs: a uid and title, panels with unique ids, a place on the grid
    and queries against the data source the importer picks."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "scim-bridge" and dashboard["title"] == "scim-bridge"
    assert isinstance(dashboard["schemaVersion"], int)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert {"datasource", "instance"} <= variables
    for panel in dashboard["panels"]:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert 'instance=~"$instance"' in target["expr"], panel["title"]
