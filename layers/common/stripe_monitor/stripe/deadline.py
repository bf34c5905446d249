"""A hard end to every request to Stripe at the caller's deadline.

urllib3's timeouts bound each socket operation, not the exchange: an answer sent one byte a second never
trips them, and on Lambda the invocation would be killed before the check is stored. urllib3 has no
whole-request deadline, so this adds one: the connections a request uses are watched, and one watchdog
thread shuts their sockets down at the deadline, which ends any blocked read at once (the request then
fails as a timeout). A connection handed back to the pool is no longer watched, so another request's is
never hit.
"""

import contextlib
import contextvars
import heapq
import socket
import threading
import time
from types import TracebackType
from typing import Any, Self

from urllib3 import PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_current: contextvars.ContextVar["DeadlineGuard | None"] = contextvars.ContextVar(
    "stripe_deadline", default=None
)


class DeadlineGuard:
    """``with DeadlineGuard(deadline):`` around one request (all its attempts) on this thread."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        self.active = True
        # Each connection's socket, kept here: http.client drops its own reference when an answer says
        # "Connection: close", while the answer's body is still read from that socket.
        self._watched: dict[HTTPConnection, socket.socket] = {}
        self._lock = threading.Lock()
        self._token: contextvars.Token[DeadlineGuard | None] | None = None

    def __enter__(self) -> Self:
        self._token = _current.set(self)
        _WATCHDOG.add(self)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with self._lock:
            self.active = False
            self._watched.clear()
        if self._token is not None:
            _current.reset(self._token)

    def watch(self, connection: HTTPConnection) -> None:
        if (sock := connection.sock) is None:
            return
        with self._lock:
            if self.expired:
                _shut_down(sock)
            else:
                self._watched[connection] = sock

    def release(self, connection: HTTPConnection) -> None:
        with self._lock:
            self._watched.pop(connection, None)

    def expire(self) -> None:
        with self._lock:
            if not self.active:
                return
            self.expired = True
            for sock in self._watched.values():
                _shut_down(sock)


class _Watchdog:
    """One thread for every guard (not a timer thread a request): it sleeps until the earliest deadline."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, DeadlineGuard]] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, guard: DeadlineGuard) -> None:
        with self._wake:
            heapq.heappush(self._due, (guard.deadline, id(guard), guard))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="stripe-deadline", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._due and not self._due[0][2].active:
                    heapq.heappop(self._due)  # finished in time
                if not self._due:
                    self._wake.wait()
                    continue
                wait = self._due[0][0] - time.monotonic()
                if wait > 0:
                    self._wake.wait(min(wait, 60.0))
                    continue
                _, _, guard = heapq.heappop(self._due)
            guard.expire()


_WATCHDOG = _Watchdog()


def guarded_pool_manager(**options: Any) -> PoolManager:
    """A PoolManager whose connections obey the current ``DeadlineGuard``."""
    manager = PoolManager(**options)
    manager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}
    return manager


def _shut_down(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for a TLS socket: it wakes a blocked read.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watched:
    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)  # type: ignore[misc]  # connects (bounded by the connect timeout)
        if (guard := _current.get()) is not None:
            guard.watch(self)  # type: ignore[arg-type]


class _GuardedHTTPConnection(_Watched, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_Watched, HTTPSConnection):
    pass


def _release(conn: object) -> None:
    if isinstance(conn, HTTPConnection) and (guard := _current.get()) is not None:
        guard.release(conn)


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection

    def _put_conn(self, conn: Any) -> None:
        _release(conn)
        super()._put_conn(conn)


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection

    def _put_conn(self, conn: Any) -> None:
        _release(conn)
        super()._put_conn(conn)
