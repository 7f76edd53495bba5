"""The database connection and its transactions.

SQLite is the embedded default and PostgreSQL serves several instances. SQLite runs in WAL mode
with a busy timeout, and write transactions start with ``BEGIN IMMEDIATE`` so that two gunicorn
workers never both read, then both try to upgrade to a write lock (which SQLite resolves by failing
one of them with "database is locked"); the writers of every process on the host queue for that
lock on one gate, and the write-ahead log is copied back by a thread of its own, never inside a
writer's commit (store/sqlite_writes.py). On PostgreSQL, writers lock the rows they read for update.
A transaction's last step, just before its commit, runs the hooks other modules registered with
``before_commit``: store/audit.py chains the audit events recorded in it there, so the chain head is
the last lock it takes and the chain follows commit order. This module knows no hook by name.

Connections are pooled on both backends, sized by ``Database(connections=N)``: as many as the
threads of one process that use the database at once (gunicorn's threads, the worker's concurrent
jobs). A pooled SQLite connection keeps its PRAGMAs and SQL functions, and, as connections are not
closed after each transaction, SQLite no longer checkpoints the WAL at every commit (it does so
as the WAL grows, and when the pool is disposed). A connection serves one thread at a time, so
pysqlite's same-thread check is off. Every outermost transaction is counted in
``scim_bridge_db_transactions_total{mode="write"|"read"}``; a joined one is part of its outer one.

A SQLite file holds the token hashes and the audit trail: it is created mode 0600 before SQLite
first opens it, and existing files (with their ``-wal`` and ``-shm``) are tightened to 0600.
SQLite creates ``-wal`` and ``-shm`` with the main file's permissions, so they follow.
"""

from __future__ import annotations

import contextvars
import os
import stat
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import AbstractContextManager
from contextlib import contextmanager
from contextlib import nullcontext
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from urllib.parse import urlsplit

from sqlalchemy import Connection
from sqlalchemy import Engine
from sqlalchemy import Table
from sqlalchemy import create_engine
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import QueuePool
from sqlalchemy.pool import StaticPool

from scim_bridge.metrics.instruments import DB_TRANSACTIONS
from scim_bridge.store.filters import SQLITE_FUNCTIONS
from scim_bridge.store.forks import in_forked_children
from scim_bridge.store.sqlite_writes import GATE_SUFFIX
from scim_bridge.store.sqlite_writes import Checkpointer
from scim_bridge.store.sqlite_writes import WriterGate

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_FILE_MODE = 0o600  # the owner only: the file holds token hashes and the audit trail
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal", GATE_SUFFIX)
ROWS_PER_STATEMENT = 1000  # a multi-row INSERT stays well below both databases' parameter limits
# Every transaction counts one: the counter's two children, looked up once, not per transaction.
_WRITES = DB_TRANSACTIONS.labels("write")
_READS = DB_TRANSACTIONS.labels("read")
# The execution option a transaction's connection carries: "write" or "read" (an engine event
# listener can tell the two apart on both backends, e.g. to count them in a test).
MODE_OPTION = "scim_bridge_mode"
DEFAULT_CONNECTIONS = 20  # a Database made without settings; the bridge sizes its own (bridge.py)
POOL_TIMEOUT_SECONDS = 30.0  # a thread waits this long for a free connection, then fails


@dataclass
class Change:
    """One resource written in a transaction, with its state before, so a rejected write can be undone."""

    resource_type: str
    resource_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass(eq=False)  # compared and hashed by identity: hooks keep their state per transaction
class Transaction:
    """The unit of work of one request: a connection, and what it changed."""

    connection: Connection
    write: bool
    changes: list[Change] = field(default_factory=list)
    # The jobs it queued, by key, in order; with the row when it inserted it (its claim then
    # needs no select).
    job_keys: dict[str, dict[str, Any] | None] = field(default_factory=dict)


_current: contextvars.ContextVar[Transaction | None] = contextvars.ContextVar(
    "scim_bridge_transaction", default=None
)


@dataclass(eq=False)
class WriteScope:
    """A write request's one write transaction, opened by its first write, not by the request.

    A SCIM write parses and validates its body before it touches the store, and renders its
    answer after: inside the scope the transaction begins at the store's first write (SQLite's
    writer lock with it) and commits when that write's block ends, so neither the parsing nor the
    rendering holds the lock. ``finish`` runs in the transaction just before its commit (the
    request claims its jobs there); what it returns is kept in ``finished``.
    """

    finish: Callable[[Transaction], object]
    transaction: Transaction | None = None
    finished: object = None


_scope: contextvars.ContextVar[WriteScope | None] = contextvars.ContextVar(
    "scim_bridge_write_scope", default=None
)

BeforeCommit = Callable[[Transaction], None]
_before_commit: list[BeforeCommit] = []


def before_commit(hook: BeforeCommit) -> BeforeCommit:
    """Run ``hook`` as the last step of every transaction, just before it commits.

    Hooks run in the order they were registered, inside the transaction (an exception rolls it
    back), and not at all when the block fails. store/audit.py registers the one that chains the
    audit events; it takes the chain head's lock, so a hook registered after it must take none.
    Registering the same hook twice keeps one.
    """
    if hook not in _before_commit:
        _before_commit.append(hook)
    return hook


def display_url(url: str) -> str:
    """A database URL as banners, logs and messages show it: any password as ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "(a database URL that cannot be parsed)"  # never the raw text: it may hold one


def sqlite_path(url: URL) -> Path | None:
    """The file a SQLite URL names, or None for an in-memory database (which has no file)."""
    database = url.database
    if not database or database == ":memory:" or url.query.get("mode") == "memory":
        return None
    if url.query.get("uri") and database.startswith("file:"):
        # ``sqlite:///file:/srv/bridge.db?uri=true``: SQLite's URI filename (RFC 8089 style).
        database = unquote(urlsplit(database).path)
        if not database or database == ":memory:":
            return None
    return Path(database)


def _private_sqlite_file(path: Path) -> None:
    """Create the file mode 0600 if it is missing, so SQLite never creates it with the umask's."""
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, SQLITE_FILE_MODE)
    except OSError:  # it exists; or, say, its directory does not, which SQLite then reports
        return
    os.close(descriptor)


def _tighten_sqlite_files(path: Path) -> None:
    """Take group and other permissions off the database file and its companions, if present."""
    for suffix in SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        try:
            mode = stat.S_IMODE(companion.stat().st_mode)
            if mode & ~SQLITE_FILE_MODE:
                companion.chmod(mode & SQLITE_FILE_MODE)
        except OSError:  # absent, or not ours to change: nothing to tighten
            continue


def _configure_sqlite(engine: Engine, path: Path | None) -> None:
    if path is not None:

        @event.listens_for(engine, "do_connect")
        def _before_connect(*_args: Any) -> None:
            # On connect, not on construction: `scim-bridge check` must not create a missing file.
            _private_sqlite_file(path)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # BEGIN is issued by ``begin_sqlite`` (the pysqlite driver would defer it to the first
        # write, so a read would see a new snapshot at every statement).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        if path is not None:  # the Checkpointer copies the log back, never a writer's commit
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()
        # Case folding as scim2-models does it, for filters and sorting (store/filters/).
        for name, function in SQLITE_FUNCTIONS.items():
            dbapi_connection.create_function(name, 1, function, deterministic=True)


def begin_sqlite(connection: Connection, *, write: bool) -> None:
    """Open the SQLite transaction of a Core ``connection.begin()`` block; a writer's
    (``IMMEDIATE``) takes the database's one writer lock at once, a reader's (``DEFERRED``) its
    snapshot at its first read.

    Called where each such block opens, not from SQLAlchemy's "begin" event: an engine with any
    listener makes SQLAlchemy dispatch every connection event (begin, commit, each statement's
    execute) of every transaction, about 40 µs a transaction and more per Core statement (a POST
    used 1-2 ms less CPU without it). On the driver's connection: through Core, this one
    statement cost as much as a read.
    """
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None
    dbapi_connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")


def _forget_pool(engine: Engine) -> None:
    """A forked child must not use its parent's pooled connections (SQLite's file locks and a
    PostgreSQL session cannot be shared): it starts with an empty pool of its own."""
    engine.dispose(close=False)


class Database:
    """An engine plus the transaction discipline every part of the bridge uses.

    ``connections`` sizes the pool: the most threads of this process that hold a transaction at
    once (gunicorn's threads per worker, or the worker's concurrent jobs, plus a margin). A thread
    beyond it waits up to ``POOL_TIMEOUT_SECONDS`` for a connection.
    """

    def __init__(self, url: str, *, connections: int = DEFAULT_CONNECTIONS) -> None:
        self.url = url
        self.connections = max(1, connections)
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        # A fixed number of connections on either backend; a thread beyond them waits.
        pooled: dict[str, Any] = {
            "pool_size": self.connections,
            "max_overflow": 0,
            "pool_timeout": POOL_TIMEOUT_SECONDS,
        }
        # The SQLite file, if the database is one (not in memory, not PostgreSQL).
        self.sqlite_file: Path | None = None
        if self.is_sqlite:
            path = sqlite_path(parsed)
            self.sqlite_file = path
            if path is not None:
                _tighten_sqlite_files(path)
                # A pool of file connections: each keeps its PRAGMAs, and a commit no longer
                # closes the last connection (which checkpointed the WAL every time).
                self.engine = create_engine(
                    url,
                    poolclass=QueuePool,
                    connect_args={"check_same_thread": False},
                    **pooled,
                )
            else:
                # One in-memory database is one connection: every checkout must share it.
                self.engine = create_engine(
                    url, poolclass=StaticPool, connect_args={"check_same_thread": False}
                )
            _configure_sqlite(self.engine, path)
        else:
            self.engine = create_engine(url, pool_pre_ping=True, **pooled)
        in_forked_children(self.engine, _forget_pool)
        # Made once: each transaction takes the one it needs. SQLite's writers lock at BEGIN.
        self._writer = self.engine.execution_options(**{MODE_OPTION: "write"})
        self._reader = self.engine.execution_options(**{MODE_OPTION: "read"})
        # SQLite has one writer at a time: this host's writers queue for it on one gate, and
        # the write-ahead log is copied back by a thread, never by a writer's commit
        # (store/sqlite_writes.py). PostgreSQL locks rows, not the database: no gate.
        self._write_gate: AbstractContextManager[object] = (
            WriterGate(self.sqlite_file, file_mode=SQLITE_FILE_MODE)
            if self.is_sqlite
            else nullcontext()
        )
        self._checkpointer = (
            Checkpointer(self.sqlite_file, self._write_gate) if self.sqlite_file else None
        )

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Transaction]:
        """Open a transaction, or join the one already open in this context.

        It commits when the block ends normally and rolls back on an exception. A joined
        transaction commits with the outer one. The ``before_commit`` hooks run just before the
        commit (the audit chain's among them), so what they lock stays locked only until then.
        """
        outer = _current.get()
        if outer is not None:
            if write and not outer.write:
                raise RuntimeError("a write cannot join a read-only transaction")
            yield outer
            return
        scope = _scope.get() if write else None
        if scope is not None and scope.transaction is not None:
            raise RuntimeError("a write request writes in one transaction")
        engine = self._writer if write else self._reader
        (_WRITES if write else _READS).inc()
        gate = self._write_gate if write else nullcontext()
        with gate, engine.connect() as connection, connection.begin():
            if self.is_sqlite:
                begin_sqlite(connection, write=write)
            tx = Transaction(connection=connection, write=write)
            token = _current.set(tx)
            try:
                yield tx
                if scope is not None:
                    scope.transaction = tx
                    scope.finished = scope.finish(tx)
                for hook in _before_commit:
                    hook(tx)
            finally:
                _current.reset(token)
        if write and self._checkpointer is not None:
            self._checkpointer.wrote()

    @contextmanager
    def write_scope(self, finish: Callable[[Transaction], object]) -> Iterator[WriteScope]:
        """The scope of one write request (:class:`WriteScope`): its write transaction opens at
        its first write and commits when that ends, after ``finish`` ran in it."""
        if _current.get() is not None:
            raise RuntimeError("a write scope opens outside any transaction")
        scope = WriteScope(finish)
        token = _scope.set(scope)
        try:
            yield scope
        finally:
            _scope.reset(token)

    @contextmanager
    def operation(self) -> Iterator[None]:
        """Join whatever transaction this context has open (a request's), or open a write one.

        scim2-server's storage contract encloses each operation in ``storage.operation()``; the
        bridge's request already holds a transaction, and a storage used on its own needs one.
        """
        if _current.get() is not None:
            yield
            return
        with self.transaction(write=True):
            yield

    def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self.engine.dispose()


def insert_ignoring_duplicates(table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING, on SQLite and PostgreSQL alike."""
    if not rows:
        return
    connection = current_transaction().connection
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        statement = dialect.insert(table).values(list(rows[start : start + ROWS_PER_STATEMENT]))
        connection.execute(statement.on_conflict_do_nothing())


def upsert(
    table: Table, rows: Sequence[dict[str, Any]], keys: list[str], updated: list[str]
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET updated, on SQLite and PostgreSQL alike."""
    connection = current_transaction().connection
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        statement = dialect.insert(table).values(list(rows[start : start + ROWS_PER_STATEMENT]))
        statement = statement.on_conflict_do_update(
            index_elements=keys, set_={name: statement.excluded[name] for name in updated}
        )
        connection.execute(statement)


def open_transaction() -> Transaction | None:
    """The transaction of this context, if one is open."""
    return _current.get()


def current_transaction() -> Transaction:
    """The transaction of this context; storage methods run inside one."""
    tx = _current.get()
    if tx is None:
        raise RuntimeError("no transaction is open")
    return tx
