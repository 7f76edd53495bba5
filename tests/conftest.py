"""Shared fixtures: a database per test (SQLite always, PostgreSQL when configured), the GitLab
double on a real port, and the bridge's Flask app with a SCIM client that speaks HTTP to it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy import event
from sqlalchemy import text

from scim_bridge.app import create_app
from scim_bridge.bridge import Bridge
from scim_bridge.settings import Settings
from scim_bridge.settings import settings_from_toml
from scim_bridge.store import audit
from scim_bridge.store import migrate
from scim_bridge.store.audit_verify import verify as verify_audit_chain
from scim_bridge.store.db import MODE_OPTION
from scim_bridge.store.db import Database
from tests.gitlab_double import GitLabDouble

POSTGRES_URL = os.environ.get("SCIM_BRIDGE_TEST_POSTGRES_URL")
# Distinctive, so a leak into a record, log, message or the database is easy to spot.
ADMIN_TOKEN = "glpat-SECRET-admin-never-print-me"
SCIM_JSON = "application/scim+json"
# The rule the membership tests map: Entra's "GitLab Developers" to acme/dev as developer.
DEVELOPERS_RULE_TOML = """
[[groups.rules]]
display_name = "GitLab Developers"
gitlab_group = "acme/dev"
access_level = "developer"
"""
# The user property whose values are printed at the end of the run (conformance checkers' counts).
SUMMARY = "summary"
_summary_lines: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect the summary lines of each test, on the controller when xdist runs the tests."""
    if report.when == "call":
        _summary_lines.extend(
            str(value) for name, value in report.user_properties if name == SUMMARY
        )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _summary_lines:
        terminalreporter.section("checkers")
        for line in sorted(_summary_lines):
            terminalreporter.write_line(line)


def _postgres_schema_url(base: str, schema: str) -> str:
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(
                not POSTGRES_URL, reason="SCIM_BRIDGE_TEST_POSTGRES_URL is not set"
            ),
        ),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bridge.db'}"
        return
    assert POSTGRES_URL
    schema = f"t_{uuid.uuid4().hex[:16]}"
    engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield _postgres_schema_url(POSTGRES_URL, schema)
    finally:
        with engine.connect() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


@pytest.fixture
def gitlab() -> Iterator[GitLabDouble]:
    """The GitLab double on a real port, with an admin token; it must end without a bug of its own."""
    with GitLabDouble(admin_token=ADMIN_TOKEN) as running:
        yield running
        assert running.internal_errors == []


def cli_environment(database_url: str) -> dict[str, str]:
    """The environment an operator's command runs in: only this database configured."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("SCIM_BRIDGE_")}
    clean["SCIM_BRIDGE_DATABASE_URL"] = database_url
    clean["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return clean


def run_cli(
    env: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``scim-bridge ARGS`` in a new process, as the operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "scim_bridge", *args],
        env=env,
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )


def make_settings(database_url: str, gitlab_url: str | None = None, **sections: Any) -> Settings:
    """Settings as the operator would write them, loaded by the schemas production validates with;
    ``sections`` then override single fields, as test knobs (a few beyond an operator's range)."""
    document: dict[str, Any] = {
        "database": {"url": database_url},
        "gitlab": {"timeout_seconds": 2.0, **({"url": gitlab_url} if gitlab_url else {})},
        "reconcile": {"inline_deadline_seconds": 5.0, "backoff_base_seconds": 0.01},
        # Refusals are not padded, and a test client sending as fast as it can is not throttled,
        # nor are its failed authentications; tests/auth/test_guards.py and test_front_door.py
        # check these guards with the settings an operator would use.
        "auth": {"failure_floor_ms": 0, "failures_per_minute": 100_000},
        "server": {"rate_limit_per_second": 1e6, "rate_limit_burst": 1_000_000},
    }
    environ = {"SCIM_BRIDGE_GITLAB_TOKEN": ADMIN_TOKEN} if gitlab_url else {}
    settings = settings_from_toml(document, environ)
    for name, values in sections.items():
        settings = replace(settings, **{name: replace(getattr(settings, name), **values)})
    return settings


class ScimClient:
    """Speaks SCIM to the app as Entra does: bearer token, ``application/scim+json`` bodies."""

    def __init__(self, app: Any, token: str) -> None:
        self.http = app.test_client()
        self.token = token

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> Any:
        all_headers = {"Authorization": f"Bearer {self.token}"}
        if body is not None:
            all_headers["Content-Type"] = f"{SCIM_JSON}; charset=utf-8"
        all_headers.update(headers or {})
        return self.http.open(
            f"/scim/v2{path}", method=method, json=body, headers=all_headers, **kw
        )

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> Any:
        return self.request("POST", path, body, **kw)

    def put(self, path: str, body: Any, **kw: Any) -> Any:
        return self.request("PUT", path, body, **kw)

    def patch(self, path: str, operations: list[dict[str, Any]], **kw: Any) -> Any:
        body = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": operations,
        }
        return self.request("PATCH", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)


class BridgeUnderTest:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bridge = Bridge(settings)
        self.app = create_app(bridge=self.bridge)
        names = {token.name for token in self.bridge.tokens.list()}
        self.token = self.bridge.tokens.create(
            "entra" if "entra" not in names else f"entra-{len(names)}"
        )
        self.scim = ScimClient(self.app, self.token)

    def run_worker(self, rounds: int = 20) -> None:
        """Let the background worker run every due job (ignoring backoff delays)."""
        from sqlalchemy import update

        from scim_bridge.store.schema import jobs

        for _ in range(rounds):
            with self.bridge.db.transaction(write=True) as tx:
                tx.connection.execute(update(jobs).values(run_after=jobs.c.created_at))
            if not self.bridge.runner.run_due(limit=100):
                return

    def close(self) -> None:
        self.bridge.db.dispose()


@pytest.fixture
def make_bridge(database_url: str) -> Iterator[Callable[..., BridgeUnderTest]]:
    made: list[BridgeUnderTest] = []

    def factory(gitlab: GitLabDouble | None = None, /, **sections: Any) -> BridgeUnderTest:
        settings = make_settings(database_url, gitlab.url if gitlab else None, **sections)
        bridge = BridgeUnderTest(settings)
        made.append(bridge)
        return bridge

    yield factory
    for bridge in made:
        bridge.close()


def incompressible(size: int) -> str:
    """At least ``size`` characters no compression shrinks: PostgreSQL compresses "xxx…" under
    its index limit, so only text like this proves a length check."""
    return "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(size // 64 + 1))


@contextmanager
def engine_listener(bridge: BridgeUnderTest, name: str, listener: Any) -> Iterator[None]:
    """``listener`` on the bridge's engine event ``name`` for the block."""
    engine = bridge.bridge.db.engine
    event.listen(engine, name, listener)
    try:
        yield
    finally:
        event.remove(engine, name, listener)


@contextmanager
def sql_statements(bridge: BridgeUnderTest) -> Iterator[list[str]]:
    """The SQL statements the bridge runs meanwhile: query counts are proven, not timed."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    with engine_listener(bridge, "before_cursor_execute", note):
        yield seen


@contextmanager
def transactions(bridge: BridgeUnderTest) -> Iterator[Counter[str]]:
    """The transactions the bridge begins meanwhile, by mode ("write" or "read")."""
    counted: Counter[str] = Counter()

    def begun(connection: Any) -> None:
        counted[connection.get_execution_options().get(MODE_OPTION, "other")] += 1

    with engine_listener(bridge, "begin", begun):
        yield counted


def entra_user(user_name: str = "Jane.Doe@contoso.com", **overrides: Any) -> dict[str, Any]:
    """A POST /Users body as Entra sends it (entra.md §1.4)."""
    body: dict[str, Any] = {
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        ],
        "externalId": overrides.pop("externalId", str(uuid.uuid4())),
        "userName": user_name,
        "active": True,
        "displayName": overrides.pop("displayName", "Jane Doe"),
        "emails": [{"primary": True, "type": "work", "value": user_name.lower()}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Jane Doe", "familyName": "Doe", "givenName": "Jane"},
        "roles": [],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "1001",
            "department": "Engineering",
        },
    }
    body.update(overrides)
    return body


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """The store's database, migrated, without a bridge around it."""
    database = Database(database_url)
    migrate.upgrade(database)
    yield database
    database.dispose()


@pytest.fixture
def trail(make_bridge: Callable[..., BridgeUnderTest]) -> Database:
    """An audit trail written by the app: users created, patched and deleted over SCIM."""
    bridge = make_bridge()
    ids = []
    for n in range(3):
        created = bridge.scim.post("/Users", entra_user(f"user{n}@contoso.com"))
        assert created.status_code == 201, created.get_json()
        ids.append(created.get_json()["id"])
    patch = [{"op": "replace", "path": "displayName", "value": "Renamed"}]
    assert bridge.scim.patch(f"/Users/{ids[0]}", patch).status_code == 200
    assert bridge.scim.delete(f"/Users/{ids[1]}").status_code == 204
    database = bridge.bridge.db
    assert len(list(audit.events(database))) >= 8
    assert verify_audit_chain(database).intact
    return database
