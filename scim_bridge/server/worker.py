"""The bridge's gunicorn worker: gthread, with refusals held by a timer and a per-address cap.

gunicorn's ``gthread`` worker serves each request on a pool thread. Two things let a flood of bad
credentials from one address starve valid callers there, and this worker changes only those:

- **A refusal must take the failure floor, but not a thread.** The app marks such an answer
  (``scim_bridge.server.hold``) before any byte is written, since Flask builds the whole response
  first. The socket gunicorn writes to is then a buffer; the pool thread returns at once, and one
  releaser thread writes the bytes when they fall due, then gives the connection back to the main
  loop exactly as gunicorn would have (kept alive, or closed).
- **One address may hold only so much** (``[server] max_connections_per_address`` in service, of
  which half the threads at most on a thread, and a few hundred open; see ``admission``): its
  other connections wait unread, without a thread.
  Trusted proxies are exempt: they carry every caller, and must limit per client themselves.

New connections are spread evenly over the workers (``scim_bridge.server.balance``): a worker
holding two or more above the least loaded one leaves the next to it, for a bounded time, so
Entra's kept-alive connections do not all land on one process and its one core.

Two of gthread's waits move off the threads that matter, for the same reason: a new connection
waits for its first bytes in the main loop's poller rather than on a pool thread, and a graceful
close (FIN, then read until the peer closes, up to two seconds) happens on the releaser's thread,
not on the main loop, where a peer that never closes would stall every connection of the process.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import time
from concurrent.futures import Future
from functools import partial
from typing import TYPE_CHECKING
from typing import Any
from typing import cast

from gunicorn import util
from gunicorn.workers.gthread import DEFAULT_WORKER_DATA_TIMEOUT
from gunicorn.workers.gthread import TConn
from gunicorn.workers.gthread import ThreadWorker

from scim_bridge.server import hold as holds
from scim_bridge.server.admission import AddressGate
from scim_bridge.server.balance import ConnectionShares
from scim_bridge.server.balance import Share
from scim_bridge.server.proxies import TrustedProxies
from scim_bridge.server.proxies import parse_address
from scim_bridge.server.releaser import Releaser
from scim_bridge.settings import load_settings

if TYPE_CHECKING:
    from gunicorn.config import Config
    from gunicorn.http import Request


class Held:
    """An answer built and buffered, to be written at ``due``."""

    __slots__ = ("data", "due", "keepalive")

    def __init__(self, due: float, data: bytes, keepalive: bool) -> None:
        self.due = due
        self.data = data
        self.keepalive = keepalive


class HoldingSocket:
    """What gunicorn writes a response to: the socket itself, or a buffer once a hold was asked.

    The app decides before the first byte of its response is written, so an answer is either all
    written now or all buffered. Anything else (reads, ``shutdown``, ``close``) goes to the socket.
    """

    def __init__(self, sock: Any, hold: holds.Hold) -> None:
        self._sock = sock
        self._hold = hold
        self.buffer = bytearray()

    def _holding(self) -> bool:
        return self._hold.due is not None or bool(self.buffer)

    def sendall(self, data: bytes, flags: int = 0) -> None:
        if self._holding():
            self.buffer += data
        else:
            self._sock.sendall(data, flags)

    def send(self, data: bytes, flags: int = 0) -> int:
        if self._holding():
            self.buffer += data
            return len(data)
        return int(self._sock.send(data, flags))

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        if not self._holding():
            return int(self._sock.sendfile(file, offset, count))
        file.seek(offset)
        data = file.read() if count is None else file.read(count)
        self.buffer += data
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class Conn(TConn):
    """gunicorn's connection, knowing its address's key, whether it is held, and how to close."""

    def __init__(
        self, cfg: Config, sock: socket.socket, client: Any, server: Any, worker: FrontDoorWorker
    ) -> None:
        super().__init__(cfg, sock, client, server)
        self.worker = worker
        self.key = worker.address_key(client)
        self.held: Held | None = None
        self.closed = False

    def close(self, graceful: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        self.worker.connection_closed(self)
        if graceful:
            self.worker.releaser.linger(self.sock)
        else:
            util.close(self.sock)


def _own(conn: TConn) -> Conn:
    """A connection of this worker: its ``accept`` makes every one a :class:`Conn`."""
    assert isinstance(conn, Conn)
    return conn


class FrontDoorWorker(ThreadWorker):
    """gunicorn's gthread worker that holds refusals without a thread and caps each address."""

    def init_process(self) -> None:
        settings = load_settings()
        self.trusted = TrustedProxies(settings.server.trusted_proxies)
        limit = settings.server.max_connections_per_address
        self.gate: AddressGate[Conn] = AddressGate.for_process(limit, self.cfg.threads)
        self.releaser = Releaser(self._deliver, stopping=lambda: not self.alive)
        # Given by the master before the fork (gunicorn_conf.pre_fork); absent under another
        # configuration, when this worker simply takes what it is given.
        shares: ConnectionShares | None = getattr(self, "connection_shares", None)
        slot: int | None = getattr(self, "share_slot", None)
        self.share = Share(shares, slot, os.getpid()) if shares and slot is not None else None
        super().init_process()  # runs the worker: everything it uses exists before

    def run(self) -> None:
        self.releaser.start()
        try:
            super().run()
        finally:
            self.releaser.stop()

    def address_key(self, client: Any) -> str | None:
        """The peer address the caps count by; None (not counted) for trusted proxies, sockets."""
        address = parse_address(client[0]) if isinstance(client, tuple) and client else None
        if address is None or address in self.trusted:
            return None
        return str(address)

    # -- Accepting: even shares, the open-connection cap, the first bytes awaited in the poller -

    def set_accept_enabled(self, enabled: bool | None) -> None:
        if enabled and self.share is not None and self.share.leaning():
            return  # gthread's loop asks again once the lean-back is over
        super().set_accept_enabled(enabled)

    def wait_for_and_dispatch_events(self, timeout: float | None) -> None:
        share = self.share
        if share is not None and share.leaning_until is not None:
            remaining = max(0.0, share.leaning_until - time.monotonic())
            timeout = remaining if timeout is None else min(timeout, remaining)
        super().wait_for_and_dispatch_events(timeout)
        if share is not None:
            share.polled()
            share.publish(self.nr_conns)

    def accept(self, listener: socket.socket) -> None:
        if self.share is not None and self.share.lean_back(self.nr_conns):
            self.set_accept_enabled(False)  # a less loaded worker was woken for it too
            return
        try:
            client_sock, client_addr = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        key = self.address_key(client_addr)
        if key is not None and not self.gate.opened(key):
            util.close(client_sock)  # this address already holds all it may
            return
        self.nr_conns += 1
        conn = Conn(self.cfg, client_sock, client_addr, listener.getsockname(), self)
        # Wait for the request in the poller, as gthread does for a deferred connection, so a
        # silent connection costs no thread.
        conn.timeout = time.monotonic() + max(self.cfg.keepalive, DEFAULT_WORKER_DATA_TIMEOUT)
        self.pending_conns.append(conn)
        self.poller.register(
            conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn)
        )

    def connection_closed(self, conn: Conn) -> None:
        if conn.key is not None:
            self.gate.closed(conn.key)

    # -- Serving: the in-service cap ---------------------------------------------------------------

    def enqueue_req(self, conn: TConn) -> None:
        conn = _own(conn)
        if conn.key is None or self.gate.enter(conn.key, conn):
            super().enqueue_req(conn)

    def _admit(self, key: str | None) -> None:
        if key is not None:
            for conn in self.gate.admit(key):
                super().enqueue_req(conn)

    def handle(self, conn: TConn) -> Any:
        conn = _own(conn)
        result = super().handle(conn)
        held, conn.held = conn.held, None
        if held is None:
            return result
        held.keepalive = bool(result)
        return held

    def handle_request(self, req: Request, conn: TConn) -> bool:
        conn = _own(conn)
        hold = holds.begin()
        sock = conn.sock
        holding = HoldingSocket(sock, hold)
        # gunicorn only writes to conn.sock while it serves the request: a stand-in will do.
        conn.sock = cast(socket.socket, holding)
        try:
            keepalive = bool(super().handle_request(req, conn))
        finally:
            conn.sock = sock
            holds.end()
        if hold.due is not None:
            conn.held = Held(hold.due, bytes(holding.buffer), keepalive)
        return keepalive

    def finish_request(self, conn: TConn, fs: Future[Any]) -> None:
        conn = _own(conn)
        result = fs.result() if fs.done() and not fs.cancelled() and not fs.exception() else None
        if isinstance(result, Held):
            self.releaser.hold(result.due, conn, result.data, result.keepalive)
            if conn.key is not None:  # off its thread, but in service until it is released
                self.gate.held(conn.key)
                self._admit(conn.key)
            return
        self._finish(conn, fs, on_thread=True)

    def _finish(self, conn: Conn, fs: Future[Any], *, on_thread: bool) -> None:
        """gunicorn's own ending of a request, once the connection is out of service."""
        if conn.key is not None:
            self.gate.leave(conn.key, on_thread=on_thread)
        super().finish_request(conn, fs)
        self._admit(conn.key)

    # -- Releasing ---------------------------------------------------------------------------------

    def _deliver(self, conn: Conn, keepalive: bool, written: bool) -> None:
        """On the releaser's thread: back to the main loop, which owns the connection."""
        self.method_queue.defer(self._released, conn, keepalive, written)

    def _released(self, conn: Conn, keepalive: bool, written: bool) -> None:
        if not written:  # the peer is gone or not reading: no graceful close for it
            if conn.key is not None:
                self.gate.leave(conn.key, on_thread=False)
            self.nr_conns -= 1
            conn.close()
            self._admit(conn.key)
            return
        done: Future[Any] = Future()
        done.set_result(keepalive)
        self._finish(conn, done, on_thread=False)
