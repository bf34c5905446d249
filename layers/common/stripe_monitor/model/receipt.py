"""A receipt: proof that a ping event ARRIVED somewhere, and the channel that proved it."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Channel(StrEnum):
    EVENTBRIDGE = "eventbridge"  # a rule on the Stripe partner event bus
    WEBHOOK = "webhook"  # a probe destination pointed at the stack's signed webhook route
    APPLICATION = "application"  # the user's own webhook handler, through POST /receipts


@dataclass(frozen=True)
class Receipt:
    destination_id: str
    event_id: str
    channel: Channel
    received_at: datetime
    event_created: datetime | None = None
