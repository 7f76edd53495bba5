"""``Database.write_scope``: a write request's one transaction opens at its first write, commits
when that write's block ends, and runs the request's ``finish`` in it (its job claim)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

import pytest
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select

from scim_bridge.store.db import Database
from scim_bridge.store.db import Transaction
from scim_bridge.store.db import open_transaction
from scim_bridge.store.schema import pending_links


def _pending(db: Database) -> int:
    with db.transaction(write=False) as tx:
        return int(tx.connection.execute(select(func.count()).select_from(pending_links)).scalar())


def _add(tx: Transaction, name: str) -> None:
    tx.connection.execute(
        insert(pending_links).values(
            user_name_key=name,
            user_name=name,
            gitlab_user_id=1,
            gitlab_username=name,
            created_at=datetime.now(UTC),
        )
    )


def test_nothing_is_opened_until_the_first_write(db: Database) -> None:
    with db.write_scope(lambda tx: "claimed") as scope:
        assert open_transaction() is None  # parsing, before any write: no transaction, no lock
        with db.transaction(write=False):
            pass  # a read inside the scope is a read of its own
        assert scope.transaction is None
    assert scope.finished is None


def test_the_write_commits_when_its_block_ends_with_what_finish_returned(db: Database) -> None:
    seen: list[bool] = []

    def finish(tx: Transaction) -> str:
        seen.append(open_transaction() is tx)  # in the write's own transaction, before commit
        return "claimed"

    with db.write_scope(finish) as scope:
        with db.operation():
            _add(open_transaction() or pytest.fail("no transaction"), "jane")
        assert open_transaction() is None
        assert _pending(db) == 1  # committed: rendering the answer holds no lock
    assert seen == [True]
    assert scope.finished == "claimed"
    assert scope.transaction is not None


def test_a_failed_write_rolls_back_and_finishes_nothing(db: Database) -> None:
    finished: list[Transaction] = []
    with (
        db.write_scope(finished.append) as scope,
        pytest.raises(ValueError),
        db.transaction(write=True) as tx,
    ):
        _add(tx, "jane")
        raise ValueError("refused")
    assert (finished, scope.transaction, _pending(db)) == ([], None, 0)


def test_a_second_write_in_one_request_is_refused(db: Database) -> None:
    with db.write_scope(lambda tx: None):
        with db.transaction(write=True) as tx:
            _add(tx, "jane")
        with pytest.raises(RuntimeError, match="one transaction"), db.transaction(write=True):
            pass
    assert _pending(db) == 1


def test_a_scope_cannot_open_inside_a_transaction(db: Database) -> None:
    with db.transaction(write=True), pytest.raises(RuntimeError), db.write_scope(lambda tx: None):
        pass
