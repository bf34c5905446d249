"""Closing the loop: a receipt proves that a ping event ARRIVED; a ping without one in time is lost.

Receipts come through three channels (``model/receipt.py``). A destination expects them when the
deployment says so (``ReceiptDestinationIds``, ``StripeEventBusNames``, the signing-secret map) or when a
receipt for one of the monitor's own pings came recently; a receipt for a ping the monitor did not send (a
dashboard ping) proves nothing about the monitor's pings and changes nothing.
"""

import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from stripe_monitor.config import CommonSettings
from stripe_monitor.errors import ConfigError, InvalidInputError
from stripe_monitor.logic.health_tracker import HealthTracker
from stripe_monitor.logic.metrics import report_delivery
from stripe_monitor.model.check import CheckRecord, DeliveryStatus, Outcome
from stripe_monitor.model.destination import DestinationState, Verdict
from stripe_monitor.model.ids import validate_destination_id
from stripe_monitor.model.receipt import Channel, Receipt, SigningSecrets
from stripe_monitor.model.times import expiry, iso_ms, parse_iso, utc_now
from stripe_monitor.observability import logger
from stripe_monitor.store.results_table import ResultsTable

_SWEEP_WINDOW = timedelta(days=1)  # how far back the sweep looks for checks still pending
MAX_CLOCK_SKEW = timedelta(minutes=5)  # between Stripe's clock and the one that reports an arrival
SigningSecretsReader = Callable[[], SigningSecrets]


class Deliveries:
    def __init__(
        self,
        settings: CommonSettings,
        table: ResultsTable,
        health: HealthTracker,
        signing_secrets: SigningSecretsReader | None = None,
    ) -> None:
        self.settings = settings
        self.table = table
        self.health = health
        self._signing_secrets = signing_secrets
        self._per_destination = settings.per_destination_metrics

    def configured(self) -> frozenset[str]:
        """Destinations the deployment says report receipts."""
        return self.settings.monitored_destination_ids | self._forwarding()

    def _forwarding(self) -> frozenset[str]:
        """Destinations whose application forwards their pings (listed by id with their signing secrets)."""
        if self._signing_secrets is None:
            return frozenset()
        try:
            return frozenset(self._signing_secrets().by_destination)
        except ConfigError:
            logger.warning("webhook signing secrets not read: their destinations count as unconfigured")
            return frozenset()

    def is_monitored(self, destination_id: str, state: DestinationState | None, now: datetime) -> bool:
        """Will a receipt come for this destination's pings? Configured, or one came recently."""
        return destination_id in self.configured() or _learned(
            state, now, self.settings.learned_receipt_window
        )

    def receipt_channel(
        self, destination_id: str, state: DestinationState | None, now: datetime
    ) -> str | None:
        """How this destination's receipts arrive: as they last did when that is recent, else as
        configured; None when it is not monitored."""
        if _learned(state, now, self.settings.learned_receipt_window):
            return state.receipt_channel if state else None
        if destination_id not in self.configured():
            return None
        if destination_id in self._forwarding():
            return Channel.APPLICATION
        return Channel.EVENTBRIDGE if destination_id in self.settings.bus_destination_ids else "configured"

    def expecting_receipts(self, states: dict[str, DestinationState], now: datetime) -> list[str]:
        """Destinations whose checks may still wait for receipts: the sweep looks at these."""
        since = self.settings.learned_receipt_window + _SWEEP_WINDOW
        return sorted(self.configured() | {d for d, s in states.items() if _learned(s, now, since)})

    def awaiting_receipt(self, record: CheckRecord, state: DestinationState | None) -> CheckRecord:
        """The record with its delivery status: ``pending`` when a receipt will come for its ping."""
        if record.outcome is not Outcome.OK or not record.event_id:
            return record  # nothing was sent, so nothing can arrive
        monitored = self.is_monitored(record.destination_id, state, utc_now())
        return replace(
            record, delivery_status=DeliveryStatus.PENDING if monitored else DeliveryStatus.UNMONITORED
        )

    def expect(self, record: CheckRecord, *, learning: bool = False) -> dict[str, Any] | None:
        """After a check that waits for its receipt is stored: join its event, and return the event's first
        arrival when a receipt came before the check was stored (``settle`` applies it). ``learning``: an
        unmonitored check joins too (a write more, spent by scheduled runs, not by API pings), since a
        receipt for one of the monitor's own pings is what makes a destination monitored."""
        joining = (
            (DeliveryStatus.PENDING, DeliveryStatus.UNMONITORED) if learning else (DeliveryStatus.PENDING,)
        )
        if record.delivery_status not in joining:
            return None
        return self.table.receipts.expect(record)

    def settle(self, record: CheckRecord, arrival: dict[str, Any]) -> None:
        if self._apply(record.destination_id, record.pinged_at, arrival):
            self._note_receipt(record.destination_id, arrival)

    def claim(self, records: Iterable[CheckRecord]) -> None:
        """``expect`` and ``settle`` for checks just stored."""
        for record in records:
            if arrival := self.expect(record):
                self.settle(record, arrival)

    def record(self, receipt: Receipt) -> dict[str, Any]:
        """Store an arrival and settle every check of its event (none yet: it waits for them)."""
        validate_destination_id(receipt.destination_id)
        if receipt.event_created and receipt.event_created > receipt.received_at + MAX_CLOCK_SKEW:
            raise InvalidInputError(
                "the receipt says the event arrived before Stripe created it", code="invalid_received_at"
            )
        received_at = iso_ms(receipt.received_at)
        stored = self.table.receipts.record(
            {
                "destination_id": receipt.destination_id,
                "event_id": receipt.event_id,
                "received_at": received_at,
                "channel": receipt.channel,
                "event_created": iso_ms(receipt.event_created) if receipt.event_created else None,
                "expires_at": expiry(receipt.received_at, self.settings.result_retention_days),
            },
            created_by=iso_ms(receipt.received_at + MAX_CLOCK_SKEW),
        )
        if not stored["checks"]:
            # An event this stack did not send (e.g. a dashboard ping), or one whose check is not stored yet.
            logger.info("receipt without a check (yet)", receipt=stored)
            return {"status": "unmatched", "event_id": receipt.event_id, "deliveries": stored["deliveries"]}
        settled = [d for p in stored["checks"] if (d := self._apply(receipt.destination_id, p, stored))]
        if settled:
            self._note_receipt(receipt.destination_id, stored)
        first = settled[0] if settled else {}
        return {"status": "matched", "event_id": receipt.event_id, "checks": stored["checks"], **first}

    def wait_for(self, record: CheckRecord, *, seconds: float, poll_seconds: float = 0.2) -> CheckRecord:
        """Poll the check until a receipt marks it delivered (or late), for at most ``seconds``."""
        give_up = time.monotonic() + seconds
        while record.delivery_status is DeliveryStatus.PENDING and time.monotonic() < give_up:
            time.sleep(min(poll_seconds, max(give_up - time.monotonic(), 0)))
            record = self.table.checks.get(record.destination_id, record.pinged_at) or record
        return record

    def sweep(self, destination_ids: Iterable[str], now: datetime) -> list[CheckRecord]:
        """Checks still pending ``lost_after`` after their ping event was created, as judged at ``now``:
        lost. Each counts as a failed check in the destination's health, at the time it is declared. (The
        event's creation time, not ``pinged_at``, because a redelivered scheduled run keeps the scheduled
        time as ``pinged_at``.)"""
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
                self.health.observe(destination_id, Verdict.FAIL, reason, iso_ms(utc_now()))
                report_delivery(
                    destination_id, latency_ms=None, lost=True, per_destination=self._per_destination
                )
        return lost

    def _note_receipt(self, destination_id: str, receipt: dict[str, Any]) -> None:
        """A receipt for one of the monitor's own pings: the destination expects the next ones too. (Not
        written for a configured destination, which expects them anyway: a write less a receipt.)"""
        if destination_id not in self.configured():
            self.table.states.note_receipt(destination_id, receipt["channel"], receipt["received_at"])

    def _apply(self, destination_id: str, pinged_at: str, receipt: dict[str, Any]) -> dict[str, Any] | None:
        """Mark one check delivered (or late) from its event's first arrival; None when the check is gone.
        A check declared lost that is delivered after all turns late: counted once, never lost twice."""
        first_arrival = parse_iso(receipt["received_at"])
        created = receipt.get("event_created")
        latency_ms = (
            max(0, round((first_arrival - parse_iso(created)).total_seconds() * 1000)) if created else 0
        )
        late = latency_ms > self.settings.delivery_sla_seconds * 1000
        delivery = {
            "delivery_status": DeliveryStatus.LATE if late else DeliveryStatus.DELIVERED,
            "delivered_at": receipt["received_at"],
            "delivery_channel": receipt["channel"],
            "delivery_latency_ms": latency_ms,
            "deliveries": receipt["deliveries"],
        }
        found, before = self.table.checks.mark_delivered(destination_id, pinged_at, delivery)
        if not found:
            return None
        if before not in (DeliveryStatus.DELIVERED, DeliveryStatus.LATE):  # the first arrival: count it once
            report_delivery(
                destination_id, latency_ms=latency_ms, lost=False, per_destination=self._per_destination
            )
            if late:
                reason = f"ping delivered late ({latency_ms} ms > {self.settings.delivery_sla_seconds} s)"
                self.health.observe(destination_id, Verdict.SOFT, reason, receipt["received_at"])
        logger.info("delivery recorded", destination_id=destination_id, check=pinged_at, **delivery)
        return {"check": pinged_at, **delivery}


def _learned(state: DestinationState | None, now: datetime, window: timedelta) -> bool:
    return bool(state and state.last_receipt_at and parse_iso(state.last_receipt_at) > now - window)


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    return f"{seconds // 60} min" if seconds >= 60 and not seconds % 60 else f"{seconds} s"
