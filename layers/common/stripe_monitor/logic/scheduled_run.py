"""A scheduled run: every configured (or discovered) destination checked once, concurrently, each check
stored and counted into its destination's health as soon as it is made, while the other pings go on.

Idempotent per scheduled time: the Stripe idempotency key and the record's key derive from it, so a
redelivered run neither pings nor records a destination twice.
"""

import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stripe_monitor.config import PingSettings
from stripe_monitor.errors import ConfigError
from stripe_monitor.logic import schedule_plan as plan
from stripe_monitor.logic.deliveries import Deliveries
from stripe_monitor.logic.discovery import Listing, list_destinations
from stripe_monitor.logic.health_tracker import HealthTracker
from stripe_monitor.logic.metrics import report_check
from stripe_monitor.logic.pinger import Pinger, config_error
from stripe_monitor.model.check import CheckRecord, Outcome, PingResult, Trigger
from stripe_monitor.model.destination import REMOVED, DestinationState, Health, Transition
from stripe_monitor.model.times import iso_ms, utc_now
from stripe_monitor.observability import logger
from stripe_monitor.redaction import clean_message
from stripe_monitor.store.results_table import ResultsTable
from stripe_monitor.stripe.classify import destination_facts
from stripe_monitor.stripe.models import EventDestination
from stripe_monitor.stripe.rate_limit import RateLimiter

NOT_STARTED = "not_started"  # the deadline came before the check could start
CheckOutcome = CheckRecord | str  # the record, NOT_STARTED, or the error a check raised (a bug)


@dataclass(frozen=True)
class StoredCheck:
    """What came of storing one check (on a writer thread), for the invocation's thread to report."""

    record: CheckRecord
    stored: bool
    transition: Transition | None = None
    health: Health | None = None
    arrival: dict[str, Any] | None = None  # its receipt, when it came before the check was stored


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


class ScheduledRun:
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

    def run(self, scheduled_time: datetime, *, deadline: float) -> ScheduleSummary:
        when = iso_ms(scheduled_time)
        started = utc_now()
        configured = self.settings.destination_ids
        limiter = RateLimiter(self.settings.stripe_requests_per_second)
        try:
            api_key: str | ConfigError = self.pinger.api_key()
        except ConfigError as exc:
            api_key = exc
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="read") as readers:
            # Both reads go on beside the pings: the stored states are needed once a check is made, and the
            # destination list before a ping only for a destination not seen enabled before.
            reading_states = readers.submit(self.health.load_all)
            listing = (
                readers.submit(
                    list_destinations,
                    self.pinger,
                    api_key,
                    limiter,
                    deadline=deadline,
                    page_size=self.settings.stripe_list_page_size,
                )
                if isinstance(api_key, str)
                else None
            )
            stored_states = _result_or(reading_states, {})
            listed = _result_or(listing, (None, None))
            targets = plan.run_targets(configured, lambda: listed()[0], reading_states.result)
            recorded = {d for d, _ in self.table.checks.existing_keys((d, when) for d in targets)}
            todo = plan.not_recorded(targets, recorded)
            check = self._check_one(api_key, limiter, listed, stored_states, scheduled_time, deadline)
            outcomes, stored, transitions = self._check_and_store(todo, check, stored_states)
        states = reading_states.result()  # raises now if it failed: the checks are stored, Lambda retries
        discovered, discovery_error = listing.result() if listing else (None, None)
        # Judged as at the run's start: however long the run takes, its own pings are not yet due.
        lost = self.deliveries.sweep(self.deliveries.expecting_receipts(states, started), started)
        if discovered is not None and not configured:
            for state in plan.removed(states, discovered):
                if removal := self.health.remove(state, when):
                    transitions.append(removal)
        written = {r.destination_id for r in stored}
        return ScheduleSummary(
            scheduled_time=when,
            mode="configured" if configured else "discovered",
            checked=len(stored),
            ok=sum(1 for r in stored if r.outcome is Outcome.OK),
            failed=sum(1 for r in stored if r.outcome not in (Outcome.OK, Outcome.DISABLED)),
            disabled=sum(1 for r in stored if r.outcome is Outcome.DISABLED),
            discovery_error=discovery_error,
            already_recorded=sorted(recorded),
            not_started=sorted(d for d, r in outcomes.items() if r == NOT_STARTED),
            errors={d: r for d, r in outcomes.items() if isinstance(r, str) and r != NOT_STARTED},
            not_stored=sorted(
                r.destination_id
                for r in outcomes.values()
                if isinstance(r, CheckRecord) and r.destination_id not in written
            ),
            removed=[t.destination_id for t in transitions if t.to_health == REMOVED],
            lost=[f"{r.destination_id}@{r.pinged_at}" for r in lost],
            transitions=transitions,
            checks=stored,
        )

    def _check_one(
        self,
        api_key: str | ConfigError,
        limiter: RateLimiter,
        listed: Callable[[], Listing],
        stored_states: Callable[[], dict[str, DestinationState]],
        scheduled_time: datetime,
        deadline: float,
    ) -> Callable[[str], CheckOutcome]:
        """One destination's check: its record, NOT_STARTED, or the error it raised. Without a Stripe key
        (``api_key`` is then the reason) every check is a ``config_error``."""
        when = iso_ms(scheduled_time)
        one_attempt = self.settings.stripe_connect_timeout + self.settings.stripe_read_timeout

        def listed_as(destination_id: str) -> EventDestination | None:
            return (listed()[0] or {}).get(destination_id)

        def check(destination_id: str) -> CheckOutcome:
            if time.monotonic() + min(one_attempt, 1.0) > deadline:
                return NOT_STARTED
            try:
                key = plan.check_key(when, destination_id)
                seen = self.health.cached(destination_id) or stored_states().get(destination_id)
                step = plan.first_step(
                    has_key=isinstance(api_key, str),
                    seen_enabled=plan.pinged_before_the_list(seen),
                    listed_as=lambda: listed_as(destination_id),
                )
                result = self._result(step, destination_id, key, api_key, limiter, deadline)
                destination = listed_as(destination_id) if step is not plan.Step.CONFIG_ERROR else None
                if step is plan.Step.PING and plan.is_disabled(destination):
                    # Disabled since it was last seen, and pinged before the list came back.
                    result = PingResult(
                        destination_id, Outcome.DISABLED, key, result.attempts, result.latency_ms
                    )
                return CheckRecord.from_ping(
                    result,
                    trigger=Trigger.SCHEDULE,
                    pinged_at=scheduled_time,
                    retention_days=self.settings.result_retention_days,
                    destination=destination_facts(destination),
                )
            except Exception as exc:  # one destination's bug must not stop the others
                logger.exception("check failed unexpectedly", destination_id=destination_id)
                return clean_message(f"{type(exc).__name__}: {exc}")

        return check

    def _result(
        self,
        step: plan.Step,
        destination_id: str,
        key: str,
        api_key: str | ConfigError,
        limiter: RateLimiter,
        deadline: float,
    ) -> PingResult:
        if isinstance(api_key, ConfigError):
            return config_error(destination_id, key, api_key)
        if step is plan.Step.SKIP_DISABLED:
            return PingResult(destination_id, Outcome.DISABLED, key, attempts=0, latency_ms=0)
        return self.pinger.ping(destination_id, key, deadline, limiter)

    def _check_and_store(
        self,
        destination_ids: list[str],
        check: Callable[[str], CheckOutcome],
        stored_states: Callable[[], dict[str, DestinationState]],
    ) -> tuple[dict[str, CheckOutcome], list[CheckRecord], list[Transition]]:
        """Check the destinations on ``check_workers`` threads; each check is stored, and its destination's
        state moved, by a second set of threads as soon as it is made, while the other pings go on.

        Returns every destination's outcome, the checks stored (in the order given) and the transitions.
        Logs and metrics are written on this thread: Powertools Metrics is not thread-safe.
        """
        outcomes: dict[str, CheckOutcome] = {}
        stored: dict[str, CheckRecord] = {}
        transitions: list[Transition] = []
        if not destination_ids:
            return outcomes, [], transitions
        workers = min(self.settings.check_workers, len(destination_ids))

        def store(record: CheckRecord) -> StoredCheck:
            return self._store(record, stored_states)

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
                    result: StoredCheck = future.result()
                    if result.stored:
                        stored[result.record.destination_id] = result.record
                        per_destination = self.settings.per_destination_metrics
                        report_check(result.record, result.health, per_destination=per_destination)
                    if result.arrival:
                        self.deliveries.settle(result.record, result.arrival)
                    if result.transition:
                        transitions.append(result.transition)
        order = {d: n for n, d in enumerate(destination_ids)}
        transitions.sort(key=lambda t: order[t.destination_id])
        return outcomes, [stored[d] for d in destination_ids if d in stored], transitions

    def _store(
        self, record: CheckRecord, stored_states: Callable[[], dict[str, DestinationState]]
    ) -> StoredCheck:
        """Store one check, move its destination's state and join its event; never raises. The record as
        stored has its delivery status, which needs the stored state."""
        state = stored_states().get(record.destination_id)
        record = self.deliveries.awaiting_receipt(record, state)
        try:
            self.table.checks.put_scheduled_check(record)
        except Exception:
            # Nothing is lost: the full record goes to the log, and the run reports it as not stored.
            logger.exception("check not stored", check=record.to_dict())
            return StoredCheck(record, stored=False)
        transition, health = self.health.advance(record, state, slow_ping_ms=self.settings.slow_ping_ms)
        try:
            arrival = self.deliveries.expect(record, learning=True)
        except Exception:  # the check is stored and stays pending: the sweep decides on it
            logger.exception("check not joined to its event", destination_id=record.destination_id)
            arrival = None
        return StoredCheck(record, True, transition, health, arrival)


def _result_or[T](future: Future[T] | None, fallback: T) -> Callable[[], T]:
    """Waits for the future's result; ``fallback`` if there is none or it failed (the owner reports that)."""

    def result() -> T:
        try:
            return future.result() if future is not None else fallback
        except Exception:
            return fallback

    return result
