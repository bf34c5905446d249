"""The check record: one item per attempted ping, as stored in DynamoDB and returned by the API."""

from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from stripe_monitor.ping import Outcome, PingResult
from stripe_monitor.stripe_models import EventDestination


class Trigger(StrEnum):
    API = "api"
    SCHEDULE = "schedule"
    INVOKE = "invoke"


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
    # Delivery of the ping event to the destination, as proven by a receipt (see deliveries.py).
    delivery_status: str | None = None  # pending, delivered, late, lost, unmonitored (None: nothing sent)
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
        destination: EventDestination | None = None,
    ) -> "CheckRecord":
        values = asdict(result)
        return cls(
            **values,
            pinged_at=iso_ms(pinged_at),
            trigger=trigger,
            expires_at=expiry(pinged_at, retention_days),
            **destination_facts(destination),
        )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, item: dict[str, Any]) -> "CheckRecord":
        values: dict[str, Any] = {f.name: item.get(f.name) for f in fields(cls)}
        values["outcome"] = Outcome(values["outcome"])
        values["trigger"] = Trigger(values["trigger"])
        for name in (
            "http_status",
            "attempts",
            "latency_ms",
            "expires_at",
            "delivery_latency_ms",
            "deliveries",
        ):
            if values[name] is not None:
                values[name] = int(values[name])
        return cls(**values)

    @property
    def succeeded(self) -> bool:
        return self.outcome is Outcome.OK


def destination_facts(destination: EventDestination | None) -> dict[str, Any]:
    """What a check records of the destination's state in Stripe."""
    if destination is None:
        return {}
    bridge = destination.amazon_eventbridge
    return {
        "destination_status": destination.status,
        "disabled_reason": destination.disabled_reason,
        "destination_type": destination.type,
        "event_source_status": bridge.aws_event_source_status if bridge else None,
    }


def expiry(moment: datetime, retention_days: int) -> int:
    return int((moment + timedelta(days=retention_days)).timestamp())


def iso_ms(moment: datetime) -> str:
    """``2026-11-27T04:00:00.123Z``: sortable as text, millisecond precision."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)
