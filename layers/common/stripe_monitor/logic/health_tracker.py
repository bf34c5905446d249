"""Each destination's health over time: the state cache of this execution environment, writes guarded by the
state's version (a conflict means a fresh read and another try), and every change recorded as a transition
and published as an alert."""

from dataclasses import replace

from stripe_monitor.alerts import AlertPublisher
from stripe_monitor.logic.health_rule import advance, observe, removal
from stripe_monitor.model.check import CheckRecord
from stripe_monitor.model.destination import DestinationState, Health, Transition, Verdict
from stripe_monitor.model.times import expiry, parse_iso, utc_now
from stripe_monitor.observability import logger
from stripe_monitor.store.results_table import ResultsTable

_STATE_WRITE_TRIES = 3


class HealthTracker:
    def __init__(self, table: ResultsTable, alerts: AlertPublisher, *, retention_days: int) -> None:
        self.table = table
        self.alerts = alerts
        self.retention_days = retention_days
        # Each destination's state as this execution environment last read or wrote it: an API ping of a
        # destination checked before needs no read. Writes are conditional on the state's version, so a
        # stale entry costs a conflict and a fresh read, never a lost update.
        self._states: dict[str, DestinationState] = {}

    def cached(self, destination_id: str) -> DestinationState | None:
        return self._states.get(destination_id)

    def read(self, destination_id: str) -> DestinationState:
        state = self._states[destination_id] = self.table.states.get(destination_id)
        return state

    def load_all(self) -> dict[str, DestinationState]:
        """Every stored state, into this environment's cache too (before a run writes any)."""
        states = self.table.states.load_all()
        self._states.update(states)
        return states

    def advance(
        self, record: CheckRecord, state: DestinationState | None, *, slow_ping_ms: int
    ) -> tuple[Transition | None, Health | None]:
        """Count a stored check into its destination's health; never raises (the check is stored, and a
        failed state update must not hide it). Returns the transition it caused and the health after."""
        try:
            return self._advance(record, state, slow_ping_ms)
        except Exception:
            logger.exception("destination state not updated", destination_id=record.destination_id)
            return None, None

    def observe(self, destination_id: str, verdict: Verdict, reason: str, at: str) -> None:
        """Count a delivery verdict (lost: failed, late: soft) into the destination's health."""
        for _ in range(_STATE_WRITE_TRIES):
            last_error = reason if verdict is Verdict.FAIL else None
            new_state, transition = observe(
                self.read(destination_id), verdict, reason, at=at, last_error=last_error, now=utc_now()
            )
            if saved := self._save(new_state):
                if transition:
                    self._publish_change(transition, saved)
                return
        logger.warning(
            "destination state changed concurrently; verdict not counted", destination_id=destination_id
        )

    def remove(self, state: DestinationState, at: str) -> Transition | None:
        """Report a destination gone from the Stripe account (once: its state says removed)."""
        new_state, transition = removal(state, at=at, now=utc_now())
        saved = self._save(new_state)
        return self._publish_change(transition, saved) if saved else None

    def _advance(
        self, record: CheckRecord, state: DestinationState | None, slow_ping_ms: int
    ) -> tuple[Transition | None, Health | None]:
        for _ in range(_STATE_WRITE_TRIES):
            current = state or self.read(record.destination_id)
            previous_at = current.last_check.pinged_at if current.last_check else None
            if previous_at is not None and previous_at >= record.pinged_at:
                return None, current.health  # an older check finishing late never moves health backwards
            new_state, transition = advance(current, record, slow_ping_ms=slow_ping_ms, now=utc_now())
            if saved := self._save(new_state):
                if transition:
                    transition = self._publish_change(transition, saved)
                return transition, saved.health
            state = None  # somebody else wrote it: read again
        logger.warning(
            "destination state changed concurrently; left as is", destination_id=record.destination_id
        )
        return None, None

    def _save(self, state: DestinationState) -> DestinationState | None:
        """Write a state if its version is still current; the stored state, or None after a conflict."""
        saved = self.table.states.save(state)
        if saved is None:
            self._states.pop(state.destination_id, None)
        else:
            self._states[state.destination_id] = saved
        return saved

    def _publish_change(self, transition: Transition, saved: DestinationState) -> Transition:
        """Record and publish a transition with the mute as stored now (another environment may set it)."""
        transition = replace(transition, muted=saved.is_muted(utc_now()))
        self.table.transitions.add(
            transition, expires_at=expiry(parse_iso(transition.at), self.retention_days)
        )
        logger.info("health changed", transition=transition.to_dict())
        if transition.from_health is None and transition.to_health == Health.HEALTHY:
            return transition  # a new destination that works is no news
        try:
            self.alerts.publish(transition, saved)
        except Exception:
            logger.exception("alert not published", transition=transition.to_dict())
        return transition
