"""One thread that writes held answers when they fall due, and closes connections gracefully.

Neither job may take a request thread or the worker's main loop: a held answer waits in a heap
ordered by due time, and a closing connection (FIN sent, then read until the peer closes, as
gunicorn's ``close_graceful`` does, for up to two seconds) waits in a selector. Writes never block:
an answer is a few hundred bytes, so a peer that cannot take it at once is not reading, and its
connection is closed instead of waited for.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

log = logging.getLogger(__name__)

# At most this long between two looks at ``stopping`` (a stopping worker releases everything).
POLL_SECONDS = 0.25
LINGER_SECONDS = 2.0  # as gunicorn's close_graceful
MAX_DRAIN = 65536

# (connection, keep it alive, the answer was written): called on the releaser's thread.
Deliver = Callable[[Any, bool, bool], None]


@dataclass(order=True)
class _Held:
    due: float
    seq: int
    conn: Any = field(compare=False)
    data: bytes = field(compare=False)
    keepalive: bool = field(compare=False)


def write_now(sock: Any, data: bytes) -> bool:
    """Write ``data`` without waiting: False if the peer could not take all of it at once."""
    try:
        sock.setblocking(False)
        view = memoryview(data)
        while view:
            view = view[sock.send(view) :]
        return True
    except OSError:  # full (BlockingIOError, SSLWantWriteError), reset, or closed
        return False
    finally:
        with contextlib.suppress(OSError):
            sock.setblocking(True)


class Releaser:
    def __init__(
        self,
        deliver: Deliver,
        *,
        stopping: Callable[[], bool],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._deliver = deliver
        self._stopping = stopping
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._heap: list[_Held] = []
        self._seq = itertools.count()
        self._arriving: list[Any] = []  # sockets to linger on, adopted by the thread
        self._lingering: dict[Any, int] = {}  # socket -> bytes drained
        self._deadlines: deque[tuple[float, Any]] = deque()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="scim-bridge-releaser", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Release whatever is still held, close what lingers, and end the thread."""
        self._stopped = True
        self._wake()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def hold(self, due: float, conn: Any, data: bytes, keepalive: bool) -> None:
        """Write ``data`` to ``conn.sock`` at ``due`` (monotonic), then hand ``conn`` back."""
        with self._lock:
            heapq.heappush(self._heap, _Held(due, next(self._seq), conn, data, keepalive))
        self._wake()

    def linger(self, sock: Any) -> None:
        """Close ``sock`` gracefully (FIN, drain, close) without blocking the caller."""
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
        except OSError:
            _close(sock)
            return
        with self._lock:
            self._arriving.append(sock)
        self._wake()

    def held(self) -> int:
        with self._lock:
            return len(self._heap)

    def _wake(self) -> None:
        # Full: a wake-up is pending anyway; closed: stopping.
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def _run(self) -> None:
        try:
            while not self._stopped:
                self._release(everything=self._stopping())
                self._adopt()
                self._expire()
                for key, _ in self._selector.select(self._timeout()):
                    if key.fileobj is self._wake_r:
                        self._drain_wake()
                    else:
                        self._drain(key.fileobj)
        except Exception:
            log.exception("the releaser failed; held answers are released now")
        finally:
            self._release(everything=True)
            for sock in list(self._lingering) + self._take_arriving():
                self._forget(sock)

    def _release(self, *, everything: bool) -> None:
        now = self._monotonic()
        with self._lock:
            due: list[_Held] = []
            while self._heap and (everything or self._heap[0].due <= now):
                due.append(heapq.heappop(self._heap))
        for item in due:
            written = write_now(item.conn.sock, item.data)
            try:
                self._deliver(item.conn, item.keepalive and written, written)
            except Exception:
                log.exception("could not hand a released connection back")
                _close(item.conn.sock)

    def _take_arriving(self) -> list[Any]:
        with self._lock:
            arriving, self._arriving = self._arriving, []
        return arriving

    def _adopt(self) -> None:
        deadline = self._monotonic() + LINGER_SECONDS
        for sock in self._take_arriving():
            try:
                self._selector.register(sock, selectors.EVENT_READ)
            except (OSError, ValueError):
                _close(sock)
                continue
            self._lingering[sock] = 0
            self._deadlines.append((deadline, sock))

    def _expire(self) -> None:
        now = self._monotonic()
        while self._deadlines and (
            self._deadlines[0][0] <= now or self._deadlines[0][1] not in self._lingering
        ):
            _, sock = self._deadlines.popleft()
            if sock in self._lingering:
                self._forget(sock)

    def _timeout(self) -> float:
        now = self._monotonic()
        timeout = POLL_SECONDS
        with self._lock:
            if self._heap:
                timeout = min(timeout, self._heap[0].due - now)
        if self._deadlines:
            timeout = min(timeout, self._deadlines[0][0] - now)
        return max(timeout, 0.0)

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def _drain(self, sock: Any) -> None:
        drained = self._lingering.get(sock, 0)
        try:
            while True:
                data = sock.recv(4096)
                drained += len(data)
                if not data or drained >= MAX_DRAIN:
                    break
        except (BlockingIOError, ssl.SSLWantReadError):
            self._lingering[sock] = drained
            return
        except OSError:
            pass
        self._forget(sock)

    def _forget(self, sock: Any) -> None:
        self._lingering.pop(sock, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(sock)
        _close(sock)


def _close(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.close()
