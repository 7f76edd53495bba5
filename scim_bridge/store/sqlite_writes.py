"""How SQLite's one writer at a time is shared, and when its write-ahead log is copied back.

Measured under ``benchmarks/load.py`` (POST /Users at 16 clients, GitLab at 100 ms; each POST
makes three write transactions that hold the lock about 4 ms in all), a POST waited 18-25 ms for
the lock, for two reasons this module removes:

- **Writers in other processes polled.** gunicorn's workers and the background worker are
  separate processes. A writer that found the database locked slept in SQLite's busy handler
  (1, 2, 5, 10 ms ... before it looks again), while the holder's process handed the lock from
  thread to thread. :class:`WriterGate` queues every writer of the host on one ``flock`` next to
  the database file: the kernel wakes the next one the moment the lock is free, whichever process
  it is in. Within a process a thread lock comes first, so one thread per process waits on the
  file. SQLite's own locking is unchanged (``BEGIN IMMEDIATE``, the busy timeout): the gate only
  orders the writers that take it; a process without it (the ``sqlite3`` shell) is still safe.
- **Commits copied the log back.** SQLite checkpoints the WAL inside the commit that crosses
  1,000 pages, with an ``fsync``: that writer, and every writer queued behind it, waited for the
  disk. Connections here never checkpoint on commit (``wal_autocheckpoint=0``); a
  :class:`Checkpointer` thread in each process that writes runs a ``PASSIVE`` checkpoint about
  once a second after writes, which waits for no reader or writer. The last connection to close
  still checkpoints and removes the log, as before.

The log is also kept to a size. Pooled connections never all close while the bridge runs, and a
``PASSIVE`` checkpoint never shortens the file: SQLite starts the log over only when a writer comes
while no reader uses it, which under steady traffic (readers every few milliseconds) may never
happen. ``benchmarks/initial_sync.py`` left a 494 MB log behind after its PATCH phase. When the file
has grown past ``WAL_LIMIT_BYTES``, the checkpointer runs a ``TRUNCATE`` checkpoint, which empties
it, as one of the writers (inside the :class:`WriterGate`): writers wait for it in the gate, as
for each other, and it waits at most ``TRUNCATE_WAIT_SECONDS`` for the readers still on the log
(new readers read the database file once it is copied back). A reader that stays longer makes it
give up until its next turn; nothing waits on it beyond that.

Neither applies to an in-memory database (no file, no log) or to PostgreSQL (row locks).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from contextlib import AbstractContextManager
from contextlib import nullcontext
from pathlib import Path
from types import TracebackType

from scim_bridge.store.forks import in_forked_children

try:
    import fcntl
except ImportError:  # not on POSIX: the thread lock alone, SQLite's busy handler between processes
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

GATE_SUFFIX = "-writer"  # the gate's lock file, beside the database and its -wal and -shm
CHECKPOINT_INTERVAL_SECONDS = 1.0
# Past this size the log is emptied among the writers (see the module); a few seconds of the
# heaviest writes measured (an initial sync's PATCH phase wrote about 15 MB a second).
WAL_LIMIT_BYTES = 64 * 1024 * 1024
TRUNCATE_WAIT_SECONDS = 0.25


class WriterGate:
    """One writer at a time among this host's processes, woken in turn (see the module)."""

    def __init__(self, database: Path | None, *, file_mode: int) -> None:
        self._threads = threading.Lock()
        self._path = database.with_name(database.name + GATE_SUFFIX) if database else None
        self._file_mode = file_mode
        self._descriptor: int | None = None
        self._opened = False
        in_forked_children(self, WriterGate._forget)

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            descriptor = self._file()
            if descriptor is not None:
                fcntl.flock(descriptor, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        try:
            if self._descriptor is not None:
                fcntl.flock(self._descriptor, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _file(self) -> int | None:
        """This process's descriptor of the lock file, opened at its first write."""
        if self._opened or self._path is None or fcntl is None:
            return self._descriptor
        self._opened = True
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
        try:
            self._descriptor = os.open(self._path, flags, self._file_mode)
        except OSError as error:  # a read-only directory, say: SQLite still serialises
            log.warning("SQLite writers are not queued across processes: %s", error)
        return self._descriptor

    def _forget(self) -> None:
        """In a forked child: a descriptor inherited across ``fork`` shares its lock with the
        parent, and a thread lock a parent's thread held stays held; the child starts afresh."""
        if self._descriptor is not None:
            os.close(self._descriptor)
        self._descriptor, self._opened = None, False
        self._threads = threading.Lock()


class Checkpointer:
    """Copies the write-ahead log back into the database from a thread of its own, once a
    second at most, and only after writes; empties it, among the writers of ``gate``, once it is
    past ``WAL_LIMIT_BYTES`` (see the module)."""

    def __init__(self, database: Path, gate: AbstractContextManager[object] | None = None) -> None:
        self._database = database
        self._log = database.with_name(database.name + "-wal")
        self._gate: AbstractContextManager[object] = gate if gate is not None else nullcontext()
        self._limit = WAL_LIMIT_BYTES  # read here, so a test may lower it
        self._writes = 0
        self._running = False
        self._guard = threading.Lock()
        self._stopped = threading.Event()
        in_forked_children(self, Checkpointer._forget)

    def wrote(self) -> None:
        """A write transaction committed: there is log to copy back (the thread starts on the
        first)."""
        self._writes += 1
        if not self._running:
            self._start()

    def stop(self) -> None:
        """Stop the thread (a database disposed of); a later write starts another."""
        with self._guard:
            self._stopped.set()
            self._running = False

    def checkpoint(self, connection: sqlite3.Connection) -> None:
        """One ``PASSIVE`` checkpoint: it copies what no reader still needs, and waits for no one.
        Then, if the log file is past the limit, it is emptied (:meth:`truncate`)."""
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        if self._log_size() > self._limit:
            self.truncate(connection)

    def truncate(self, connection: sqlite3.Connection) -> bool:
        """A ``TRUNCATE`` checkpoint as one of the writers; False if a reader kept it from
        finishing within ``TRUNCATE_WAIT_SECONDS`` (the next turn tries again)."""
        with self._gate:
            if self._log_size() <= self._limit:  # another process's checkpointer was first
                return True
            busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            log.info("SQLite log not emptied yet: a reader is still on it")
        return not busy

    def _log_size(self) -> int:
        try:
            return self._log.stat().st_size
        except OSError:  # no log (yet): nothing to empty
            return 0

    def _forget(self) -> None:
        """In a forked child: the parent's thread does not exist there; the child starts its own."""
        self._running = False
        self._guard = threading.Lock()

    def _start(self) -> None:
        with self._guard:
            if self._running:
                return
            self._running = True
            self._stopped = threading.Event()
            thread = threading.Thread(
                target=self._run, args=(self._stopped,), name="sqlite-checkpoint", daemon=True
            )
            thread.start()

    def _run(self, stopped: threading.Event) -> None:
        copied = 0
        connection: sqlite3.Connection | None = None
        try:
            while not stopped.wait(CHECKPOINT_INTERVAL_SECONDS):
                if self._writes == copied:
                    continue
                copied = self._writes
                try:
                    if connection is None:
                        connection = sqlite3.connect(
                            self._database,
                            timeout=TRUNCATE_WAIT_SECONDS,
                            isolation_level=None,
                            check_same_thread=False,
                        )
                    self.checkpoint(connection)
                except sqlite3.Error as error:  # retried after the next write
                    log.warning("SQLite checkpoint failed: %s", error)
        finally:
            if connection is not None:
                connection.close()
