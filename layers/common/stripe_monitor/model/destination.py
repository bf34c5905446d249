"""What the monitor knows of each destination between checks: its health, recent verdicts, last check,
mute and removal; and the transitions between healths."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from stripe_monitor.model.check import CheckRecord
from stripe_monitor.model.times import parse_iso

REMOVED = "removed"  # a transition's to_health when the destination left the Stripe account


class Health(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    DOWN = "down"


class Verdict(StrEnum):
    PASS = "pass"  # noqa: S105 (a verdict, not a password)
    SOFT = "soft"
    FAIL = "fail"
    DISABLED = "disabled"


@dataclass(frozen=True)
class Transition:
    """A change of a destination's health (or its removal from the account)."""

    destination_id: str
    at: str
    from_health: str | None
    to_health: str
    reason: str
    last_error: str | None
    muted: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class DestinationState:
    destination_id: str
    health: Health | None = None
    health_since: str | None = None
    health_reason: str | None = None
    recent: tuple[Verdict, ...] = ()
    last_check: CheckRecord | None = None
    muted_until: str | None = None
    removed_at: str | None = None
    receipt_channel: str | None = None  # how receipts of this destination arrive, once one has
    last_receipt_at: str | None = None
    version: int = 0  # bumped by every health write: the optimistic lock (0: never written)

    def is_muted(self, now: datetime) -> bool:
        return self.muted_until is not None and parse_iso(self.muted_until) > now

    def to_api(self, now: datetime) -> dict[str, Any]:
        return {
            "destination_id": self.destination_id,
            "health": self.health,
            "health_since": self.health_since,
            "health_reason": self.health_reason,
            "muted": self.is_muted(now),
            "muted_until": self.muted_until,
            "removed_at": self.removed_at,
            "receipt_channel": self.receipt_channel,
            "last_receipt_at": self.last_receipt_at,
            "last_check": self.last_check.to_dict() if self.last_check else None,
        }
