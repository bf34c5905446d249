"""The monitor's logic: check a destination (ping, classify, record), run a schedule, read results.

Knows nothing of API Gateway: the handler turns requests into these calls and results into responses.
"""

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from stripe_monitor.check_store import CheckStore, DuplicateCheckError
from stripe_monitor.destination_ids import validate_destination_id
from stripe_monitor.observability import logger, metrics
from stripe_monitor.ping import Outcome, PingResult, clean_message, ping_destination
from stripe_monitor.records import CheckRecord, Trigger, iso_ms, utc_now
from stripe_monitor.settings import ConfigError, Settings
from stripe_monitor.stripe_client import StripeClient

ApiKeyProvider = Callable[..., str]  # (secret_id, *, force_fetch=False) -> key


class StorageError(Exception):
    """A check was made but could not be stored; it is logged in full so it is not lost."""

    def __init__(self, record: CheckRecord) -> None:
        super().__init__(f"could not store the check of {record.destination_id} at {record.pinged_at}")
        self.record = record


@dataclass(frozen=True)
class ScheduleSummary:
    scheduled_time: str
    checked: int
    ok: int
    failed: int
    already_recorded: list[str] = field(default_factory=list)
    not_stored: list[str] = field(default_factory=list)
    checks: list[CheckRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheduled_time": self.scheduled_time,
            "checked": self.checked,
            "ok": self.ok,
            "failed": self.failed,
            "already_recorded": self.already_recorded,
            "not_stored": self.not_stored,
            "checks": [record.to_dict() for record in self.checks],
        }


class Monitor:
    def __init__(self, settings: Settings, store: CheckStore, get_api_key: ApiKeyProvider) -> None:
        self.settings = settings
        self.store = store
        self._get_api_key = get_api_key

    def check_destination(
        self,
        destination_id: str,
        *,
        trigger: Trigger,
        deadline: float,
        idempotency_key: str | None = None,
        pinged_at: datetime | None = None,
    ) -> CheckRecord:
        """Ping one destination and record the result. Raises only for an invalid id (before anything
        is sent or stored) and ``StorageError`` when the record cannot be written."""
        validate_destination_id(destination_id)
        key = idempotency_key or f"monitor-{uuid.uuid4()}"
        pinged_at = pinged_at or utc_now()
        result = self._ping_with_fresh_key_on_401(destination_id, key, deadline)
        record = CheckRecord.from_ping(
            result, trigger=trigger, pinged_at=pinged_at, retention_days=self.settings.result_retention_days
        )
        return self._store(record, exact_key=trigger is Trigger.SCHEDULE)

    def _ping_with_fresh_key_on_401(self, destination_id: str, key: str, deadline: float) -> PingResult:
        try:
            api_key = self._get_api_key(self.settings.stripe_secret_id)
        except ConfigError as exc:
            return _config_error(destination_id, key, exc)
        client = StripeClient(api_key, self.settings.stripe_client_config)
        result = ping_destination(client, destination_id, idempotency_key=key, deadline=deadline)
        if result.outcome is not Outcome.UNAUTHORIZED or result.http_status != 401:
            return result
        # The key may have been rotated since it was cached: read it again, once.
        try:
            fresh_key = self._get_api_key(self.settings.stripe_secret_id, force_fetch=True)
        except ConfigError:
            return result
        if fresh_key == api_key:
            return result
        logger.info("retrying with a re-read Stripe key after 401", destination_id=destination_id)
        retried = ping_destination(
            StripeClient(fresh_key, self.settings.stripe_client_config),
            destination_id,
            idempotency_key=key,
            deadline=deadline,
        )
        return PingResult(
            **{**retried.__dict__, "attempts": result.attempts + retried.attempts},
        )

    def _store(self, record: CheckRecord, *, exact_key: bool) -> CheckRecord:
        try:
            stored = self.store.put_check(record, exact_key=exact_key)
        except DuplicateCheckError:
            raise
        except Exception:
            # Nothing is lost: the full record goes to the log before the error is raised.
            logger.exception("check not stored", check=record.to_dict())
            raise StorageError(record) from None
        _observe(stored)
        return stored

    def run_schedule(self, scheduled_time: datetime, *, deadline: float) -> ScheduleSummary:
        """Check every configured destination once for this scheduled time.

        Idempotent: the Stripe idempotency key and the record's key derive from the scheduled time, so a
        redelivered run neither pings nor records a destination twice.
        """
        when = iso_ms(scheduled_time)
        destination_ids = self.settings.destination_ids
        done = self.store.existing_check_keys((d, when) for d in destination_ids)
        todo = [d for d in destination_ids if (d, when) not in done]

        def check(destination_id: str) -> CheckRecord | str:
            try:
                return self.check_destination(
                    destination_id,
                    trigger=Trigger.SCHEDULE,
                    deadline=deadline,
                    idempotency_key=f"schedule-{when}-{destination_id}",
                    pinged_at=scheduled_time,
                )
            except DuplicateCheckError:
                return "already_recorded"
            except StorageError:
                return "not_stored"

        with ThreadPoolExecutor(max_workers=min(self.settings.schedule_workers, max(len(todo), 1))) as pool:
            results = dict(zip(todo, pool.map(check, todo), strict=True))
        records = {d: r for d, r in results.items() if isinstance(r, CheckRecord)}
        return ScheduleSummary(
            scheduled_time=when,
            checked=len(records),
            ok=sum(1 for r in records.values() if r.succeeded),
            failed=sum(1 for r in records.values() if not r.succeeded),
            already_recorded=sorted(
                [d for d, _ in done] + [d for d, r in results.items() if r == "already_recorded"]
            ),
            not_stored=sorted(d for d, r in results.items() if r == "not_stored"),
            checks=list(records.values()),
        )

    def history(
        self, destination_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[CheckRecord], str | None]:
        validate_destination_id(destination_id)
        return self.store.history(destination_id, limit=limit, cursor=cursor)

    def latest(self) -> list[dict[str, Any]]:
        return self.store.latest_checks()


def deadline_from_remaining_ms(remaining_ms: int, margin_seconds: float) -> float:
    """A monotonic deadline: Lambda's remaining time less the margin kept to record the result."""
    return time.monotonic() + max(remaining_ms / 1000 - margin_seconds, 0.1)


def _config_error(destination_id: str, key: str, exc: ConfigError) -> PingResult:
    return PingResult(
        destination_id=destination_id,
        outcome=Outcome.CONFIG_ERROR,
        idempotency_key=key,
        attempts=0,
        latency_ms=0,
        error_code="config_error",
        error_message=clean_message(str(exc)),
    )


def _observe(record: CheckRecord) -> None:
    logger.info("check recorded", check=record.to_dict())
    metrics.add_metric(
        name="CheckSucceeded" if record.succeeded else "CheckFailed", unit=MetricUnit.Count, value=1
    )
    if record.http_status is not None:
        metrics.add_metric(name="PingLatency", unit=MetricUnit.Milliseconds, value=record.latency_ms)
