"""A local stand-in for the slice of Stripe API v2 the monitor talks to, served over real sockets.

Routes: ``POST /v2/core/event_destinations/{id}/ping``, ``GET /v2/core/event_destinations[/{id}]`` and
``GET /v2/core/events/{id}``. Wire format follows the v2 notes (full objects with explicit nulls, v2 list
envelope without ``object``, v2 error shape). Faults and latency can be scripted per destination so client
retry and validation paths are exercised over HTTP/1.1 keep-alive connections, not mocks.

Run it alone with ``python -m tools.standins.stripe --port 12111 --destinations dests.json``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hmac
import json
import math
import os
import re
import secrets
import signal
import socket
import string
import struct
import sys
import threading
import urllib.error
import urllib.request
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from time import monotonic
from types import MappingProxyType
from typing import Any, Literal, Self, get_args, overload
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from tools.standins.service import Service

FaultKind = Literal[
    "status", "hang", "reset", "non_json", "html_502", "truncated_json", "wrong_shape", "wrong_event_type",
    "other_destination", "huge_body",
]  # fmt: skip
Route = Literal["ping", "retrieve", "list", "event"]
DestinationType = Literal["webhook_endpoint", "amazon_eventbridge", "azure_event_grid"]

FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))
PING_ONLY_FAULTS = frozenset({"wrong_event_type", "other_destination"})
PING_EVENT_TYPE = "v2.core.event_destination.ping"
DEFAULT_API_KEY = "sk_test_standin_0000000000000000"
# The v2 docs state no page-size bounds; v1's documented default 10 / max 100 is the closest published rule.
DEFAULT_LIST_LIMIT = 10
MAX_LIST_LIMIT = 100
MAX_REQUEST_BODY = 1 << 20
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})
_ALNUM = string.ascii_letters + string.digits
_INCLUDE_KEY = re.compile(r"include(\[\d*\])?")
_ROUTES: tuple[tuple[re.Pattern[str], Route, str], ...] = (
    (re.compile(r"/v2/core/event_destinations"), "list", "GET"),
    (re.compile(r"/v2/core/event_destinations/([^/]+)"), "retrieve", "GET"),
    (re.compile(r"/v2/core/event_destinations/([^/]+)/ping"), "ping", "POST"),
    (re.compile(r"/v2/core/events/([^/]+)"), "event", "GET"),
)


def _random_id(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour; each request on the scripted route consumes one.

    status            -> ``status`` with a v2 error body (``error_code``; ``error_type`` and ``message``
                         when set)
    hang              -> wait ``seconds``, then answer normally; ``math.inf`` (JSON "forever") waits until
                         stop() or reset(), which drop the connection instead
    reset             -> headers with the full Content-Length, half the body, then a TCP RST
    non_json          -> 200 text/plain that is not JSON
    html_502          -> 502 text/html, like a proxy in front of the API
    truncated_json    -> 200 application/json whose body is cut in half (Content-Length matches the cut)
    wrong_shape       -> 200 ``{"hello": "world"}``
    wrong_event_type  -> 200 ping-shaped event of type ``v2.core.event_destination.updated`` (ping only)
    other_destination -> 200 ping event about another destination (ping only)
    huge_body         -> the normal 200 answer padded with ``size`` bytes
    Nothing but ``hang`` and ``huge_body`` stores an event or consumes an idempotency key.
    """

    kind: FaultKind
    status: int = 500
    error_code: str = "api_error"
    error_type: str | None = None
    message: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, hash=False)
    seconds: float = 0.0
    size: int = 5 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if not 100 <= self.status <= 599:
            raise ValueError(f"fault status must be an HTTP status, got {self.status}")
        if self.seconds < 0 or self.size < 0:
            raise ValueError("fault seconds and size must not be negative")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Fault:
        unknown = set(raw) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown fault keys {sorted(unknown)}")
        values = dict(raw)
        if values.get("seconds") == "forever":
            values["seconds"] = math.inf
        values["headers"] = {str(k): str(v) for k, v in dict(values.get("headers", {})).items()}
        return cls(**values)


@dataclass(frozen=True)
class Destination:
    """Configuration of one event destination; ``to_api`` renders the full v2 object."""

    id: str
    status: Literal["enabled", "disabled"] = "enabled"
    disabled_reason: str | None = None
    type: DestinationType = "webhook_endpoint"
    event_source_status: str | None = None
    name: str | None = None
    description: str = ""
    url: str | None = None
    enabled_events: tuple[str, ...] = ("v1.billing.meter.error_report_triggered",)
    event_payload: Literal["thin", "snapshot"] = "thin"
    events_from: tuple[str, ...] | None = ("@self",)
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)
    snapshot_api_version: str | None = None
    aws_account_id: str = "123456789012"
    aws_region: str = "us-east-1"
    created: str = field(default_factory=_now)
    updated: str | None = None
    # Delivery of ping events, as Stripe would make it: a webhook destination with a loopback ``url`` and
    # a ``signing_secret`` gets a signed thin event POSTed to it; an EventBridge destination's envelope goes
    # to ``StripeStandIn.on_eventbridge`` (and ``eventbridge_outbox``). "drop" loses it, "duplicate" sends
    # it twice, after ``delivery_delay`` seconds.
    signing_secret: str | None = None
    delivery: Literal["deliver", "drop", "duplicate"] = "deliver"
    delivery_delay: float = 0.0

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Destination:
        unknown = set(raw) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown destination keys {sorted(unknown)} for {raw.get('id')!r}")
        values = dict(raw)
        for key in ("enabled_events", "events_from"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)

    def to_api(self, *, include_url: bool = False) -> dict[str, Any]:
        disabled = self.status == "disabled"
        return {
            "id": self.id,
            "object": "v2.core.event_destination",
            "amazon_eventbridge": {
                "aws_account_id": self.aws_account_id,
                "aws_event_source_arn": (
                    f"arn:aws:events:{self.aws_region}::event-source/aws.partner/stripe.com/{self.id}"
                ),
                "aws_event_source_status": self.event_source_status or "active",
            }
            if self.type == "amazon_eventbridge"
            else None,
            "azure_event_grid": {
                "azure_partner_topic_name": f"stripe-{self.id}",
                "azure_partner_topic_status": self.event_source_status or "activated",
                "azure_region": "eastus",
                "azure_resource_group_name": "stripe-events",
                "azure_subscription_id": "00000000-0000-0000-0000-000000000000",
            }
            if self.type == "azure_event_grid"
            else None,
            "created": self.created,
            "description": self.description,
            "enabled_events": list(self.enabled_events),
            "event_payload": self.event_payload,
            "events_from": None if self.events_from is None else list(self.events_from),
            "livemode": False,
            "metadata": dict(self.metadata),
            "name": self.name or f"Destination {self.id}",
            "snapshot_api_version": self.snapshot_api_version,
            "status": self.status,
            "status_details": {"disabled": {"reason": self.disabled_reason or "user"}} if disabled else None,
            "type": self.type,
            "updated": self.updated or self.created,
            # The URL is redacted unless requested with include=webhook_endpoint.url, as in the real API.
            "webhook_endpoint": {
                "signing_secret": None,
                "url": (self.url or f"https://example.invalid/hooks/{self.id}") if include_url else None,
            }
            if self.type == "webhook_endpoint"
            else None,
        }


@dataclass(frozen=True)
class RequestRecord:
    """What the stand-in saw of one request. The Authorization header is reduced to ``authorized``."""

    request_id: str
    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    route: Route | None
    destination_id: str | None
    idempotency_key: str | None
    stripe_version: str | None
    user_agent: str | None
    content_type: str | None
    body: bytes
    authorized: bool
    started: float
    ended: float | None = None
    status: int | None = None  # None: no complete answer (reset fault, or released by stop()/reset())
    fault: FaultKind | None = None


@dataclass
class _Script:
    faults: deque[Fault]
    forever: bool


class StripeStandIn(Service):
    """Thread-safe in-process server; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        destinations: Iterable[Destination | Mapping[str, Any]] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._api_key = api_key
        self._address = (host, port)
        self._lock = threading.Lock()
        self._wake = threading.Event()  # set to release sleeping requests; replaced by reset()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._workers: set[threading.Thread] = set()
        self._destinations: dict[str, Destination] = {}
        self._scripts: dict[tuple[Route, str | None], _Script] = {}
        self._latency: dict[str | None, float] = {}
        self._events: dict[str, dict[str, Any]] = {}
        self._idempotency: dict[str, tuple[str, str]] = {}  # key -> (destination id, event id)
        self._events_created: Counter[str] = Counter()
        self._records: list[RequestRecord] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self.errors: list[BaseException] = []  # unexpected handler exceptions, for tests to assert on
        self.on_eventbridge: Callable[[dict[str, Any]], object] | None = None
        self.eventbridge_outbox: list[dict[str, Any]] = []
        self.deliveries: list[tuple[str, str, int | None]] = []  # (destination id, event id, HTTP status)
        for destination in destinations:
            self.put_destination(destination)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("stand-in already started")
        self._server = _Server(self._address, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="stripe-standin",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._wake.set()  # releases hang faults and latency sleeps
        server.shutdown()
        server.server_close()
        with self._lock:
            connections, workers = list(self._connections), list(self._workers)
        for conn in connections:  # idle keep-alive connections would otherwise block their threads in recv
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for worker in workers:
            worker.join(timeout=2)
        if self._thread is not None:
            self._thread.join(timeout=2)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("stand-in is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._address[0]}:{self.port}"

    @property
    def api_key(self) -> str:
        return self._api_key

    @api_key.setter
    def api_key(self, value: str) -> None:
        """Accept only this key from now on (a rotated key, as after a secret rotation)."""
        self._api_key = value

    # -- configuration ---------------------------------------------------------------------------

    def put_destination(self, destination: Destination | Mapping[str, Any]) -> Destination:
        """Add or replace (keeping list position) a destination."""
        if not isinstance(destination, Destination):
            destination = Destination.from_dict(destination)
        with self._lock:
            self._destinations[destination.id] = destination
        return destination

    def add_destination(
        self,
        destination_id: str,
        *,
        status: Literal["enabled", "disabled"] = "enabled",
        disabled_reason: str | None = None,
        type: DestinationType = "webhook_endpoint",  # named like the API field
        event_source_status: str | None = None,
        url: str | None = None,
        **more: Any,
    ) -> Destination:
        return self.put_destination(
            Destination(
                id=destination_id,
                status=status,
                disabled_reason=disabled_reason,
                type=type,
                event_source_status=event_source_status,
                url=url,
                **more,
            )
        )

    def remove_destination(self, destination_id: str) -> None:
        with self._lock:
            self._destinations.pop(destination_id, None)

    @property
    def destinations(self) -> list[Destination]:
        with self._lock:
            return list(self._destinations.values())

    def load_config(self, path: str | os.PathLike[str]) -> None:
        """Load destinations, faults and latency from JSON (format in ``_apply_config``)."""
        self._apply_config(json.loads(Path(path).read_text(encoding="utf-8")))

    @classmethod
    def from_config(
        cls,
        path: str | os.PathLike[str],
        *,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> StripeStandIn:
        standin = cls(api_key, host=host, port=port)
        standin.load_config(path)
        return standin

    def _apply_config(self, config: Any) -> None:
        # Either a list of destinations or {"destinations": [...], "latency": s, "list_faults": [...],
        # "list_faults_forever": bool}. Each destination may carry "faults", "faults_forever", "latency".
        if isinstance(config, list):
            config = {"destinations": config}
        if not isinstance(config, dict):
            raise ValueError("config must be a list of destinations or an object with 'destinations'")
        for raw in config.get("destinations", []):
            entry = dict(raw)
            faults = [Fault.from_dict(f) for f in entry.pop("faults", [])]
            forever = bool(entry.pop("faults_forever", False))
            latency = entry.pop("latency", None)
            destination = self.put_destination(entry)
            if faults:
                self.script(destination.id, faults, forever=forever)
            if latency is not None:
                self.set_latency(destination.id, float(latency))
        if config.get("latency") is not None:
            self.set_latency(float(config["latency"]))
        if config.get("list_faults"):
            list_faults = [Fault.from_dict(f) for f in config["list_faults"]]
            self.script_list(list_faults, forever=bool(config.get("list_faults_forever", False)))

    # -- fault injection -------------------------------------------------------------------------

    def script(
        self,
        destination_id: str,
        faults: Sequence[Fault],
        *,
        route: Literal["ping", "retrieve"] = "ping",
        forever: bool = False,
    ) -> None:
        """Replace the fault script for ``route`` of a destination; ``forever`` cycles it instead of
        running out (one fault + forever = sticky). An empty sequence clears it."""
        self._set_script(route, destination_id, faults, forever)

    def script_list(self, faults: Sequence[Fault], *, forever: bool = False) -> None:
        """Fault script for ``GET /v2/core/event_destinations`` (every page request consumes one)."""
        self._set_script("list", None, faults, forever)

    def _set_script(self, route: Route, key: str | None, faults: Sequence[Fault], forever: bool) -> None:
        misplaced = [f.kind for f in faults if f.kind in PING_ONLY_FAULTS and route != "ping"]
        if misplaced:
            raise ValueError(f"faults {misplaced} only make sense on the ping route")
        with self._lock:
            if faults:
                self._scripts[(route, key)] = _Script(deque(faults), forever)
            else:
                self._scripts.pop((route, key), None)

    def _take_fault(self, route: Route, key: str | None) -> Fault | None:
        with self._lock:
            script = self._scripts.get((route, key))
            if script is None:
                return None
            fault = script.faults.popleft()
            if script.forever:
                script.faults.append(fault)
            elif not script.faults:
                del self._scripts[(route, key)]
            return fault

    @overload
    def set_latency(self, seconds: float, /) -> None: ...
    @overload
    def set_latency(self, destination_id: str, seconds: float, /) -> None: ...
    def set_latency(self, *args: Any) -> None:
        """Fixed delay before answering: every request, or requests naming one destination (added up)."""
        key, seconds = (None, args[0]) if len(args) == 1 else (args[0], args[1])
        with self._lock:
            self._latency[key] = float(seconds)

    def reset(self) -> None:
        """Forget requests, scripts, latency, events and idempotency keys; destinations stay.
        Requests still sleeping in a hang or latency lose their connection, so none leaks into a next test."""
        with self._lock:
            self._wake.set()
            self._wake = threading.Event()
            self._scripts.clear()
            self._latency.clear()
            self._events.clear()
            self._idempotency.clear()
            self._events_created.clear()
            self._records.clear()
            self._max_in_flight = self._in_flight
            self.errors.clear()
            self.eventbridge_outbox.clear()
            self.deliveries.clear()
            self.on_eventbridge = None

    # -- observability ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def ping_count(self, destination_id: str) -> int:
        """Authorized ping requests naming this destination, faulted and replayed ones included."""
        return sum(
            1
            for r in self.requests
            if r.route == "ping" and r.destination_id == destination_id and r.authorized
        )

    def event_count(self, destination_id: str) -> int:
        """Distinct ping events created (idempotent replays and faulted answers do not count)."""
        with self._lock:
            return self._events_created[destination_id]

    def event(self, event_id: str) -> dict[str, Any] | None:
        with self._lock:
            stored = self._events.get(event_id)
            return None if stored is None else json.loads(json.dumps(stored))

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._max_in_flight

    # -- used by the handler ---------------------------------------------------------------------

    def _begin(self, record: RequestRecord) -> int:
        with self._lock:
            self._records.append(record)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            return len(self._records) - 1

    def _finish(self, index: int, record: RequestRecord) -> None:
        with self._lock:
            self._in_flight -= 1
            # reset() may have cleared the log while this request was in flight.
            if index < len(self._records) and self._records[index].request_id == record.request_id:
                self._records[index] = record

    def _sleep(self, seconds: float) -> bool:
        """Sleep; False when stop() or reset() cut the sleep short."""
        with self._lock:
            wake = self._wake
        return not wake.wait(None if math.isinf(seconds) else max(seconds, 0.0))

    def _latency_for(self, destination_id: str | None) -> float:
        with self._lock:
            return self._latency.get(None, 0.0) + (
                self._latency.get(destination_id, 0.0) if destination_id else 0.0
            )

    def _destination(self, destination_id: str) -> Destination | None:
        with self._lock:
            return self._destinations.get(destination_id)

    def _ping_event(
        self, destination_id: str, request_id: str, idempotency_key: str | None, *, commit: bool
    ) -> tuple[dict[str, Any], bool] | None:
        """The ping event and whether it is a replay; None when the key belongs to another destination."""
        with self._lock:
            if commit and idempotency_key is not None and idempotency_key in self._idempotency:
                owner, event_id = self._idempotency[idempotency_key]
                return (self._events[event_id], True) if owner == destination_id else None
            event = _event(destination_id, PING_EVENT_TYPE, request_id, idempotency_key)
            if commit:
                self._events[event["id"]] = event
                self._events_created[destination_id] += 1
                if idempotency_key is not None:
                    self._idempotency[idempotency_key] = (destination_id, event["id"])
            return event, False

    def deliver_event(self, destination_id: str, event: Mapping[str, Any]) -> None:
        """Deliver an event as Stripe would (a test's stand-in for a Workbench or dashboard ping)."""
        destination = self._destination(destination_id)
        if destination is None:
            raise KeyError(destination_id)
        self._deliver(destination, dict(event))

    def _deliver(self, destination: Destination, event: dict[str, Any]) -> None:
        if destination.delivery == "drop":
            return
        thin = {
            k: event[k] for k in ("id", "object", "type", "created", "livemode", "context", "related_object")
        }
        if event.get("reason") is not None:
            thin["reason"] = event["reason"]
        copies = 2 if destination.delivery == "duplicate" else 1

        def send() -> None:
            if not self._sleep(destination.delivery_delay):
                return
            for _ in range(copies):
                if destination.type == "amazon_eventbridge":
                    self._deliver_to_eventbridge(destination, thin)
                elif destination.url and destination.signing_secret:
                    self._deliver_to_webhook(destination, thin)

        threading.Thread(target=send, name=f"deliver-{event['id']}", daemon=True).start()

    def _deliver_to_webhook(self, destination: Destination, thin: dict[str, Any]) -> None:
        assert destination.url and destination.signing_secret
        if urlsplit(destination.url).hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the stand-in delivers to loopback addresses only")
        payload = json.dumps(thin).encode()
        timestamp = int(datetime.now(UTC).timestamp())
        digest = hmac.new(destination.signing_secret.encode(), f"{timestamp}.".encode() + payload, "sha256")
        request = urllib.request.Request(
            destination.url,
            data=payload,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": f"t={timestamp},v1={digest.hexdigest()}",
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            },
        )
        status: int | None
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                status = int(answer.status)
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            status = None
        with self._lock:
            self.deliveries.append((destination.id, thin["id"], status))

    def _deliver_to_eventbridge(self, destination: Destination, thin: dict[str, Any]) -> None:
        envelope = {
            "version": "0",
            "id": secrets.token_hex(16),
            "detail-type": thin["type"],
            "source": f"aws.partner/stripe.com/{destination.id}",
            "account": destination.aws_account_id,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": destination.aws_region,
            "resources": [],
            "detail": thin,
        }
        with self._lock:
            self.eventbridge_outbox.append(envelope)
            self.deliveries.append((destination.id, thin["id"], None))
        if self.on_eventbridge is not None:
            self.on_eventbridge(envelope)

    def _other_destination_id(self, destination_id: str) -> str:
        with self._lock:
            others = [d for d in self._destinations if d != destination_id]
        return others[0] if others else "ed_test_someoneelse000000000000000000000000"

    def _stored_event(self, event_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._events.get(event_id)

    def _list_page(self, offset: int, limit: int) -> tuple[list[Destination], int]:
        with self._lock:
            every = list(self._destinations.values())
        return every[offset : offset + limit], len(every)

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
                self._workers.add(threading.current_thread())
            else:
                self._connections.discard(conn)
                self._workers.discard(threading.current_thread())


def _event(destination_id: str, event_type: str, request_id: str, key: str | None) -> dict[str, Any]:
    return {
        "id": _random_id("evt_test_", 46),
        "object": "v2.core.event",
        "context": None,
        "created": _now(),
        "data": None,
        "livemode": False,
        # The spec makes reason.request.idempotency_key a required string, so keyless pings get no reason.
        "reason": {"type": "request", "request": {"id": request_id, "idempotency_key": key}} if key else None,
        "related_object": {
            "id": destination_id,
            "type": "v2.core.event_destination",
            "url": f"/v2/core/event_destinations/{destination_id}",
        },
        "type": event_type,
    }


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _page_offset(token: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    prefix, _, number = text.partition(":")
    return int(number) if prefix == "offset" and number.isdigit() else None


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

    def __init__(self, address: tuple[str, int], standin: StripeStandIn) -> None:
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
            request_id=_random_id("req_", 14),
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
        offset = _page_offset(params["page"]) if "page" in params else 0
        if offset is None:
            raise _ReplyError(
                400,
                "invalid_fields",
                "Some fields in the request were invalid: 'page'",
                "invalid_request_error",
            )
        page, total = self.server.standin._list_page(offset, limit)

        def page_url(start: int) -> str:
            query = [("limit", str(limit)), ("page", _page_token(start))]
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
            self._send_json(200, _event(destination_id, event_type, self._record.request_id, None), extra)
        elif fault.kind == "other_destination":
            assert destination_id is not None
            other = self.server.standin._other_destination_id(destination_id)
            self._send_json(200, _event(other, PING_EVENT_TYPE, self._record.request_id, None), extra)
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local stand-in for Stripe API v2 event destinations.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111, help="0 picks a free port (default 12111)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("STRIPE_STANDIN_API_KEY", DEFAULT_API_KEY),
        help="secret key clients must send as Bearer (default: $STRIPE_STANDIN_API_KEY or a fixed test key)",
    )
    parser.add_argument("--destinations", type=Path, help="JSON file of destinations, faults and latency")
    args = parser.parse_args(argv)
    standin = StripeStandIn(args.api_key, host=args.host, port=args.port)
    if args.destinations:
        standin.load_config(args.destinations)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with standin:
        print(standin.url, flush=True)
        while not stop.wait(0.2):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
