"""`scim-bridge audit`, `audit verify` and `audit export`, run through the real command."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
from click.testing import CliRunner
from click.testing import Result
from sqlalchemy import Executable
from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy import update

from scim_bridge.cli import main
from scim_bridge.store import audit
from scim_bridge.store import audit_verify
from scim_bridge.store.db import Database
from scim_bridge.store.schema import audit_events


@pytest.fixture
def cli(database_url: str) -> Callable[..., Result]:
    """Run ``scim-bridge ARGS`` with only the database configured, as an operator would."""
    env: dict[str, str | None] = {key: None for key in os.environ if key.startswith("SCIM_BRIDGE_")}
    env["SCIM_BRIDGE_DATABASE_URL"] = database_url

    def run(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    return run


def tamper(db: Database, *statements: Executable) -> None:
    with db.engine.begin() as connection:
        for statement in statements:
            connection.execute(statement)


def ids_by_seq(db: Database) -> dict[int, int]:
    with db.engine.connect() as connection:
        return dict(connection.execute(select(audit_events.c.seq, audit_events.c.id)).all())


# -- audit / audit verify -------------------------------------------------------------------


def test_audit_lists_the_newest_events(trail: Database, cli: Callable[..., Result]) -> None:
    result = cli("audit", "--limit", "2")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert len(lines) == 2
    newest = list(audit.events(trail))[-1]
    assert newest["action"] in lines[-1]


def test_verify_an_intact_trail(trail: Database, cli: Callable[..., Result]) -> None:
    report = audit_verify.verify(trail)
    result = cli("audit", "verify")
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"audit trail intact: {report.events} events, chain head {report.head_hash[:16]}\n"
    )


def test_verify_names_each_edited_removed_and_reordered_event(
    trail: Database, cli: Callable[..., Result]
) -> None:
    ids = ids_by_seq(trail)
    last = max(ids)
    assert last >= 8
    tamper(
        trail,
        update(audit_events).where(audit_events.c.seq == 2).values(detail={"forged": True}),
        delete(audit_events).where(audit_events.c.seq == 4),
        update(audit_events).where(audit_events.c.seq == 6).values(seq=-6),
        update(audit_events).where(audit_events.c.seq == 7).values(seq=6),
        update(audit_events).where(audit_events.c.seq == -6).values(seq=7),
        delete(audit_events).where(audit_events.c.seq == last),
    )
    result = cli("audit", "verify")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[:-1] == [
        f"seq 2 (id {ids[2]}): edited — stored hash does not match its content",
        f"seq 4: removed — 1 event(s) missing from the chain before seq 5 (id {ids[5]})",
        f"seq 6 (id {ids[7]}): reordered — this event was written as seq 7",
        f"seq 7 (id {ids[6]}): reordered — this event was written as seq 6",
        f"seq {last}: truncated — the chain head is at seq {last} but the last event is "
        f"seq {last - 1}: the newest events were removed",
    ]
    assert lines[-1] == f"audit trail NOT intact: 5 problem(s) in {last - 2} chained events"


@pytest.mark.parametrize(
    ("statement", "kind"),
    [
        (update(audit_events).where(audit_events.c.seq == 3).values(target="x"), "edited"),
        (delete(audit_events).where(audit_events.c.seq == 3), "removed"),
        (update(audit_events).where(audit_events.c.seq == 3).values(seq=0), "removed"),
    ],
    ids=["edited", "removed", "moved-to-front"],
)
def test_verify_fails_on_any_single_tampering(
    trail: Database, cli: Callable[..., Result], statement: Executable, kind: str
) -> None:
    result = cli("audit", "verify")
    assert result.exit_code == 0
    tamper(trail, statement)
    result = cli("audit", "verify")
    assert result.exit_code == 1
    assert f": {kind} — " in result.output
    assert "NOT intact" in result.output


# -- audit export ---------------------------------------------------------------------------


@pytest.fixture
def daily(db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    """Four events, one a day from 2024-05-01 12:00 UTC."""
    start = datetime(2024, 5, 1, 12, tzinfo=UTC)
    for day in range(4):
        monkeypatch.setattr("scim_bridge.clock.now", lambda day=day: start + timedelta(days=day))
        audit.record_now(db, "test.daily", f"day{day}", {"day": day, "name": 'Zoë, "quoted"'})
    monkeypatch.undo()
    return db


def test_export_jsonl_is_the_chain_a_siem_can_verify(
    trail: Database, cli: Callable[..., Result]
) -> None:
    result = cli("audit", "export")
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [row["seq"] for row in rows] == sorted(ids_by_seq(trail))
    previous = audit.GENESIS
    for row in rows:
        assert set(row) == set(audit.EXPORT_FIELDS)
        assert row["prev_hash"] == previous and audit.event_hash(row) == row["hash"]
        previous = row["hash"]
    assert previous == audit_verify.verify(trail).head_hash


def test_export_csv_has_a_header_and_detail_as_json(
    daily: Database, cli: Callable[..., Result]
) -> None:
    result = cli("audit", "export", "--format", "csv")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [row["target"] for row in rows] == ["day0", "day1", "day2", "day3"]
    assert list(rows[0]) == list(audit.EXPORT_FIELDS)
    assert json.loads(rows[1]["detail"]) == {"day": 1, "name": 'Zoë, "quoted"'}
    assert rows[0]["at"] == "2024-05-01T12:00:00.000000+00:00"
    assert rows[0]["request_id"] == ""  # None
    for row in rows:  # what a SIEM reading the CSV would hash
        event = {**row, "seq": int(row["seq"]), "detail": json.loads(row["detail"])}
        event.update({name: row[name] or None for name in ("request_id", "actor", "source")})
        assert audit.event_hash(event) == row["hash"]


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        ("2024-05-02", ["day1", "day2", "day3"]),
        ("2024-05-02T12:00:00Z", ["day1", "day2", "day3"]),
        ("2024-05-02T12:00:00.000001+00:00", ["day2", "day3"]),
        ("2024-05-03T14:00:00+02:00", ["day2", "day3"]),
        ("2024-06-01", []),
    ],
)
def test_export_since(
    daily: Database, cli: Callable[..., Result], since: str, expected: list[str]
) -> None:
    result = cli("audit", "export", "--since", since)
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["target"] for line in result.output.splitlines()] == expected


def test_export_refuses_a_malformed_since(daily: Database, cli: Callable[..., Result]) -> None:
    result = cli("audit", "export", "--since", "last tuesday")
    assert result.exit_code == 2
    assert "ISO 8601" in result.output
