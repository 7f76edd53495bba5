"""SQLite's writers across processes, and the log copied back off their path (store/sqlite_writes.py).

Proven by locks and counts, never by timing: the gate's file lock is held exactly while a writer is
inside, in whichever process; a forked child never shares its parent's lock; commits never
checkpoint, and the checkpointer does once there were writes.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from scim_bridge.store import migrate
from scim_bridge.store import sqlite_writes
from scim_bridge.store.db import Database
from scim_bridge.store.sqlite_writes import GATE_SUFFIX
from scim_bridge.store.sqlite_writes import WriterGate


def _held_elsewhere(lock_file: Path) -> bool:
    """Whether some other open file description holds ``lock_file``'s lock."""
    descriptor = os.open(lock_file, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)  # closing releases what this description took
    return False


def _hold_in_child(gate: WriterGate, inside: Any, release: Any) -> None:
    with gate:
        inside.set()
        release.wait(30)


def test_a_writer_in_another_process_holds_the_gate_until_it_leaves(tmp_path: Path) -> None:
    database = tmp_path / "bridge.db"
    gate = WriterGate(database, file_mode=0o600)
    lock_file = tmp_path / f"bridge.db{GATE_SUFFIX}"
    with gate:  # the parent's own descriptor, opened before the fork
        assert _held_elsewhere(lock_file)
    assert not _held_elsewhere(lock_file)
    assert oct(lock_file.stat().st_mode & 0o777) == "0o600"

    context = multiprocessing.get_context("fork")
    inside, release = context.Event(), context.Event()
    child = context.Process(target=_hold_in_child, args=(gate, inside, release))
    child.start()
    try:
        assert inside.wait(30)
        # The child locked through a descriptor of its own: the parent's is free to wait on it.
        assert _held_elsewhere(lock_file)
        entered = threading.Event()

        def parent_writer() -> None:
            with gate:
                entered.set()

        waiter = threading.Thread(target=parent_writer)
        waiter.start()
        assert not entered.wait(0.2), "the parent entered while the child was inside"
        release.set()
        assert entered.wait(30)
        waiter.join(30)
    finally:
        release.set()
        child.join(30)
    assert child.exitcode == 0
    assert not _held_elsewhere(lock_file)


def test_commits_never_checkpoint_and_the_checkpointer_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copied = threading.Event()
    real = sqlite_writes.Checkpointer.checkpoint

    def spy(self: sqlite_writes.Checkpointer, connection: Any) -> None:
        real(self, connection)
        copied.set()

    monkeypatch.setattr(sqlite_writes.Checkpointer, "checkpoint", spy)
    db = Database(f"sqlite:///{tmp_path / 'bridge.db'}")
    try:
        with db.transaction(write=False) as tx:
            setting = tx.connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        assert setting == 0, "a commit must not copy the log back"
        assert not copied.is_set(), "nothing written, nothing to copy"
        migrate.upgrade(db)
        with db.transaction(write=True) as tx:
            tx.connection.execute(text("CREATE TABLE t (x INTEGER)"))
            tx.connection.execute(text("INSERT INTO t VALUES (1)"))
        assert copied.wait(30), "the checkpointer never ran after writes"
    finally:
        db.dispose()


def test_an_in_memory_database_has_neither(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    before = set(threading.enumerate())
    db = Database("sqlite://")
    try:
        with db.transaction(write=True) as tx:
            tx.connection.execute(text("CREATE TABLE t (x INTEGER)"))
        assert not list(tmp_path.iterdir()), "no lock file, no database file"
        started = set(threading.enumerate()) - before
        assert not [t for t in started if t.name == "sqlite-checkpoint"]
    finally:
        db.dispose()


def _wait_for(condition: Any, seconds: float = 30.0) -> bool:
    """Whether ``condition()`` came true within ``seconds`` (a bound, never the measure)."""
    stop = threading.Event()
    while not condition():
        if stop.wait(0.05) or seconds <= 0:
            return False
        seconds -= 0.05
    return True


def _write_rows(db: Database, count: int) -> None:
    """``count`` transactions of 16 KiB each: the log grows by at least that much."""
    for _ in range(count):
        with db.transaction(write=True) as tx:
            tx.connection.execute(text("INSERT INTO t VALUES (:x)"), {"x": b"x" * 16384})


def test_a_log_past_the_limit_is_emptied_and_nothing_written_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # raising=False: before the limit existed, this test failed on the log's size
    monkeypatch.setattr(sqlite_writes, "WAL_LIMIT_BYTES", 64 * 1024, raising=False)
    path = tmp_path / "bridge.db"
    log = path.with_name("bridge.db-wal")
    db = Database(f"sqlite:///{path}")
    try:
        with db.transaction(write=True) as tx:
            tx.connection.execute(text("CREATE TABLE t (x BLOB)"))
        _write_rows(db, 20)
        assert _wait_for(lambda: log.exists() and log.stat().st_size == 0), (
            "the log stayed past its limit"
        )
        with db.transaction(write=False) as tx:
            assert tx.connection.execute(text("SELECT count(*) FROM t")).scalar() == 20
    finally:
        db.dispose()


def test_a_reader_on_the_log_delays_its_emptying_but_no_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_writes, "WAL_LIMIT_BYTES", 64 * 1024)
    gave_up = threading.Event()
    real = sqlite_writes.Checkpointer.truncate

    def spy(self: sqlite_writes.Checkpointer, connection: Any) -> bool:
        emptied = real(self, connection)
        if not emptied:
            gave_up.set()
        return emptied

    monkeypatch.setattr(sqlite_writes.Checkpointer, "truncate", spy)
    path = tmp_path / "bridge.db"
    log = path.with_name("bridge.db-wal")
    db = Database(f"sqlite:///{path}")
    reader = None
    try:
        with db.transaction(write=True) as tx:
            tx.connection.execute(text("CREATE TABLE t (x BLOB)"))
        _write_rows(db, 1)
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM t").fetchall()  # a snapshot that needs the log
        _write_rows(db, 20)
        assert gave_up.wait(30), "the checkpointer never met the reader"
        _write_rows(db, 1)  # a writer still gets through while the reader stays
        assert log.stat().st_size > 64 * 1024
        reader.execute("COMMIT")
        _write_rows(db, 1)  # the checkpointer's next turn comes after a write
        assert _wait_for(lambda: log.stat().st_size == 0), "the log was never emptied"
        with db.transaction(write=False) as tx:
            assert tx.connection.execute(text("SELECT count(*) FROM t")).scalar() == 23
    finally:
        if reader is not None:
            reader.close()
        db.dispose()
