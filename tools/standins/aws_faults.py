"""A fault-injecting HTTP proxy on 127.0.0.1 in front of moto's server.

Point the code under test at it with ``AWS_ENDPOINT_URL`` (``proxy.environment``). Every request is
forwarded to moto unchanged unless an armed ``AwsFault`` matches its operation (the ``X-Amz-Target``
header, e.g. ``DynamoDB_20120810.PutItem`` or ``secretsmanager.GetSecretValue``). A fault can:

- ``error``:       answer with an AWS JSON error (``ProvisionedThroughputExceededException``,
                   ``ThrottlingException``, ``AccessDeniedException`` ...) in the wire format of the
                   service, so botocore classifies and retries it exactly as it would the real one;
- ``hold``:        keep the request waiting until ``release()`` (to line up races between two runs);
- ``drop``:        close the connection without an answer, before moto sees the request;
- ``lose_answer``: forward to moto, then close the connection instead of answering: the write happened
                   but the client cannot know (a timeout or a reset after the commit).

Each fault fires ``times`` times (``None``: forever) on requests whose compact JSON body contains
``match`` (when given). ``calls`` counts requests per operation, ``injected`` the faulted ones, and ``log``
keeps every request, so tests can bound attempt counts and inspect what was sent.

``serialize`` forwards requests one at a time (``True``), or only those of the named operations (e.g. the
writes): DynamoDB's conditional writes are atomic per item, moto's are not across its server threads, and
a load test must not count moto's races as lost records.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
import types
import uuid
import zlib
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Literal, Self
from urllib.parse import urlsplit

from tools.standins.aws import aws_environment
from tools.standins.service import Service

PUT_ITEM = "DynamoDB_20120810.PutItem"
BATCH_GET_ITEM = "DynamoDB_20120810.BatchGetItem"
QUERY = "DynamoDB_20120810.Query"
GET_SECRET_VALUE = "secretsmanager.GetSecretValue"
# Every DynamoDB operation that writes (conditionally or not).
DYNAMODB_WRITES = frozenset(
    {PUT_ITEM, "DynamoDB_20120810.UpdateItem", "DynamoDB_20120810.DeleteItem",
     "DynamoDB_20120810.BatchWriteItem", "DynamoDB_20120810.TransactWriteItems"}
)  # fmt: skip

if TYPE_CHECKING:
    import pytest

AwsFaultKind = Literal["error", "hold", "drop", "lose_answer"]
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "x-amz-crc32"}
_DYNAMODB_PREFIX = "DynamoDB_20120810."


@dataclass(frozen=True)
class AwsFault:
    """One scripted AWS misbehaviour; ``operation`` is one ``X-Amz-Target`` or a tuple of them."""

    operation: str | tuple[str, ...]
    kind: AwsFaultKind = "error"
    code: str = "ProvisionedThroughputExceededException"
    status: int = 400
    message: str = "Injected fault."
    times: int | None = 1
    match: str | None = None

    def __post_init__(self) -> None:
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1 (or None for forever)")

    @property
    def operations(self) -> frozenset[str]:
        return frozenset((self.operation,) if isinstance(self.operation, str) else self.operation)

    @classmethod
    def throttle(cls, operation: str | tuple[str, ...], *, times: int | None = 1, **more: Any) -> AwsFault:
        """DynamoDB's ``ProvisionedThroughputExceededException``, other services' ``ThrottlingException``."""
        ops = (operation,) if isinstance(operation, str) else operation
        code = (
            "ProvisionedThroughputExceededException"
            if all(op.startswith(_DYNAMODB_PREFIX) for op in ops)
            else "ThrottlingException"
        )
        return cls(operation, code=code, message="Rate exceeded (injected).", times=times, **more)

    @classmethod
    def access_denied(cls, operation: str, *, times: int | None = None, match: str | None = None) -> AwsFault:
        message = "User is not authorized to perform this action (injected)."
        return cls(operation, code="AccessDeniedException", message=message, times=times, match=match)


@dataclass
class ProxyRecord:
    operation: str
    body: bytes
    fault: AwsFaultKind | None
    status: int | None = None  # None: no answer (dropped, or the upstream failed)
    error_code: str | None = None

    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body or b"{}")
        return parsed

    def compact(self) -> str:
        """The body as the ``match`` of a fault sees it: compact JSON with sorted keys."""
        return _compact(self.body)


@dataclass
class _Armed:
    fault: AwsFault
    remaining: int | None
    fired: int = 0


@dataclass
class _State:
    faults: list[_Armed] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)
    log: list[ProxyRecord] = field(default_factory=list)


class AwsFaultProxy(Service):
    """Thread-safe; use as a context manager or call start()/stop()."""

    def __init__(self, upstream_url: str, *, serialize: bool | Collection[str] = False) -> None:
        split = urlsplit(upstream_url)
        if split.hostname not in ("127.0.0.1", "localhost") or split.port is None:
            raise ValueError("the proxy only forwards to a local moto server (http://127.0.0.1:port)")
        self.upstream = (split.hostname, split.port)
        self.serialize = serialize
        self._lock = threading.Lock()
        self._forward_lock = threading.Lock()
        self._state = _State()
        self._release = threading.Event()
        self._held = threading.Condition(self._lock)
        self._holding = 0
        self._server: _ProxyServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        self._server = _ProxyServer(("127.0.0.1", 0), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="aws-faults", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._release.set()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=2)

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("proxy is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def environment(self) -> dict[str, str]:
        """What the code under test needs to reach AWS through this proxy."""
        return aws_environment(self.endpoint_url)

    # -- faults ----------------------------------------------------------------------------------

    def inject(self, *faults: AwsFault) -> None:
        """Arm faults (in addition to those armed); the first matching one fires."""
        with self._lock:
            self._state.faults += [_Armed(f, f.times) for f in faults]
            if any(f.kind == "hold" for f in faults):
                self._release.clear()

    def clear(self) -> None:
        """Disarm every fault and release held requests; counters stay."""
        with self._lock:
            self._state.faults.clear()
        self.release()

    def release(self) -> None:
        """Let held requests (and any later ``hold`` fault) through."""
        self._release.set()

    def wait_for_hold(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Wait until ``count`` requests are being held."""
        deadline = time.monotonic() + timeout
        with self._held:
            while self._holding < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._held.wait(left)
            return True

    @property
    def calls(self) -> Counter[str]:
        with self._lock:
            return Counter(self._state.calls)

    @property
    def injected(self) -> Counter[str]:
        with self._lock:
            return Counter(self._state.injected)

    @property
    def log(self) -> list[ProxyRecord]:
        with self._lock:
            return list(self._state.log)

    def requests_for(self, operation: str) -> list[ProxyRecord]:
        return [r for r in self.log if r.operation == operation]

    # -- used by the handler ---------------------------------------------------------------------

    def _begin(self, operation: str, body: bytes) -> tuple[ProxyRecord, AwsFault | None]:
        compact = _compact(body)
        with self._lock:
            self._state.calls[operation] += 1
            chosen: AwsFault | None = None
            for armed in self._state.faults:
                fault = armed.fault
                if operation in fault.operations and (fault.match is None or fault.match in compact):
                    chosen = fault
                    armed.fired += 1
                    if armed.remaining is not None:
                        armed.remaining -= 1
                        if armed.remaining == 0:
                            self._state.faults.remove(armed)
                    self._state.injected[operation] += 1
                    break
            record = ProxyRecord(operation, body, chosen.kind if chosen else None)
            self._state.log.append(record)
            return record, chosen

    def _hold(self) -> None:
        with self._held:
            self._holding += 1
            self._held.notify_all()
        try:
            self._release.wait()
        finally:
            with self._held:
                self._holding -= 1

    def _forward(
        self,
        conn: http.client.HTTPConnection,
        operation: str,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        one_at_a_time = self.serialize is True or (
            not isinstance(self.serialize, bool) and operation in self.serialize
        )
        with self._forward_lock if one_at_a_time else contextlib.nullcontext():
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], proxy: AwsFaultProxy) -> None:
        super().__init__(address, _ProxyHandler)
        self.proxy = proxy
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, conn: socket.socket, *, add: bool) -> None:
        with self._connections_lock:
            (self._connections.add if add else self._connections.discard)(conn)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # clients hanging up and dropped connections are part of the job


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _ProxyServer
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:
        return

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)
            if self._upstream is not None:
                self._upstream.close()

    def do_POST(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        proxy = self.server.proxy
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        operation = self.headers.get("X-Amz-Target", f"{self.command} {self.path}")
        record, fault = proxy._begin(operation, body)
        if fault is not None and fault.kind == "hold":
            proxy._hold()
            fault = None
        if fault is not None and fault.kind == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault is not None and fault.kind == "error":
            self._send_error(record, fault)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        try:
            status, answer_headers, answer = proxy._forward(
                self._connection(), operation, self.command, self.path, headers, body
            )
        except (OSError, http.client.HTTPException):
            # moto is gone: the client sees what it would see of a dead endpoint, a dropped connection.
            self._upstream = None
            self.close_connection = True
            return
        if fault is not None and fault.kind == "lose_answer":
            record.status = status
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(record, status, answer_headers, answer)

    def _connection(self) -> http.client.HTTPConnection:
        if self._upstream is None:
            host, port = self.server.proxy.upstream
            self._upstream = http.client.HTTPConnection(host, port, timeout=30)
        return self._upstream

    def _send_error(self, record: ProxyRecord, fault: AwsFault) -> None:
        record.error_code = fault.code
        if record.operation.startswith(_DYNAMODB_PREFIX):
            payload = {"__type": f"com.amazonaws.dynamodb.v20120810#{fault.code}", "message": fault.message}
            content_type = "application/x-amz-json-1.0"
        else:
            payload = {"__type": fault.code, "Message": fault.message}
            content_type = "application/x-amz-json-1.1"
        headers = [("Content-Type", content_type)]
        self._send(record, fault.status, headers, json.dumps(payload).encode())

    def _send(self, record: ProxyRecord, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        record.status = status
        if status >= 400 and record.error_code is None:
            with contextlib.suppress(ValueError, AttributeError):
                record.error_code = str(json.loads(body).get("__type", "")).rpartition("#")[2] or None
        self.send_response(status)
        sent = set()
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
                sent.add(name.lower())
        if "x-amzn-requestid" not in sent:
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if record.operation.startswith(_DYNAMODB_PREFIX):
            # botocore checks DynamoDB bodies against this header; bodies changed here need a new one.
            self.send_header("x-amz-crc32", str(zlib.crc32(body) & 0xFFFFFFFF))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _compact(body: bytes) -> str:
    try:
        return json.dumps(json.loads(body or b"{}"), separators=(",", ":"), sort_keys=True)
    except ValueError:
        return body.decode("utf-8", "replace")


def shorten_sdk_backoff(monkeypatch: pytest.MonkeyPatch, cap_seconds: float = 0.02) -> None:
    """Cap the sleeps between AWS retries (botocore's reach 20 s in standard mode) so that fault tests
    stay quick.

    Only the sleeping changes: which errors are retried, and how many attempts are made, do not.
    """
    import botocore.endpoint

    def short_sleep(seconds: float) -> None:
        time.sleep(min(seconds, cap_seconds))

    shim = types.SimpleNamespace(**{n: getattr(time, n) for n in dir(time) if not n.startswith("_")})
    shim.sleep = short_sleep
    monkeypatch.setattr(botocore.endpoint, "time", shim)
