"""What the Stripe stand-in serves: its destinations, the faults it can be scripted with, the record of each
request it saw, and the v2 ping events it makes."""

from __future__ import annotations

import base64
import binascii
import math
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal, get_args

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
_ALNUM = string.ascii_letters + string.digits


def random_id(prefix: str, length: int) -> str:
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


def make_event(destination_id: str, event_type: str, request_id: str, key: str | None) -> dict[str, Any]:
    """A v2 event about a destination, e.g. its ping event."""
    return {
        "id": random_id("evt_test_", 46),
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


def page_token(offset: int) -> str:
    """The ``page`` of a list URL that starts at ``offset``."""
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def page_offset(token: str) -> int | None:
    """The offset a ``page`` token stands for; None for a token the stand-in did not make."""
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    prefix, _, number = text.partition(":")
    return int(number) if prefix == "offset" and number.isdigit() else None
