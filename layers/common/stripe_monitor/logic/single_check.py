"""One destination, now (an API ping or a direct invoke): ping, classify, store, count into its health."""

import uuid
from dataclasses import dataclass

from stripe_monitor.config import PingSettings
from stripe_monitor.errors import StorageError
from stripe_monitor.logic.deliveries import Deliveries
from stripe_monitor.logic.health_tracker import HealthTracker
from stripe_monitor.logic.metrics import report_check
from stripe_monitor.logic.pinger import Pinger
from stripe_monitor.model.check import CheckRecord, Trigger
from stripe_monitor.model.destination import DestinationState
from stripe_monitor.model.ids import validate_destination_id
from stripe_monitor.model.times import expiry, parse_iso, utc_now
from stripe_monitor.observability import logger
from stripe_monitor.store.results_table import ResultsTable


@dataclass(frozen=True)
class CheckResult:
    record: CheckRecord
    replayed: bool = False  # the check an earlier request with the same idempotency key made


class SingleCheck:
    def __init__(
        self,
        settings: PingSettings,
        pinger: Pinger,
        table: ResultsTable,
        health: HealthTracker,
        deliveries: Deliveries,
    ) -> None:
        self.settings = settings
        self.pinger = pinger
        self.table = table
        self.health = health
        self.deliveries = deliveries

    def run(
        self, destination_id: str, *, trigger: Trigger, deadline: float, idempotency_key: str | None = None
    ) -> CheckResult:
        """Ping one destination and record the result. Raises only for an invalid id (before anything
        is sent or stored) and ``StorageError`` when the record cannot be written.

        A request that repeats an ``idempotency_key`` gets the check the key made, as Stripe answers a
        repeated key with the first answer: nothing is pinged or stored again.
        """
        validate_destination_id(destination_id)
        if idempotency_key and (original := self._check_of_key(destination_id, idempotency_key)):
            return CheckResult(original, replayed=True)
        key = idempotency_key or f"monitor-{uuid.uuid4()}"
        state = self._known_state(destination_id)
        pinged_at = utc_now()
        result = self.pinger.ping(destination_id, key, deadline)
        record = CheckRecord.from_ping(
            result, trigger=trigger, pinged_at=pinged_at, retention_days=self.settings.result_retention_days
        )
        record = self.deliveries.awaiting_receipt(record, state)
        try:
            stored = self.table.checks.put_check(record)
        except Exception:
            # Nothing is lost: the full record goes to the log before the error is raised.
            logger.exception("check not stored", check=record.to_dict())
            raise StorageError(record.to_dict()) from None
        if idempotency_key:
            self._remember_key(stored, idempotency_key)
        _, health = self.health.advance(stored, state, slow_ping_ms=self.settings.slow_ping_ms)
        report_check(stored, health, per_destination=self.settings.per_destination_metrics)
        try:
            self.deliveries.claim([stored])
        except Exception:  # the check is stored; a failed receipt lookup must not lose the answer
            logger.exception("receipts not claimed", destination_id=destination_id)
        return CheckResult(stored)

    def _check_of_key(self, destination_id: str, idempotency_key: str) -> CheckRecord | None:
        """The check an earlier request with this key made; None when there is none, or when it cannot be
        read (the ping goes ahead: Stripe answers a repeated key with the same event)."""
        try:
            pinged_at = self.table.idempotency.check_of(destination_id, idempotency_key)
            return self.table.checks.get(destination_id, pinged_at) if pinged_at else None
        except Exception:
            logger.exception("idempotency key not looked up", destination_id=destination_id)
            return None

    def _remember_key(self, record: CheckRecord, idempotency_key: str) -> None:
        """Which check the key made, for as long as Stripe keeps a key (a day). Two concurrent requests with
        one key may both ping: Stripe gives them one event, whose receipt settles both checks."""
        try:
            expires_at = expiry(parse_iso(record.pinged_at), 1)
            self.table.idempotency.remember(
                record.destination_id, idempotency_key, record.pinged_at, expires_at=expires_at
            )
        except Exception:  # the check is stored; a retry then pings again and gets the same event
            logger.exception("idempotency key not remembered", destination_id=record.destination_id)

    def _known_state(self, destination_id: str) -> DestinationState:
        """The state as this environment holds it, else as stored (a fresh one when it cannot be read:
        the ping is still made, and recorded if storage works)."""
        state = self.health.cached(destination_id)
        if state is not None:
            return state
        try:
            return self.health.read(destination_id)
        except Exception:
            logger.exception("destination state not read", destination_id=destination_id)
            return DestinationState(destination_id)
