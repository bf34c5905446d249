"""A receipt: proof that a ping event ARRIVED somewhere, and the channel that proved it."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Channel(StrEnum):
    EVENTBRIDGE = "eventbridge"  # a rule on the Stripe partner event bus
    WEBHOOK = "webhook"  # a probe destination pointed at the stack's signed webhook route
    APPLICATION = "application"  # the user's own application: a forwarded delivery, or POST /receipts


@dataclass(frozen=True)
class Receipt:
    destination_id: str
    event_id: str
    channel: Channel
    received_at: datetime
    event_created: datetime | None = None


@dataclass(frozen=True)
class SigningSecrets:
    """Webhook signing secrets (``whsec_...``, several while one is rolled): each listed destination's own,
    and shared ones for any other destination (a probe destination pointed at the stack)."""

    shared: tuple[str, ...] = ()
    by_destination: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def for_destination(self, destination_id: str | None) -> tuple[str, ...]:
        if destination_id is not None and destination_id in self.by_destination:
            return self.by_destination[destination_id]
        return self.shared
