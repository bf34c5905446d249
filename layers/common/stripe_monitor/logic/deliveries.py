"""Closing the loop: a receipt proves that a ping event ARRIVED; a ping without one in time is lost.

Receipts come from three channels (``model/receipt.py``): a rule on the Stripe partner event bus, the
stack's signed webhook route, and the user's application through ``POST /receipts``.
"""

import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from stripe_monitor.config import CommonSettings
from stripe_monitor.logic.health_tracker import HealthTracker
from stripe_monitor.logic.metrics import report_delivery
from stripe_monitor.model.check import CheckRecord, DeliveryStatus, Outcome
from stripe_monitor.model.destination import DestinationState, Verdict
from stripe_monitor.model.ids import validate_destination_id
from stripe_monitor.model.receipt import Receipt
from stripe_monitor.model.times import expiry, iso_ms, parse_iso
from stripe_monitor.observability import logger
from stripe_monitor.store.results_table import ResultsTable

_SWEEP_WINDOW = timedelta(days=1)  # how far back the sweep looks for checks still pending


class Deliveries:
    def __init__(self, settings: CommonSettings, table: ResultsTable, health: HealthTracker) -> None:
        self.settings = settings
        self.table = table
        self.health = health

    def is_monitored(self, destination_id: str, receipt_channel: str | None) -> bool:
        """Will a receipt come for this destination's pings? Configured, or learned from a receipt."""
        return destination_id in self.settings.monitored_destination_ids or receipt_channel is not None

    def awaiting_receipt(self, record: CheckRecord, state: DestinationState | None) -> CheckRecord:
        """The record with its delivery status: ``pending`` when a receipt will come for its ping."""
        if record.outcome is not Outcome.OK:
            return record  # nothing was sent, so nothing can arrive
        monitored = self.is_monitored(record.destination_id, state.receipt_channel if state else None)
        return replace(
            record, delivery_status=DeliveryStatus.PENDING if monitored else DeliveryStatus.UNMONITORED
        )

    def record(self, receipt: Receipt) -> dict[str, Any]:
        """Store an arrival and match it to the check that caused it (if that check is stored yet)."""
        validate_destination_id(receipt.destination_id)
        received_at = iso_ms(receipt.received_at)
        stored = self.table.receipts.record(
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
        self.table.states.note_receipt(receipt.destination_id, receipt.channel, received_at)
        check = self.table.checks.find_by_event(receipt.destination_id, receipt.event_id)
        if check is None:
            logger.info("receipt without a check (yet)", receipt=stored)
            return {"status": "unmatched", "event_id": receipt.event_id, "deliveries": stored["deliveries"]}
        return self._apply(check, stored)

    def claim(self, records: Iterable[CheckRecord]) -> None:
        """After checks are written: apply receipts that arrived before their check was stored."""
        # Only a check that waits for a receipt can have one to claim (and most need no look-up).
        by_key = {
            (r.destination_id, r.event_id): r
            for r in records
            if r.event_id and r.delivery_status is DeliveryStatus.PENDING
        }
        if not by_key:
            return
        for found, receipt in self.table.receipts.find(by_key).items():
            self._apply(by_key[found], receipt)

    def wait_for(self, record: CheckRecord, *, seconds: float, poll_seconds: float = 0.2) -> CheckRecord:
        """Poll the check until a receipt marks it delivered (or late), for at most ``seconds``."""
        give_up = time.monotonic() + seconds
        while record.delivery_status is DeliveryStatus.PENDING and time.monotonic() < give_up:
            time.sleep(min(poll_seconds, max(give_up - time.monotonic(), 0)))
            record = self.table.checks.get(record.destination_id, record.pinged_at) or record
        return record

    def sweep(self, destination_ids: Iterable[str], now: datetime) -> list[CheckRecord]:
        """Checks still pending ``lost_after`` after their ping event was created: lost. Each counts as a
        failed check in the destination's health. (The event's creation time, not ``pinged_at``, because a
        redelivered scheduled run keeps the scheduled time as ``pinged_at``.)"""
        lost_after = timedelta(seconds=self.settings.lost_after_seconds)
        lost = []
        for destination_id in destination_ids:
            pending = self.table.checks.pending(
                destination_id, not_before=iso_ms(now - lost_after - _SWEEP_WINDOW), before=iso_ms(now)
            )
            for check in pending:
                sent = parse_iso(check.event_created or check.pinged_at)
                if sent + lost_after > now or not self.table.checks.mark_lost(check):
                    continue
                lost.append(check)
                reason = f"ping event {check.event_id} was not delivered within {_duration(lost_after)}"
                self.health.observe(destination_id, Verdict.FAIL, reason, iso_ms(now))
                report_delivery(destination_id, latency_ms=None, lost=True)
        return lost

    def _apply(self, check: CheckRecord, receipt: dict[str, Any]) -> dict[str, Any]:
        first_arrival = parse_iso(receipt["received_at"])
        created_text = check.event_created or receipt.get("event_created")
        latency_ms = (
            max(0, round((first_arrival - parse_iso(created_text)).total_seconds() * 1000))
            if created_text
            else 0
        )
        late = latency_ms > self.settings.delivery_sla_seconds * 1000
        status = DeliveryStatus.LATE if late else DeliveryStatus.DELIVERED
        delivery = {
            "delivery_status": status,
            "delivered_at": receipt["received_at"],
            "delivery_channel": receipt["channel"],
            "delivery_latency_ms": latency_ms,
            "deliveries": receipt["deliveries"],
        }
        before = self.table.checks.mark_delivered(check, delivery)
        self.table.receipts.mark_matched(check.destination_id, receipt["event_id"], check.pinged_at)
        if before not in (DeliveryStatus.DELIVERED, DeliveryStatus.LATE):  # the first arrival: count it once
            report_delivery(check.destination_id, latency_ms=latency_ms, lost=False)
            if late:
                reason = f"ping delivered late ({latency_ms} ms > {self.settings.delivery_sla_seconds} s)"
                self.health.observe(check.destination_id, Verdict.SOFT, reason, receipt["received_at"])
        logger.info(
            "delivery recorded", destination_id=check.destination_id, check=check.pinged_at, **delivery
        )
        return {"status": "matched", "check": check.pinged_at, "event_id": receipt["event_id"], **delivery}


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    return f"{seconds // 60} min" if seconds >= 60 and not seconds % 60 else f"{seconds} s"
