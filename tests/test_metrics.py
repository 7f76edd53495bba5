"""``/metrics``: Prometheus text without a token, moving with the requests and GitLab calls served,
the job queue read from the database, and nothing in it that names a user, a credential or an id.

The counters live for the whole test process, so each test compares before and after.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from scim_bridge import clock
from scim_bridge.metrics.gitlab_calls import path_template
from scim_bridge.store import jobs as job_module
from scim_bridge.store.schema import jobs
from tests.conftest import ADMIN_TOKEN
from tests.conftest import BridgeUnderTest
from tests.conftest import entra_user

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(bridge: BridgeUnderTest) -> Samples:
    """GET /metrics without credentials; every sample by (name, labels)."""
    response = bridge.app.test_client().get("/metrics")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    assert response.mimetype_params.get("version") == "0.0.4"
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests_counted(samples: Samples, method: str, route: str, status: int) -> float:
    labels = {"method": method, "route": route, "status": str(status)}
    return value(samples, "scim_bridge_http_requests_total", **labels)


def test_metrics_need_no_token_and_parse_as_prometheus_text(make_bridge: Any) -> None:
    bridge = make_bridge()
    samples = scrape(bridge)
    names = {name for name, _ in samples}
    assert {
        "scim_bridge_jobs_pending",
        "scim_bridge_jobs_parked",
        "scim_bridge_jobs_oldest_due_age_seconds",
    } <= names
    # The scrape before counts as a request of its own.
    assert requests_counted(scrape(bridge), "GET", "/metrics", 200) >= 1


def test_scim_requests_are_counted_by_route_template_and_status(make_bridge: Any) -> None:
    bridge = make_bridge()
    before = scrape(bridge)
    created = bridge.scim.post("/Users", entra_user())
    assert created.status_code == 201
    assert bridge.scim.get(f"/Users/{created.json['id']}").status_code == 200
    refused = bridge.app.test_client().get(
        "/scim/v2/Users", headers={"Authorization": "Bearer not-a-token"}
    )
    assert refused.status_code == 401
    assert bridge.app.test_client().get("/no/such/page").status_code == 404
    after = scrape(bridge)

    for method, route, status in (
        ("POST", "/scim/v2/Users", 201),
        ("GET", "/scim/v2/Users/<resource_id>", 200),
        ("GET", "/scim/v2/Users", 401),
        ("GET", "<unmatched>", 404),
    ):
        counted = requests_counted(after, method, route, status)
        assert counted == requests_counted(before, method, route, status) + 1, (route, status)
    duration = "scim_bridge_http_request_duration_seconds_count"
    labels = {"method": "POST", "route": "/scim/v2/Users"}
    assert value(after, duration, **labels) == value(before, duration, **labels) + 1


def test_rate_limited_answers_are_counted(make_bridge: Any) -> None:
    # A low rate, so that 120 requests overrun it however slowly a loaded machine serves them.
    bridge = make_bridge(server={"rate_limit_per_second": 5, "rate_limit_burst": 5})
    before = scrape(bridge)
    statuses = [bridge.scim.get("/Users").status_code for _ in range(120)]
    assert 429 in statuses
    after = scrape(bridge)
    for status in (200, 429):
        counted = requests_counted(after, "GET", "/scim/v2/Users", status)
        expected = requests_counted(before, "GET", "/scim/v2/Users", status)
        assert counted == expected + statuses.count(status)


def test_gitlab_calls_are_counted_by_endpoint_template_and_status(
    make_bridge: Any, gitlab: Any
) -> None:
    bridge = make_bridge(gitlab)
    name = "scim_bridge_gitlab_calls_total"
    created_user = {"endpoint": "POST /users", "status": "201", "outcome": "ok"}
    before = scrape(bridge)
    assert bridge.scim.post("/Users", entra_user("Metered.User@contoso.com")).status_code == 201
    after = scrape(bridge)
    assert value(after, name, **created_user) == value(before, name, **created_user) + 1
    endpoints = {dict(labels)["endpoint"] for sample, labels in after if sample == name}
    assert "GET /users" in endpoints
    assert all(
        "?" not in endpoint and not any(c.isdigit() for c in endpoint) for endpoint in endpoints
    )


def test_gitlab_paths_lose_their_ids_and_queries() -> None:
    assert path_template("/users?search=jane@contoso.com") == "/users"
    assert path_template("/users/42/block") == "/users/:id/block"
    assert path_template("/groups/7/members/42") == "/groups/:id/members/:id"
    assert path_template("/groups/7/members/all?user_ids=1,2") == "/groups/:id/members/all"
    assert path_template("/groups/acme%2Fengineering") == "/groups/:id"
    assert path_template("/personal_access_tokens/self") == "/personal_access_tokens/self"


def test_queue_gauges_read_the_database(make_bridge: Any) -> None:
    bridge = make_bridge()
    empty = scrape(bridge)
    assert value(empty, "scim_bridge_jobs_pending") == 0
    assert value(empty, "scim_bridge_jobs_oldest_due_age_seconds") == 0
    db, queue = bridge.bridge.db, bridge.bridge.queue
    with db.transaction(write=True):
        job_module.enqueue("user", "waiting")
        job_module.enqueue("user", "later")
        job_module.enqueue("user", "refused")
    (refused,) = [job for job in queue.list() if job.entity_id == "refused"]
    queue.park(refused, "GitLab refused")
    now = clock.now()
    with db.transaction(write=True) as tx:
        tx.connection.execute(
            update(jobs)
            .where(jobs.c.entity_id == "waiting")
            .values(created_at=now - timedelta(minutes=10), run_after=now - timedelta(minutes=2))
        )
        tx.connection.execute(
            update(jobs)
            .where(jobs.c.entity_id == "later")
            .values(run_after=now + timedelta(hours=1))
        )

    samples = scrape(bridge)
    assert value(samples, "scim_bridge_jobs_pending") == 2
    assert value(samples, "scim_bridge_jobs_due") == 1
    assert value(samples, "scim_bridge_jobs_parked") == 1
    assert 600 <= value(samples, "scim_bridge_jobs_oldest_due_age_seconds") < 660
    assert 120 <= value(samples, "scim_bridge_jobs_oldest_due_wait_seconds") < 180
    assert value(samples, "scim_bridge_jobs_stats_ok") == 1


def test_metrics_name_no_user_credential_or_id(make_bridge: Any, gitlab: Any) -> None:
    bridge = make_bridge(gitlab)
    request_id = "rid-metrics-0c7e51"
    user = entra_user("Secretive.Person@contoso.com", displayName="Secretive Person")
    created = bridge.scim.post("/Users", user, headers={"X-Request-Id": request_id})
    assert created.status_code == 201
    bridge.scim.get(f'/Users?filter=userName eq "{user["userName"]}"')
    bridge.scim.get(f"/Users/{created.json['id']}")
    text = bridge.app.test_client().get("/metrics").get_data(as_text=True)
    forbidden = [
        "Secretive",
        "secretive.person",
        "contoso",
        user["externalId"],
        created.json["id"],
        request_id,
        bridge.token,
        ADMIN_TOKEN,
    ]
    assert [word for word in forbidden if word.lower() in text.lower()] == []


def test_database_transactions_are_counted_by_mode(make_bridge: Any) -> None:
    """Outermost transactions only: a joined one is part of the transaction it joins."""
    bridge = make_bridge()
    db = bridge.bridge.db
    before = scrape(bridge)
    with db.transaction(write=True), db.transaction(write=True):
        pass
    with db.transaction(write=False):
        pass
    after = scrape(bridge)

    def grew(mode: str) -> float:
        name = "scim_bridge_db_transactions_total"
        return value(after, name, mode=mode) - value(before, name, mode=mode)

    # A scrape reads the queue gauges after its counters: the first scrape's read shows here.
    assert grew("write") == 1
    assert grew("read") == 2
