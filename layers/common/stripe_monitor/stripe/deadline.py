"""A hard end to every request to Stripe at the caller's deadline.

urllib3's timeouts bound each socket operation, not the exchange: an answer sent one byte a second never
trips them, and on Lambda the invocation would be killed before the check is stored. urllib3 has no
whole-request deadline, so this adds one: the connections a request uses are watched, and a timer shuts
their sockets down at the deadline, which ends any blocked read at once (the request then fails as a
timeout). A connection handed back to the pool is no longer watched, so another request's is never hit.
"""

import contextlib
import contextvars
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
        self._watched: set[HTTPConnection] = set()
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(deadline - time.monotonic(), 0.0), self._expire)
        self._timer.daemon = True
        self._token: contextvars.Token[DeadlineGuard | None] | None = None

    def __enter__(self) -> Self:
        self._token = _current.set(self)
        self._timer.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with self._lock:
            self._watched.clear()
        self._timer.cancel()
        if self._token is not None:
            _current.reset(self._token)

    def watch(self, connection: HTTPConnection) -> None:
        with self._lock:
            if self.expired:
                _shut_down(connection)
            else:
                self._watched.add(connection)

    def release(self, connection: HTTPConnection) -> None:
        with self._lock:
            self._watched.discard(connection)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for connection in self._watched:
                _shut_down(connection)


def guarded_pool_manager(**options: Any) -> PoolManager:
    """A PoolManager whose connections obey the current ``DeadlineGuard``."""
    manager = PoolManager(**options)
    manager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}
    return manager


def _shut_down(connection: HTTPConnection) -> None:
    sock = connection.sock
    if sock is not None:
        # The plain socket's shutdown, also for a TLS socket: it wakes a blocked read.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watched:
    def request(self, *args: Any, **kwargs: Any) -> None:
        if (guard := _current.get()) is not None:
            guard.watch(self)  # type: ignore[arg-type]
        super().request(*args, **kwargs)  # type: ignore[misc]


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
