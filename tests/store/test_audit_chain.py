"""The audit hash chain: written in commit order, and tampering with the table is found."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Executable
from sqlalchemy import delete
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import update

from scim_bridge.store import audit
from scim_bridge.store import audit_verify
from scim_bridge.store import migrate
from scim_bridge.store.db import Database
from scim_bridge.store.schema import audit_chain_head
from scim_bridge.store.schema import audit_events
from scim_bridge.store.schema import bridge_state


def chain(db: Database) -> list[dict[str, Any]]:
    with db.engine.connect() as connection:
        rows = connection.execute(select(audit_events).order_by(audit_events.c.seq)).mappings()
        return [dict(row) for row in rows]


def tamper(db: Database, *statements: Executable) -> None:
    """Change the table behind the bridge's back, as someone with database access could."""
    with db.engine.begin() as connection:
        for statement in statements:
            connection.execute(statement)


def swap(db: Database, first: dict[str, Any], second: dict[str, Any], names: list[str]) -> None:
    """Exchange the ``names`` columns of two events, as someone with the table could."""
    tamper(
        db,
        update(audit_events)
        .where(audit_events.c.id == first["id"])
        .values({name: second[name] for name in names}),
        update(audit_events)
        .where(audit_events.c.id == second["id"])
        .values({name: first[name] for name in names}),
    )


def at_seq(seq: int) -> Any:
    return audit_events.c.seq == seq


def found(db: Database) -> list[tuple[str, int | None, int | None]]:
    return [(problem.kind, problem.seq, problem.id) for problem in audit_verify.verify(db).problems]


# -- An intact chain ------------------------------------------------------------------------


def test_the_apps_trail_is_a_gap_free_chain_ending_at_the_head(trail: Database) -> None:
    rows = chain(trail)
    assert [row["seq"] for row in rows] == list(range(1, len(rows) + 1))
    assert rows[0]["prev_hash"] == audit.GENESIS
    for before, after in itertools.pairwise(rows):
        assert after["prev_hash"] == before["hash"]
    assert {row["action"] for row in rows} >= {"scim.user.create", "scim.user.delete"}
    report = audit_verify.verify(trail)
    assert report.problems == []
    assert (report.events, report.head_seq, report.head_hash) == (
        len(rows),
        len(rows),
        rows[-1]["hash"],
    )


def test_an_empty_chain_is_intact(db: Database) -> None:
    report = audit_verify.verify(db)
    assert report.intact and report.events == 0 and report.head_hash == audit.GENESIS


def test_details_hash_alike_on_write_and_read_back(db: Database) -> None:
    # JSONB reorders keys and prints the float 1e17 as an integer; unicode must survive too.
    detail = {"z": 1, "a": [1.5, 1e17, 2.0, None, True], "nested": {"é": "ü", "k": (1, 2)}}
    audit.record_now(db, "test.detail", "target", detail)
    audit.record_now(db, "test.detail", None, None)
    detail["z"] = 2  # recorded as it was when recorded
    assert audit_verify.verify(db).problems == []
    assert chain(db)[0]["detail"]["z"] == 1


# -- Tampering is found ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        {"detail": {"changed": {"active": True}}},
        {"actor": "someone-else"},
        {"action": "scim.user.read"},
        {"at": datetime(2020, 1, 1, tzinfo=UTC)},
    ],
    ids=["detail", "actor", "action", "at"],
)
def test_an_edited_event_is_reported_at_its_seq(trail: Database, values: dict[str, Any]) -> None:
    target = chain(trail)[3]
    tamper(trail, update(audit_events).where(at_seq(4)).values(**values))
    assert found(trail) == [("edited", 4, target["id"])]


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(trail: Database) -> None:
    rows = chain(trail)
    forged = {**rows[3], "detail": {"forged": True}}
    forged["hash"] = audit.event_hash(forged)
    values = {"detail": forged["detail"], "hash": forged["hash"]}
    tamper(trail, update(audit_events).where(at_seq(4)).values(**values))
    assert found(trail) == [("removed", 5, rows[4]["id"])]


def test_a_removed_event_is_reported_as_a_gap(trail: Database) -> None:
    tamper(trail, delete(audit_events).where(at_seq(3)))
    problems = audit_verify.verify(trail).problems
    assert [(p.kind, p.seq, p.last_seq) for p in problems] == [("removed", 3, 3)]
    assert str(problems[0]).startswith("seq 3: removed")


def test_removed_events_renumbered_are_still_found(trail: Database) -> None:
    rows = chain(trail)
    statements = [delete(audit_events).where(at_seq(3))] + [
        update(audit_events).where(at_seq(row["seq"])).values(seq=row["seq"] - 1)
        for row in rows[3:]
    ]
    tamper(trail, *statements)
    problems = found(trail)
    assert problems and all(kind in {"edited", "removed", "truncated"} for kind, _, _ in problems)
    assert problems[0][1] == 3


@pytest.mark.parametrize("distance", [1, 2])
def test_events_whose_seqs_were_swapped_are_reported_reordered(
    trail: Database, distance: int
) -> None:
    rows = chain(trail)
    first, second = rows[2], rows[2 + distance]
    tamper(
        trail,
        update(audit_events).where(audit_events.c.id == first["id"]).values(seq=-1),
        update(audit_events).where(audit_events.c.id == second["id"]).values(seq=first["seq"]),
        update(audit_events).where(audit_events.c.id == first["id"]).values(seq=second["seq"]),
    )
    assert found(trail) == [
        ("reordered", first["seq"], second["id"]),
        ("reordered", second["seq"], first["id"]),
    ]


def test_an_event_moved_before_the_first_is_reported(trail: Database) -> None:
    moved = chain(trail)[2]
    tamper(trail, update(audit_events).where(at_seq(3)).values(seq=0))
    assert found(trail) == [("reordered", 0, moved["id"]), ("removed", 3, None)]


def test_events_whose_rows_were_swapped_are_reported_reordered(trail: Database) -> None:
    rows = chain(trail)
    first, second = rows[2], rows[4]
    swap(trail, first, second, [name for name in rows[0] if name not in {"id", "seq"}])
    assert found(trail) == [("reordered", 3, first["id"]), ("reordered", 5, second["id"])]


def test_swapped_contents_alone_read_as_two_edits(trail: Database) -> None:
    rows = chain(trail)
    first, second = rows[2], rows[3]
    swap(trail, first, second, ["at", "action", "target", "detail"])
    assert found(trail) == [("edited", 3, first["id"]), ("edited", 4, second["id"])]


def test_a_removed_last_event_is_reported_truncated(trail: Database) -> None:
    last = len(chain(trail))
    tamper(trail, delete(audit_events).where(at_seq(last)))
    assert found(trail) == [("truncated", last, None)]


def test_a_rewritten_last_event_disagrees_with_the_head(trail: Database) -> None:
    rows = chain(trail)
    forged = {**rows[-1], "target": "forged"}
    forged["hash"] = audit.event_hash(forged)
    values = {"target": "forged", "hash": forged["hash"]}
    tamper(trail, update(audit_events).where(at_seq(len(rows))).values(**values))
    assert found(trail) == [("edited", len(rows), rows[-1]["id"])]


def test_rows_outside_the_chain_are_reported(trail: Database) -> None:
    tamper(
        trail,
        insert(audit_events).values(at=datetime.now(UTC), action="forged.event", target="x"),
    )
    ((kind, seq, row_id),) = found(trail)
    assert (kind, seq) == ("unchained", None) and row_id is not None


def test_a_whole_forged_chain_and_head_are_not_detectable(trail: Database) -> None:
    """The documented limit: anchor the head hash outside the database."""
    rows = chain(trail)
    anchored = audit_verify.verify(trail).head_hash
    previous = audit.GENESIS
    statements = []
    for row in rows:
        forged = {**row, "prev_hash": previous, "actor": "forger"}
        previous = forged["hash"] = audit.event_hash(forged)
        values = {"actor": "forger", "prev_hash": forged["prev_hash"], "hash": previous}
        statements.append(update(audit_events).where(at_seq(row["seq"])).values(**values))
    statements.append(update(audit_chain_head).values(hash=previous))
    tamper(trail, *statements)
    report = audit_verify.verify(trail)
    assert report.intact and report.head_hash != anchored


def test_verify_streams_in_batches_and_sees_moves_across_them(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "BATCH", 3)
    for n in range(10):
        audit.record_now(db, "test.batch", str(n))
    assert audit_verify.verify(db).events == 10
    rows = chain(db)
    tamper(
        db,
        update(audit_events).where(at_seq(3)).values(seq=-1),
        update(audit_events).where(at_seq(4)).values(seq=3),
        update(audit_events).where(at_seq(-1)).values(seq=4),
        delete(audit_events).where(at_seq(8)),
    )
    problems = [(p.kind, p.seq) for p in audit_verify.verify(db).problems]
    assert problems == [("reordered", 3), ("reordered", 4), ("removed", 8)]
    assert [row["id"] for row in chain(db)][2:4] == [rows[3]["id"], rows[2]["id"]]


# -- Writing --------------------------------------------------------------------------------


def test_a_rolled_back_transaction_leaves_no_event_and_no_gap(db: Database) -> None:
    audit.record_now(db, "test.before")
    with pytest.raises(RuntimeError, match="abandon"), db.transaction(write=True):
        audit.record("test.rolled-back")
        raise RuntimeError("abandon")
    audit.record_now(db, "test.after")
    rows = chain(db)
    assert [(row["seq"], row["action"]) for row in rows] == [(1, "test.before"), (2, "test.after")]
    assert audit_verify.verify(db).problems == []


def test_events_are_stored_at_the_commit_of_the_outer_transaction(db: Database) -> None:
    with db.transaction(write=True):
        audit.record("test.outer")
        audit.record_now(db, "test.joined")  # joins the outer transaction
        assert chain(db) == []
    assert [row["action"] for row in chain(db)] == ["test.outer", "test.joined"]


def test_a_read_only_transaction_cannot_record(db: Database) -> None:
    with (
        pytest.raises(RuntimeError, match="read-only"),
        db.transaction(write=False),
    ):
        audit.record("test.read")
    assert chain(db) == []


def test_a_missing_head_is_recreated_after_the_last_event(db: Database) -> None:
    audit.record_now(db, "test.one")
    tamper(db, delete(audit_chain_head))
    audit.record_now(db, "test.two")
    assert [row["seq"] for row in chain(db)] == [1, 2]
    assert audit_verify.verify(db).problems == []


CONTENDED = bridge_state.c.key == "test.contended"


def _one_transaction(db: Database, name: str, kind: int) -> None:
    """Two events; kinds 1 and 2 also lock a shared row, after the first event or before both."""
    with db.transaction(write=True) as tx:
        if kind != 2:
            audit.record("test.concurrent", name, {"part": 1, "shared": kind == 1})
        if kind != 0:
            tx.connection.execute(update(bridge_state).where(CONTENDED).values(value=name))
        if kind == 2:
            audit.record("test.concurrent", name, {"part": 1, "shared": True})
        audit.record("test.concurrent", name, {"part": 2, "shared": kind != 0})


def test_concurrent_writers_chain_in_commit_order_without_gaps(database_url: str) -> None:
    """Writers with and without a shared row lock, taken before or after recording: no deadlock,
    no gap, no duplicate seq, and the chain ends with the last commit."""
    setup = Database(database_url)
    migrate.upgrade(setup)
    tamper(setup, insert(bridge_state).values(key="test.contended", value="-"))
    writers, rounds = 6, 15
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def write(writer: int) -> None:
        db = Database(database_url)
        try:
            start.wait()
            for n in range(rounds):
                _one_transaction(db, f"{writer}:{n}", (writer + n) % 3)
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)
        finally:
            db.dispose()

    threads = [threading.Thread(target=write, args=(writer,)) for writer in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    rows = chain(setup)
    assert [row["seq"] for row in rows] == list(range(1, 2 * writers * rounds + 1))
    assert audit_verify.verify(setup).problems == []
    # A transaction's events are adjacent, in the order recorded.
    for first, second in zip(rows[::2], rows[1::2], strict=True):
        assert first["target"] == second["target"]
        assert (first["detail"]["part"], second["detail"]["part"]) == (1, 2)
    # Of the writers of the shared row (serialised by its lock), the last to commit ends the chain.
    with setup.engine.connect() as connection:
        last_writer = connection.execute(select(bridge_state.c.value).where(CONTENDED)).scalar()
    assert [row["target"] for row in rows if row["detail"]["shared"]][-1] == last_writer
    setup.dispose()


# -- Export ---------------------------------------------------------------------------------


def test_an_export_verifies_on_its_own(trail: Database) -> None:
    exported = list(audit.export(trail))
    assert [row["seq"] for row in exported] == list(range(1, len(exported) + 1))
    previous = audit.GENESIS
    for row in exported:
        assert row["prev_hash"] == previous
        assert audit.event_hash(row) == row["hash"]
        assert datetime.fromisoformat(row["at"]).tzinfo is not None
        previous = row["hash"]
    assert previous == audit_verify.verify(trail).head_hash


def test_an_export_since_a_time_starts_at_the_first_event_from_then(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = datetime(2024, 5, 1, tzinfo=UTC)
    for day in range(4):
        monkeypatch.setattr("scim_bridge.clock.now", lambda day=day: start + timedelta(days=day))
        audit.record_now(db, "test.daily", str(day))
    since = [row["target"] for row in audit.export(db, start + timedelta(days=1, hours=12))]
    assert since == ["2", "3"]
    naive = [row["seq"] for row in audit.export(db, datetime(2024, 5, 3))]
    assert naive == [3, 4]
    assert list(audit.export(db, start + timedelta(days=9))) == []


# -- Migration ------------------------------------------------------------------------------


def _alembic(db: Database, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def test_the_upgrade_chains_events_written_before_it(database_url: str) -> None:
    db = Database(database_url)
    _alembic(db, "0002")
    base = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    details: list[Any] = [{"changed": {"active": False}}, None, {"é": [1, 2.5]}, {"n": 1}]
    with db.engine.begin() as connection:
        for n, detail in enumerate(details):
            # Only the columns revision 0002 has.
            values = {"at": base + timedelta(seconds=n), "action": f"old.event.{n}"}
            values.update(request_id=f"req-{n}", actor="entra", source="10.0.0.1", target=f"t{n}")
            connection.execute(insert(audit_events).values(**values, detail=detail))
        # Ids need not be contiguous.
        connection.execute(delete(audit_events).where(audit_events.c.action == "old.event.2"))
    migrate.upgrade(db)
    rows = chain(db)
    assert [(row["seq"], row["action"]) for row in rows] == [
        (1, "old.event.0"),
        (2, "old.event.1"),
        (3, "old.event.3"),
    ]
    report = audit_verify.verify(db)
    assert report.problems == [] and report.head_hash == rows[-1]["hash"]
    audit.record_now(db, "new.event")
    assert [row["seq"] for row in chain(db)] == [1, 2, 3, 4]
    assert audit_verify.verify(db).problems == []
    db.dispose()


def test_the_upgrade_of_an_empty_trail_starts_the_chain_at_genesis(db: Database) -> None:
    with db.engine.connect() as connection:
        head = connection.execute(select(audit_chain_head)).one()
    assert (head.id, head.seq, head.hash) == (audit.HEAD_ID, 0, audit.GENESIS)
