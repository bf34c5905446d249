"""A check: one attempted ping, classified (``PingResult``) and recorded (``CheckRecord``, one item in the
results table and the API's answer)."""

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from stripe_monitor.model.times import expiry, iso_ms


class Outcome(StrEnum):
    OK = "ok"
    NOT_FOUND = "not_found"
    UNAUTHORIZED = "unauthorized"
    RATE_LIMITED = "rate_limited"
    STRIPE_ERROR = "stripe_error"
    TIMEOUT = "timeout"
    NETWORK_ERROR = "network_error"
    INVALID_RESPONSE = "invalid_response"
    CONFIG_ERROR = "config_error"  # no usable API key: nothing was sent
    DISABLED = "disabled"  # Stripe reports the destination disabled (listed so in a scheduled run)


class Trigger(StrEnum):
    API = "api"
    SCHEDULE = "schedule"
    INVOKE = "invoke"


class DeliveryStatus(StrEnum):
    """Whether the ping event ARRIVED, as receipts prove (None on a record: nothing was sent)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    LATE = "late"
    LOST = "lost"
    UNMONITORED = "unmonitored"


@dataclass(frozen=True)
class PingResult:
    destination_id: str
    outcome: Outcome
    idempotency_key: str
    attempts: int
    latency_ms: int
    http_status: int | None = None
    event_id: str | None = None
    event_created: str | None = None
    livemode: bool | None = None
    stripe_request_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class DestinationFacts:
    """What a check records of the destination as Stripe described it (scheduled runs)."""

    destination_status: str | None = None
    disabled_reason: str | None = None
    destination_type: str | None = None
    event_source_status: str | None = None


_INTEGER_FIELDS = ("http_status", "attempts", "latency_ms", "expires_at", "delivery_latency_ms", "deliveries")


@dataclass(frozen=True)
class CheckRecord:
    destination_id: str
    pinged_at: str  # ISO-8601 UTC with milliseconds; the table's sort key
    outcome: Outcome
    trigger: Trigger
    http_status: int | None
    attempts: int
    latency_ms: int
    event_id: str | None
    event_created: str | None
    livemode: bool | None
    stripe_request_id: str | None
    idempotency_key: str
    error_code: str | None
    error_message: str | None
    expires_at: int  # epoch seconds; DynamoDB TTL deletes the item after the retention period
    # The destination as Stripe described it at the check (None when it was not looked up).
    destination_status: str | None = None
    disabled_reason: str | None = None
    destination_type: str | None = None
    event_source_status: str | None = None
    # Delivery of the ping event to the destination, as proven by a receipt (logic/deliveries.py).
    delivery_status: DeliveryStatus | None = None
    delivered_at: str | None = None
    delivery_channel: str | None = None
    delivery_latency_ms: int | None = None
    deliveries: int | None = None

    @classmethod
    def from_ping(
        cls,
        result: PingResult,
        *,
        trigger: Trigger,
        pinged_at: datetime,
        retention_days: int,
        destination: DestinationFacts | None = None,
    ) -> "CheckRecord":
        return cls(
            **asdict(result),
            pinged_at=iso_ms(pinged_at),
            trigger=trigger,
            expires_at=expiry(pinged_at, retention_days),
            **(asdict(destination) if destination else {}),
        )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, item: dict[str, Any]) -> "CheckRecord":
        values: dict[str, Any] = {f.name: item.get(f.name) for f in fields(cls)}
        values["outcome"] = Outcome(values["outcome"])
        values["trigger"] = Trigger(values["trigger"])
        if values["delivery_status"] is not None:
            values["delivery_status"] = DeliveryStatus(values["delivery_status"])
        for name in _INTEGER_FIELDS:
            if values[name] is not None:
                values[name] = int(values[name])
        return cls(**values)
