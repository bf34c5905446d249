"""What the monitor knows of each destination between checks: health, recent verdicts, mute, removal."""

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from stripe_monitor.health import RECENT_VERDICTS_KEPT, Health, Verdict, judge, next_health
from stripe_monitor.records import CheckRecord, parse_iso

REMOVED = "removed"


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

    def advance(
        self, record: CheckRecord, *, slow_ping_ms: int, now: datetime
    ) -> tuple["DestinationState", Transition | None]:
        """The state after ``record``, and the transition it caused (None when health did not change)."""
        verdict, reason = judge(record, slow_ping_ms=slow_ping_ms)
        # A destination that is checked is not removed.
        moved = replace(self, last_check=record, removed_at=None)
        return moved.observe(verdict, reason, at=record.pinged_at, last_error=_error_of(record), now=now)

    def observe(
        self, verdict: Verdict, reason: str, *, at: str, last_error: str | None, now: datetime
    ) -> tuple["DestinationState", Transition | None]:
        """Count one more verdict: a check's, or a delivery's (a lost ping fails, a late one is soft)."""
        recent = (verdict, *self.recent)[:RECENT_VERDICTS_KEPT]
        health = next_health(self.health, recent)
        changed = health is not self.health
        new_state = replace(
            self,
            health=health,
            health_since=at if changed else self.health_since,
            health_reason=reason if changed else self.health_reason,
            recent=recent,
        )
        if not changed:
            return new_state, None
        transition = Transition(
            destination_id=self.destination_id,
            at=at,
            from_health=self.health,
            to_health=health,
            reason=reason,
            last_error=last_error,
            muted=self.is_muted(now),
        )
        return new_state, transition

    def removal(self, at: str, now: datetime) -> tuple["DestinationState", Transition]:
        return replace(self, removed_at=at), Transition(
            destination_id=self.destination_id,
            at=at,
            from_health=self.health,
            to_health=REMOVED,
            reason="the destination is no longer in the Stripe account",
            last_error=None,
            muted=self.is_muted(now),
        )

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


def _error_of(record: CheckRecord) -> str | None:
    if record.error_code is None and record.error_message is None:
        return None
    return f"{record.outcome}: {record.error_code or ''} {record.error_message or ''}".strip()
