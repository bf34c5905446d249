"""Closing the loop: a receipt proves that a ping event ARRIVED; a ping without one in time is lost.

Receipts come from three channels: ``eventbridge`` (a rule on the Stripe partner event bus), ``webhook``
(a probe destination pointed at the stack's signed webhook route) and ``application`` (the user's own
webhook handler reporting through ``POST /receipts``).
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from stripe_monitor.check_store import CheckStore
from stripe_monitor.destination_ids import validate_destination_id
from stripe_monitor.health import Verdict
from stripe_monitor.observability import logger, metrics
from stripe_monitor.records import CheckRecord, expiry, iso_ms, parse_iso
from stripe_monitor.settings import Settings

CHANNELS = ("eventbridge", "webhook", "application")
PENDING, DELIVERED, LATE, LOST, UNMONITORED = "pending", "delivered", "late", "lost", "unmonitored"
_SWEEP_WINDOW = timedelta(days=1)  # how far back the sweep looks for checks still pending

# (destination_id, verdict, reason, at, api_url) -> None: counts a delivery verdict into the destination's
# health; api_url (when known) links the alert to the destination's history
DeliveryObserver = Callable[[str, Verdict, str, str, str | None], None]


@dataclass(frozen=True)
class Receipt:
    destination_id: str
    event_id: str
    channel: str
    received_at: datetime
    event_created: datetime | None = None


class Deliveries:
    def __init__(self, settings: Settings, store: CheckStore, observe: DeliveryObserver) -> None:
        self.settings = settings
        self.store = store
        self._observe = observe

    def is_monitored(self, destination_id: str, receipt_channel: str | None) -> bool:
        """Will a receipt come for this destination's pings? Configured, or learned from a receipt."""
        return destination_id in self.settings.monitored_destination_ids or receipt_channel is not None

    def record(self, receipt: Receipt) -> dict[str, Any]:
        """Store an arrival and match it to the check that caused it (if that check is stored yet)."""
        validate_destination_id(receipt.destination_id)
        received_at = iso_ms(receipt.received_at)
        stored = self.store.record_receipt(
            {
                "destination_id": receipt.destination_id,
                "event_id": receipt.event_id,
                "received_at": received_at,
                "channel": receipt.channel,
                "event_created": iso_ms(receipt.event_created) if receipt.event_created else None,
                # Until a check claims it: an event this stack did not send (e.g. a dashboard ping).
                "unsolicited": True,
                "expires_at": expiry(receipt.received_at, self.settings.result_retention_days),
            }
        )
        self.store.note_receipt(receipt.destination_id, receipt.channel, received_at)
        check = self.store.find_check_by_event(receipt.destination_id, receipt.event_id)
        if check is None:
            logger.info("receipt without a check (yet)", receipt=stored)
            return {"status": "unmatched", "event_id": receipt.event_id, "deliveries": stored["deliveries"]}
        return self._apply(check, stored)

    def claim(self, records: Iterable[CheckRecord]) -> None:
        """After checks are written: apply receipts that arrived before their check was stored."""
        # Only a check that waits for a receipt can have one to claim (and most need no look-up).
        by_key = {
            (r.destination_id, r.event_id): r for r in records if r.event_id and r.delivery_status == PENDING
        }
        if not by_key:
            return
        for key, receipt in self.store.receipts(by_key).items():
            self._apply(by_key[key], receipt)

    def _apply(self, check: CheckRecord, receipt: dict[str, Any]) -> dict[str, Any]:
        first_arrival = parse_iso(receipt["received_at"])
        created_text = check.event_created or receipt.get("event_created")
        latency_ms = (
            max(0, round((first_arrival - parse_iso(created_text)).total_seconds() * 1000))
            if created_text
            else 0
        )
        status = LATE if latency_ms > self.settings.delivery_sla_seconds * 1000 else DELIVERED
        delivery = {
            "delivery_status": status,
            "delivered_at": receipt["received_at"],
            "delivery_channel": receipt["channel"],
            "delivery_latency_ms": latency_ms,
            "deliveries": receipt["deliveries"],
        }
        before = self.store.mark_delivered(check, delivery)
        self.store.mark_receipt_matched(check.destination_id, receipt["event_id"], check.pinged_at)
        if before not in (DELIVERED, LATE):  # the first arrival: count it once
            _delivery_metrics(check.destination_id, latency_ms=latency_ms, lost=False)
            if status == LATE:
                reason = f"ping delivered late ({latency_ms} ms > {self.settings.delivery_sla_seconds} s)"
                self._observe(check.destination_id, Verdict.SOFT, reason, receipt["received_at"], None)
        logger.info(
            "delivery recorded", destination_id=check.destination_id, check=check.pinged_at, **delivery
        )
        return {"status": "matched", "check": check.pinged_at, "event_id": receipt["event_id"], **delivery}

    def sweep(
        self, destination_ids: Iterable[str], now: datetime, api_url: str | None = None
    ) -> list[CheckRecord]:
        """Checks still pending ``lost_after`` after their ping event was created: lost. Each counts as a
        failed check in the destination's health. (The event's creation time, not ``pinged_at``, because a
        redelivered scheduled run keeps the scheduled time as ``pinged_at``.)"""
        lost_after = timedelta(seconds=self.settings.lost_after_seconds)
        lost = []
        for destination_id in destination_ids:
            pending = self.store.pending_checks(
                destination_id, not_before=iso_ms(now - lost_after - _SWEEP_WINDOW), before=iso_ms(now)
            )
            for check in pending:
                sent = parse_iso(check.event_created or check.pinged_at)
                if sent + lost_after > now or not self.store.mark_lost(check):
                    continue
                lost.append(check)
                reason = f"ping event {check.event_id} was not delivered within {_duration(lost_after)}"
                self._observe(destination_id, Verdict.FAIL, reason, iso_ms(now), api_url)
                _delivery_metrics(destination_id, latency_ms=None, lost=True)
        return lost


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    return f"{seconds // 60} min" if seconds >= 60 and not seconds % 60 else f"{seconds} s"


def _delivery_metrics(destination_id: str, *, latency_ms: int | None, lost: bool) -> None:
    """Fleet-wide (for the alarm) and per destination (for the dashboard)."""
    per_destination = EphemeralMetrics()
    per_destination.add_dimension(name="destination_id", value=destination_id)
    for sink in (metrics, per_destination):
        sink.add_metric(name="LostPings", unit=MetricUnit.Count, value=int(lost))
        if latency_ms is not None:
            sink.add_metric(name="DeliveryLatency", unit=MetricUnit.Milliseconds, value=latency_ms)
    per_destination.flush_metrics()
