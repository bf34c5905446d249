"""The Stripe stand-in's HTTP server: routes, the v2 wire format (answers and errors), scripted faults
applied to the answers, and the request log kept as requests come and go."""

from __future__ import annotations

import hmac
import json
import re
import socket
import struct
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from time import monotonic
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from tools.standins.stripe.model import (
    PING_EVENT_TYPE,
    Fault,
    RequestRecord,
    Route,
    make_event,
    page_offset,
    page_token,
    random_id,
)
from tools.standins.stripe.state import StandInState

# The v2 docs state no page-size bounds; v1's documented default 10 / max 100 is the closest published rule.
DEFAULT_LIST_LIMIT = 10
MAX_LIST_LIMIT = 100
MAX_REQUEST_BODY = 1 << 20
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})
_INCLUDE_KEY = re.compile(r"include(\[\d*\])?")
_ROUTES: tuple[tuple[re.Pattern[str], Route, str], ...] = (
    (re.compile(r"/v2/core/event_destinations"), "list", "GET"),
    (re.compile(r"/v2/core/event_destinations/([^/]+)"), "retrieve", "GET"),
    (re.compile(r"/v2/core/event_destinations/([^/]+)/ping"), "ping", "POST"),
    (re.compile(r"/v2/core/events/([^/]+)"), "event", "GET"),
)


class _ReplyError(Exception):
    """Raised inside the handler to send a v2 error and stop processing."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        error_type: str | None = None,
        headers: Mapping[str, str] = _NO_HEADERS,
    ) -> None:
        super().__init__(message)
        error: dict[str, str] = {"code": code, "message": message}
        if error_type:
            error["type"] = error_type
        self.status, self.payload, self.headers = status, {"error": error}, headers


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], standin: StandInState) -> None:
        super().__init__(address, _Handler)
        self.standin = standin

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-answer (read timeouts, our own resets) are routine; keep anything else.
        error = sys.exception()
        if error is not None and not isinstance(error, ConnectionError | TimeoutError):
            self.standin.errors.append(error)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "stripe-standin"
    sys_version = ""
    server: _Server
    _record: RequestRecord
    _index = -1  # position of _record in the log; -1 once the record is final

    def log_message(self, format: str, *args: Any) -> None:
        return  # request lines would be noise; the request log is the record

    def setup(self) -> None:
        super().setup()
        self.server.standin._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.standin._track(self.connection, add=False)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    # -- request flow ----------------------------------------------------------------------------

    def _dispatch(self) -> None:
        standin = self.server.standin
        split = urlsplit(self.path)
        route, destination_id, allowed = None, None, ""
        for pattern, name, method in _ROUTES:
            if match := pattern.fullmatch(split.path):
                route, allowed = name, method
                destination_id = unquote(match.group(1)) if name != "list" and name != "event" else None
                break
        supplied = self.headers.get("Authorization", "")
        record = self._record = RequestRecord(
            request_id=random_id("req_", 14),
            method=self.command,
            path=split.path,
            query=tuple(parse_qsl(split.query, keep_blank_values=True)),
            route=route,
            destination_id=destination_id,
            idempotency_key=self.headers.get("Idempotency-Key"),
            stripe_version=self.headers.get("Stripe-Version"),
            user_agent=self.headers.get("User-Agent"),
            content_type=self.headers.get("Content-Type"),
            body=b"",
            authorized=hmac.compare_digest(supplied.encode(), f"Bearer {standin.api_key}".encode()),
            started=monotonic(),
        )
        self._index = standin._begin(record)
        try:
            record = self._record = replace(record, body=self._read_body())
            if not record.authorized:
                raise _ReplyError(
                    401, "api_key_invalid", "Invalid API Key provided.", "invalid_request_error"
                )
            if route is None:
                message = f"Unrecognized request URL ({self.command}: {split.path})."
                raise _ReplyError(404, "not_found", message, "invalid_request_error")
            if self.command != allowed:
                message = f"{self.command} is not allowed on {split.path}."
                raise _ReplyError(405, "method_not_allowed", message, headers={"Allow": allowed})
            fault = standin._take_fault(route, destination_id)
            self._record = replace(record, fault=fault.kind if fault else None)
            hang = fault.seconds if fault is not None and fault.kind == "hang" else 0.0
            if not standin._sleep(standin._latency_for(destination_id) + hang):
                self._abort()
            elif fault is not None and fault.kind not in ("hang", "huge_body"):
                self._send_fault(fault, route, destination_id)
            else:
                status, payload, headers = self._answer(route, destination_id, commit=True)
                if fault is not None and fault.kind == "huge_body":
                    payload = {**payload, "padding": "x" * fault.size}
                self._send_json(status, payload, headers)
        except _ReplyError as answer:
            self._send_json(answer.status, answer.payload, answer.headers)
        finally:
            self._finalize(None)  # no-op unless the request ended without a complete answer

    def _finalize(self, status: int | None) -> None:
        # Runs before the last bytes go out, so a client that has its answer also sees the final record.
        if self._index >= 0:
            self.server.standin._finish(self._index, replace(self._record, ended=monotonic(), status=status))
            self._index = -1

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True  # the body framing is unknown, so the connection cannot be reused
            raise _ReplyError(411, "length_required", "Send request bodies with Content-Length.")
        raw = self.headers.get("Content-Length", "0") or "0"
        if not raw.isdigit():
            self.close_connection = True
            raise _ReplyError(400, "invalid_request", "Malformed Content-Length.")
        if int(raw) > MAX_REQUEST_BODY:
            self.close_connection = True
            raise _ReplyError(413, "request_too_large", "Request body too large.")
        return self.rfile.read(int(raw))

    def _answer(
        self, route: Route, destination_id: str | None, *, commit: bool
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """The honest answer; ``commit=False`` previews a ping without storing anything."""
        standin, record = self.server.standin, self._record
        if route == "list":
            return 200, self._list(), {}
        if route == "event":
            event_id = unquote(record.path.rsplit("/", 1)[1])
            stored = standin._stored_event(event_id)
            if stored is None:
                raise _ReplyError(404, "not_found", f"No such event: '{event_id}'.")
            return 200, stored, {}
        assert destination_id is not None
        destination = standin._destination(destination_id)
        if destination is None:
            raise _ReplyError(404, "not_found", f"No such event destination: '{destination_id}'.")
        if route == "retrieve":
            return 200, destination.to_api(include_url=self._include_url(record.query)), {}
        if record.body.strip() not in (b"", b"{}"):
            try:
                params = json.loads(record.body)
            except ValueError:
                raise _ReplyError(400, "invalid_json", "The request body is not valid JSON.") from None
            if params != {}:
                raise _ReplyError(400, "invalid_fields", "Ping takes no parameters.", "invalid_request_error")
        found = standin._ping_event(destination_id, record.request_id, record.idempotency_key, commit=commit)
        if found is None:
            message = "This idempotency key was already used for a request to another event destination."
            raise _ReplyError(409, "idempotency_error", message)
        event, replayed = found
        if commit and not replayed:
            standin._deliver(destination, event)
        return 200, event, {"Idempotent-Replayed": "true"} if replayed else {}

    def _include_url(self, query: Sequence[tuple[str, str]]) -> bool:
        includes = {value for key, value in query if _INCLUDE_KEY.fullmatch(key)}
        unknown = includes - {"webhook_endpoint.url"}
        if unknown:
            message = (
                f"Some fields in the request were invalid: 'include: unsupported value {sorted(unknown)}'"
            )
            raise _ReplyError(400, "invalid_fields", message, "invalid_request_error")
        return bool(includes)

    def _list(self) -> dict[str, Any]:
        record = self._record
        params = dict(record.query)
        include_url = self._include_url(record.query)
        raw_limit = params.get("limit", str(DEFAULT_LIST_LIMIT))
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIST_LIMIT:
            message = (
                f"Some fields in the request were invalid: 'limit: must be between 1 and {MAX_LIST_LIMIT}'"
            )
            raise _ReplyError(400, "invalid_fields", message, "invalid_request_error")
        limit = int(raw_limit)
        offset = page_offset(params["page"]) if "page" in params else 0
        if offset is None:
            raise _ReplyError(
                400,
                "invalid_fields",
                "Some fields in the request were invalid: 'page'",
                "invalid_request_error",
            )
        page, total = self.server.standin._list_page(offset, limit)

        def page_url(start: int) -> str:
            query = [("limit", str(limit)), ("page", page_token(start))]
            query += [("include[0]", "webhook_endpoint.url")] if include_url else []
            return f"/v2/core/event_destinations?{urlencode(query)}"

        return {
            "data": [d.to_api(include_url=include_url) for d in page],
            "next_page_url": page_url(offset + limit) if offset + limit < total else None,
            "previous_page_url": page_url(max(0, offset - limit)) if offset > 0 else None,
        }

    # -- responses -------------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        headers: Mapping[str, str] = _NO_HEADERS,
        *,
        cut: bool = False,
    ) -> None:
        """Send a complete answer, or (``cut``) the headers and half the body, then a TCP RST."""
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Request-Id", self._record.request_id)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self._finalize(None if cut else status)
        if cut:
            self.wfile.write(body[: len(body) // 2])
            self._abort(rst=True)
        else:
            self.wfile.write(body)

    def _send_json(
        self, status: int, payload: Mapping[str, Any], headers: Mapping[str, str] = _NO_HEADERS
    ) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_fault(self, fault: Fault, route: Route, destination_id: str | None) -> None:
        extra = dict(fault.headers)
        if fault.kind == "status":
            message = fault.message or f"Injected fault: HTTP {fault.status}."
            error = _ReplyError(fault.status, fault.error_code, message, fault.error_type)
            self._send_json(fault.status, error.payload, extra)
        elif fault.kind == "non_json":
            self._send(200, b"OK, but this is not JSON\n", "text/plain", extra)
        elif fault.kind == "html_502":
            html = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502</h1></body></html>"
            self._send(502, html, "text/html", extra)
        elif fault.kind == "wrong_shape":
            self._send_json(200, {"hello": "world"}, extra)
        elif fault.kind == "wrong_event_type":
            assert destination_id is not None
            event_type = "v2.core.event_destination.updated"
            self._send_json(200, make_event(destination_id, event_type, self._record.request_id, None), extra)
        elif fault.kind == "other_destination":
            assert destination_id is not None
            other = self.server.standin._other_destination_id(destination_id)
            self._send_json(200, make_event(other, PING_EVENT_TYPE, self._record.request_id, None), extra)
        else:  # truncated_json / reset: cut an honest answer that is not committed
            try:
                status, payload, _ = self._answer(route, destination_id, commit=False)
            except _ReplyError as answer:
                status, payload = answer.status, answer.payload
            body = json.dumps(payload).encode()
            if fault.kind == "truncated_json":
                self._send(status, body[: len(body) // 2], "application/json", extra)
            else:
                self._send(status, body, "application/json", extra, cut=True)

    def _abort(self, *, rst: bool = False) -> None:
        """Drop the connection; SO_LINGER 0 turns the close into a TCP RST."""
        self._finalize(None)
        self.close_connection = True
        if rst:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # rfile is a makefile() that would keep the socket open. wfile writes straight to the socket and
        # must stay open: BaseHTTPRequestHandler flushes it after every request.
        self.rfile.close()
        self.connection.close()
