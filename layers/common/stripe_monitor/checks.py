"""The monitor's logic: check destinations (ping, classify, record), keep their health, raise alerts.

Knows nothing of API Gateway: the handler turns requests into these calls and results into responses.
"""

import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from pydantic import ValidationError

from stripe_monitor.alerts import AlertPublisher
from stripe_monitor.check_store import CheckStore
from stripe_monitor.deliveries import PENDING, UNMONITORED, Deliveries
from stripe_monitor.destination_ids import validate_destination_id
from stripe_monitor.destination_state import REMOVED, DestinationState, Transition
from stripe_monitor.health import Health, Verdict
from stripe_monitor.observability import logger, metrics
from stripe_monitor.ping import Outcome, PingResult, clean_message, ping_destination
from stripe_monitor.rate_limit import RateLimiter
from stripe_monitor.records import CheckRecord, Trigger, expiry, iso_ms, parse_iso, utc_now
from stripe_monitor.settings import ConfigError, Settings
from stripe_monitor.stripe_client import StripeApiError, StripeClient, StripeTransportError
from stripe_monitor.stripe_models import EventDestination

ApiKeyProvider = Callable[..., str]  # (secret_id, *, force_fetch=False) -> key
_HEALTH_LEVEL = {Health.HEALTHY: 0, Health.DEGRADED: 1, Health.DOWN: 2}
_STATE_WRITE_TRIES = 3


class StorageError(Exception):
    """A check was made but could not be stored; it is logged in full so it is not lost."""

    def __init__(self, record: CheckRecord) -> None:
        super().__init__(f"could not store the check of {record.destination_id} at {record.pinged_at}")
        self.record = record


@dataclass(frozen=True)
class ScheduleSummary:
    scheduled_time: str
    mode: str  # "configured" (DESTINATION_IDS) or "discovered" (every destination of the account)
    checked: int
    ok: int
    failed: int
    disabled: int
    discovery_error: str | None = None
    already_recorded: list[str] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)  # the deadline came first
    errors: dict[str, str] = field(default_factory=dict)  # a check that raised (a bug): id -> error
    not_stored: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # checks whose ping never arrived: "ed_...@time"
    transitions: list[Transition] = field(default_factory=list)
    checks: list[CheckRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        values = dict(self.__dict__)
        values["checks"] = [record.to_dict() for record in self.checks]
        values["transitions"] = [transition.to_dict() for transition in self.transitions]
        return values


class Monitor:
    def __init__(
        self,
        settings: Settings,
        store: CheckStore,
        get_api_key: ApiKeyProvider,
        alerts: AlertPublisher | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self._get_api_key = get_api_key
        self.alerts = alerts or AlertPublisher(None)
        self.deliveries = Deliveries(settings, store, self.observe_delivery)
        # Each destination's state as this execution environment last read or wrote it: an API ping of a
        # destination checked before needs no read. Writes are conditional on the state's version, so a
        # stale entry costs a conflict and a fresh read, never a lost update.
        self._states: dict[str, DestinationState] = {}

    # -- one destination, now (API or direct invoke) -------------------------------------------------

    def check_destination(
        self,
        destination_id: str,
        *,
        trigger: Trigger,
        deadline: float,
        idempotency_key: str | None = None,
        api_url: str | None = None,
    ) -> CheckRecord:
        """Ping one destination and record the result. Raises only for an invalid id (before anything
        is sent or stored) and ``StorageError`` when the record cannot be written."""
        validate_destination_id(destination_id)
        key = idempotency_key or f"monitor-{uuid.uuid4()}"
        state = self._states.get(destination_id)
        if state is None:
            try:
                state = self._read_state(destination_id)
            except Exception:  # the ping is still made, and recorded if storage works
                logger.exception("destination state not read", destination_id=destination_id)
                state = DestinationState(destination_id)
        pinged_at = utc_now()
        result = self._ping_with_fresh_key_on_401(destination_id, key, deadline)
        record = self._awaiting_receipt(self._record(result, Trigger(trigger), pinged_at), state)
        try:
            stored = self.store.put_check(record)
        except Exception:
            # Nothing is lost: the full record goes to the log before the error is raised.
            logger.exception("check not stored", check=record.to_dict())
            raise StorageError(record) from None
        _, health = self._advance_state_logged(stored, state, api_url)
        _observe(stored, health)
        try:
            self.deliveries.claim([stored])
        except Exception:  # the check is stored; a failed receipt lookup must not lose the answer
            logger.exception("receipts not claimed", destination_id=destination_id)
        return stored

    def wait_for_delivery(
        self, record: CheckRecord, *, seconds: float, poll_seconds: float = 0.2
    ) -> CheckRecord:
        """Poll the check until a receipt marks it delivered (or late), for at most ``seconds``."""
        give_up = time.monotonic() + seconds
        while record.delivery_status == PENDING and time.monotonic() < give_up:
            time.sleep(min(poll_seconds, max(give_up - time.monotonic(), 0)))
            record = self.store.get_check(record.destination_id, record.pinged_at) or record
        return record

    def _ping_with_fresh_key_on_401(
        self, destination_id: str, key: str, deadline: float, limiter: RateLimiter | None = None
    ) -> PingResult:
        try:
            api_key = self._get_api_key(self.settings.stripe_secret_id)
        except ConfigError as exc:
            return _config_error(destination_id, key, exc)
        result = ping_destination(
            self._client(api_key, limiter), destination_id, idempotency_key=key, deadline=deadline
        )
        if result.http_status != 401:
            return result
        fresh_key = self._fresh_key_after_401(api_key)
        if fresh_key is None:
            return result
        retried = ping_destination(
            self._client(fresh_key, limiter), destination_id, idempotency_key=key, deadline=deadline
        )
        return PingResult(**{**retried.__dict__, "attempts": result.attempts + retried.attempts})

    def _fresh_key_after_401(self, rejected_key: str) -> str | None:
        """The key may have been rotated since it was cached: read it again, once. None if unchanged."""
        try:
            fresh_key = self._get_api_key(self.settings.stripe_secret_id, force_fetch=True)
        except ConfigError:
            return None
        if fresh_key == rejected_key:
            return None
        logger.info("Stripe answered 401: using the re-read key")
        return fresh_key

    def _client(self, api_key: str, rate_limiter: RateLimiter | None = None) -> StripeClient:
        return StripeClient(api_key, self.settings.stripe_client_config, rate_limiter=rate_limiter)

    # -- every destination, on schedule ---------------------------------------------------------------

    def run_schedule(
        self, scheduled_time: datetime, *, deadline: float, api_url: str | None = None
    ) -> ScheduleSummary:
        """Check every configured (or, when none is configured, every discovered) destination once.

        Idempotent per scheduled time: the Stripe idempotency key and the record's key derive from it, so a
        redelivered run neither pings nor records a destination twice.
        """
        when = iso_ms(scheduled_time)
        configured = self.settings.destination_ids
        limiter = RateLimiter(self.settings.stripe_requests_per_second)
        try:
            api_key: str | ConfigError = self._get_api_key(self.settings.stripe_secret_id)
        except ConfigError as exc:
            api_key = exc
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="read") as readers:
            # Both reads go on beside the pings: the stored states are needed once a check is made, and the
            # destination list before a ping only for a destination not seen enabled before.
            reading_states = readers.submit(self._load_states)
            listing = (
                readers.submit(self._discover, api_key, limiter, deadline)
                if isinstance(api_key, str)
                else None
            )
            stored_states = _result_or(reading_states, {})
            listed = _result_or(listing, (None, None))
            if configured:
                targets = list(configured)
            elif (discovered := listed()[0]) is not None:
                targets = sorted(discovered)
            else:
                targets = sorted(i for i, s in reading_states.result().items() if not s.removed_at)
            done = {d for d, _ in self.store.existing_check_keys((d, when) for d in targets)}
            todo = [d for d in targets if d not in done]
            check = self._scheduled_check(api_key, limiter, listed, stored_states, scheduled_time, deadline)
            outcomes, stored, transitions = self._check_and_store(todo, check, stored_states, api_url)
        states = reading_states.result()  # raises now if it failed: the checks are stored, Lambda retries
        discovered, discovery_error = listing.result() if listing else (None, None)
        not_stored = {r.destination_id for r in outcomes.values() if isinstance(r, CheckRecord)} - {
            r.destination_id for r in stored
        }
        self.deliveries.claim(stored)
        monitored = self.settings.monitored_destination_ids | {
            d for d, s in states.items() if s.receipt_channel
        }
        lost = self.deliveries.sweep(sorted(monitored), utc_now(), api_url)
        if discovered is not None and not configured:
            removals = self._report_removed(states, discovered, when, api_url)
            transitions += removals
        summary = ScheduleSummary(
            scheduled_time=when,
            mode="configured" if configured else "discovered",
            checked=len(stored),
            ok=sum(1 for r in stored if r.outcome is Outcome.OK),
            failed=sum(1 for r in stored if r.outcome not in (Outcome.OK, Outcome.DISABLED)),
            disabled=sum(1 for r in stored if r.outcome is Outcome.DISABLED),
            discovery_error=discovery_error,
            already_recorded=sorted(done),
            not_started=sorted(d for d, r in outcomes.items() if r == "not_started"),
            errors={d: r for d, r in outcomes.items() if isinstance(r, str) and r != "not_started"},
            not_stored=sorted(not_stored),
            removed=[t.destination_id for t in transitions if t.to_health == REMOVED],
            lost=[f"{r.destination_id}@{r.pinged_at}" for r in lost],
            transitions=transitions,
            checks=stored,
        )
        metrics.add_metric(name="ChecksNotStarted", unit=MetricUnit.Count, value=len(summary.not_started))
        return summary

    def _discover(
        self, api_key: str, limiter: RateLimiter, deadline: float
    ) -> tuple[dict[str, EventDestination] | None, str | None]:
        """Every destination of the account with its state (all pages), or the error that prevented it.
        On a 401 the key is re-read once."""
        for attempt in range(2):
            try:
                pages = self._client(api_key, limiter).list_destinations(
                    deadline=deadline, page_size=self.settings.stripe_list_page_size
                )
                return {d.id: d for d in pages}, None
            except StripeApiError as exc:
                fresh = (
                    self._fresh_key_after_401(api_key) if exc.response.status == 401 and not attempt else None
                )
                if fresh is None:
                    return None, f"listing destinations failed: HTTP {exc.response.status}"
                api_key = fresh
            except (StripeTransportError, ValidationError) as exc:
                return None, clean_message(f"listing destinations failed: {type(exc).__name__}: {exc}")
        return None, "listing destinations failed"

    def _scheduled_check(
        self,
        api_key: str | ConfigError,
        limiter: RateLimiter,
        listed: Callable[[], tuple[dict[str, EventDestination] | None, str | None]],
        stored_states: Callable[[], dict[str, DestinationState]],
        scheduled_time: datetime,
        deadline: float,
    ) -> Callable[[str], CheckRecord | str]:
        """One destination's check in a scheduled run: its record, "not_started", or the error it raised.

        A destination this environment (or the table) last saw enabled is pinged at once, beside the
        destination list; any other waits for the list, and is not pinged if Stripe has disabled it.
        Without a Stripe key (``api_key`` is then the reason) every check is a ``config_error``.
        """
        when = iso_ms(scheduled_time)
        one_attempt = self.settings.stripe_connect_timeout + self.settings.stripe_read_timeout

        def seen_enabled(destination_id: str) -> bool:
            state = self._states.get(destination_id) or stored_states().get(destination_id)
            return bool(state and state.last_check and state.last_check.outcome is not Outcome.DISABLED)

        def listed_as(destination_id: str) -> EventDestination | None:
            return (listed()[0] or {}).get(destination_id)

        def check(destination_id: str) -> CheckRecord | str:
            if time.monotonic() + min(one_attempt, 1.0) > deadline:
                return "not_started"
            try:
                key = f"schedule-{when}-{destination_id}"
                destination = None
                if isinstance(api_key, ConfigError):
                    result = _config_error(destination_id, key, api_key)
                elif not seen_enabled(destination_id) and _disabled(destination := listed_as(destination_id)):
                    result = PingResult(destination_id, Outcome.DISABLED, key, attempts=0, latency_ms=0)
                else:
                    result = self._ping_with_fresh_key_on_401(destination_id, key, deadline, limiter)
                    if _disabled(destination := listed_as(destination_id)):
                        # Disabled since it was last seen, and pinged before the list came back.
                        result = PingResult(
                            destination_id, Outcome.DISABLED, key, result.attempts, result.latency_ms
                        )
                return self._record(result, Trigger.SCHEDULE, scheduled_time, destination)
            except Exception as exc:  # one destination's bug must not stop the others
                logger.exception("check failed unexpectedly", destination_id=destination_id)
                return clean_message(f"{type(exc).__name__}: {exc}")

        return check

    def _check_and_store(
        self,
        destination_ids: list[str],
        check: Callable[[str], CheckRecord | str],
        stored_states: Callable[[], dict[str, DestinationState]],
        api_url: str | None,
    ) -> tuple[dict[str, CheckRecord | str], list[CheckRecord], list[Transition]]:
        """Check the destinations on ``check_workers`` threads; each check is stored, and its destination's
        state moved, by a second set of threads as soon as it is made, while the other pings go on.

        Returns every destination's outcome, the checks stored (in the order given) and the transitions.
        Logs and metrics are written on this thread: Powertools Metrics is not thread-safe.
        """
        outcomes: dict[str, CheckRecord | str] = {}
        stored: dict[str, CheckRecord] = {}
        transitions: list[Transition] = []
        if not destination_ids:
            return outcomes, [], transitions
        workers = min(self.settings.check_workers, len(destination_ids))

        def store(record: CheckRecord) -> tuple[CheckRecord, bool, Transition | None, Health | None]:
            return self._store_scheduled(record, stored_states, api_url)

        with (
            ThreadPoolExecutor(workers, thread_name_prefix="check") as checkers,
            ThreadPoolExecutor(workers, thread_name_prefix="store") as writers,
        ):
            checking: dict[Future[Any], str] = {checkers.submit(check, d): d for d in destination_ids}
            pending: set[Future[Any]] = set(checking)
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    if future in checking:
                        outcome = outcomes[checking[future]] = future.result()
                        if isinstance(outcome, CheckRecord):
                            pending.add(writers.submit(store, outcome))
                        continue
                    record, was_stored, transition, health = future.result()
                    if was_stored:
                        stored[record.destination_id] = record
                        _observe(record, health)
                    if transition:
                        transitions.append(transition)
        order = {d: n for n, d in enumerate(destination_ids)}
        transitions.sort(key=lambda t: order[t.destination_id])
        return outcomes, [stored[d] for d in destination_ids if d in stored], transitions

    def _store_scheduled(
        self,
        record: CheckRecord,
        stored_states: Callable[[], dict[str, DestinationState]],
        api_url: str | None,
    ) -> tuple[CheckRecord, bool, Transition | None, Health | None]:
        """Store one scheduled check, then move its destination's state; never raises. Returns the record
        as stored (with its delivery status, which needs the stored state) and what came of it."""
        state = stored_states().get(record.destination_id)
        record = self._awaiting_receipt(record, state)
        try:
            self.store.put_scheduled_check(record)
        except Exception:
            # Nothing is lost: the full record goes to the log, and the run reports it as not stored.
            logger.exception("check not stored", check=record.to_dict())
            return record, False, None, None
        return record, True, *self._advance_state_logged(record, state, api_url)

    def _report_removed(
        self,
        states: dict[str, DestinationState],
        listed: dict[str, EventDestination],
        when: str,
        api_url: str | None,
    ) -> list[Transition]:
        """Destinations seen before but no longer in the account: reported once, then left alone."""
        removals = []
        for destination_id, state in states.items():
            if destination_id in listed or state.removed_at or state.last_check is None:
                continue
            new_state, transition = state.removal(when, utc_now())
            if saved := self._save_state(new_state):
                removals.append(self._publish_change(transition, saved, api_url))
        return removals

    # -- after every check: state, transitions, alerts, metrics ---------------------------------------

    def _advance_state_logged(
        self, record: CheckRecord, state: DestinationState | None, api_url: str | None
    ) -> tuple[Transition | None, Health | None]:
        try:
            return self._advance_state(record, state, api_url)
        except Exception:  # the check is stored; a failed state update must not hide it
            logger.exception("destination state not updated", destination_id=record.destination_id)
            return None, None

    def _advance_state(
        self, record: CheckRecord, state: DestinationState | None, api_url: str | None
    ) -> tuple[Transition | None, Health | None]:
        for _ in range(_STATE_WRITE_TRIES):
            current = state or self._read_state(record.destination_id)
            previous_at = current.last_check.pinged_at if current.last_check else None
            if previous_at is not None and previous_at >= record.pinged_at:
                return None, current.health  # an older check finishing late never moves health backwards
            new_state, transition = current.advance(
                record, slow_ping_ms=self.settings.slow_ping_ms, now=utc_now()
            )
            if saved := self._save_state(new_state):
                if transition:
                    transition = self._publish_change(transition, saved, api_url)
                return transition, saved.health
            state = None  # somebody else wrote it: read again
        logger.warning(
            "destination state changed concurrently; left as is", destination_id=record.destination_id
        )
        return None, None

    def _load_states(self) -> dict[str, DestinationState]:
        """Every stored state, into this environment's cache too (before the run writes any)."""
        states = self.store.load_states()
        self._states.update(states)
        return states

    def _read_state(self, destination_id: str) -> DestinationState:
        state = self._states[destination_id] = self.store.get_state(destination_id)
        return state

    def _save_state(self, state: DestinationState) -> DestinationState | None:
        """Write a state if its version is still current; the stored state, or None after a conflict."""
        saved = self.store.save_state(state)
        if saved is None:
            self._states.pop(state.destination_id, None)
        else:
            self._states[state.destination_id] = saved
        return saved

    def _publish_change(
        self, transition: Transition, saved: DestinationState, api_url: str | None
    ) -> Transition:
        """Publish a transition with the mute as stored now (another environment may have set it)."""
        transition = replace(transition, muted=saved.is_muted(utc_now()))
        self._publish(transition, saved, api_url)
        return transition

    def _publish(self, transition: Transition, state: DestinationState, api_url: str | None) -> None:
        self.store.add_transition(
            transition, expires_at=expiry(parse_iso(transition.at), self.settings.result_retention_days)
        )
        logger.info("health changed", transition=transition.to_dict())
        if transition.from_health is None and transition.to_health == Health.HEALTHY:
            return  # a new destination that works is no news
        try:
            self.alerts.publish(transition, state, api_url)
        except Exception:
            logger.exception("alert not published", transition=transition.to_dict())

    def _record(
        self,
        result: PingResult,
        trigger: Trigger,
        pinged_at: datetime,
        destination: EventDestination | None = None,
    ) -> CheckRecord:
        return CheckRecord.from_ping(
            result,
            trigger=trigger,
            pinged_at=pinged_at,
            retention_days=self.settings.result_retention_days,
            destination=destination,
        )

    def _awaiting_receipt(self, record: CheckRecord, state: DestinationState | None) -> CheckRecord:
        """The record with its delivery status: ``pending`` when a receipt will come for its ping."""
        if record.outcome is not Outcome.OK:
            return record  # nothing was sent, so nothing can arrive
        channel = state.receipt_channel if state else None
        monitored = self.deliveries.is_monitored(record.destination_id, channel)
        return replace(record, delivery_status=PENDING if monitored else UNMONITORED)

    def observe_delivery(
        self, destination_id: str, verdict: Verdict, reason: str, at: str, api_url: str | None = None
    ) -> None:
        """Count a delivery verdict (lost: failed, late: soft) into the destination's health."""
        for _ in range(_STATE_WRITE_TRIES):
            current = self._read_state(destination_id)
            last_error = reason if verdict is Verdict.FAIL else None
            new_state, transition = current.observe(
                verdict, reason, at=at, last_error=last_error, now=utc_now()
            )
            if saved := self._save_state(new_state):
                if transition:
                    self._publish_change(transition, saved, api_url)
                return

    # -- reading --------------------------------------------------------------------------------------

    def history(
        self, destination_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[CheckRecord], str | None]:
        validate_destination_id(destination_id)
        return self.store.history(destination_id, limit=limit, cursor=cursor)

    def transitions(
        self, destination_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[Transition], str | None]:
        validate_destination_id(destination_id)
        return self.store.transitions(destination_id, limit=limit, cursor=cursor)

    def destinations(self) -> list[dict[str, Any]]:
        now = utc_now()
        return [state.to_api(now) for _, state in sorted(self.store.load_states().items())]

    def mute(self, destination_id: str, until: datetime | None) -> dict[str, Any]:
        """Keep checking and recording, but send no notification until ``until`` (None ends the mute)."""
        validate_destination_id(destination_id)
        return self.store.set_mute(destination_id, iso_ms(until) if until else None).to_api(utc_now())


def deadline_from_remaining_ms(remaining_ms: int, margin_seconds: float) -> float:
    """A monotonic deadline: Lambda's remaining time less the margin kept to record the result."""
    return time.monotonic() + max(remaining_ms / 1000 - margin_seconds, 0.1)


def _disabled(destination: EventDestination | None) -> bool:
    return destination is not None and destination.status == "disabled"


def _result_or[T](future: Future[T] | None, fallback: T) -> Callable[[], T]:
    """Waits for the future's result; ``fallback`` if there is none or it failed (the owner reports that)."""

    def result() -> T:
        try:
            return future.result() if future is not None else fallback
        except Exception:
            return fallback

    return result


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


def _observe(record: CheckRecord, health: Health | None) -> None:
    """One log line per check; fleet-wide metrics (for alarms) and per-destination metrics (dashboard)."""
    logger.info("check recorded", check=record.to_dict())
    succeeded = record.outcome is Outcome.OK
    failed = record.outcome not in (Outcome.OK, Outcome.DISABLED)
    metrics.add_metric(name="CheckSucceeded", unit=MetricUnit.Count, value=int(succeeded))
    metrics.add_metric(name="CheckFailed", unit=MetricUnit.Count, value=int(failed))
    per_destination = EphemeralMetrics()
    per_destination.add_dimension(name="destination_id", value=record.destination_id)
    per_destination.add_metric(name="CheckSucceeded", unit=MetricUnit.Count, value=int(succeeded))
    per_destination.add_metric(name="CheckFailed", unit=MetricUnit.Count, value=int(failed))
    per_destination.add_metric(
        name="DestinationDisabled", unit=MetricUnit.Count, value=int(record.outcome is Outcome.DISABLED)
    )
    if record.http_status is not None:
        metrics.add_metric(name="PingLatency", unit=MetricUnit.Milliseconds, value=record.latency_ms)
        per_destination.add_metric(name="PingLatency", unit=MetricUnit.Milliseconds, value=record.latency_ms)
    if health is not None:
        per_destination.add_metric(
            name="DestinationHealth", unit=MetricUnit.Count, value=_HEALTH_LEVEL[health]
        )
    per_destination.flush_metrics()
