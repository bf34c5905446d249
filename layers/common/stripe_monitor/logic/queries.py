"""What the API reads (history, transitions, every destination) and the mute it sets."""

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from stripe_monitor.logic.deliveries import Deliveries
from stripe_monitor.logic.delivery_stats import delivery_stats
from stripe_monitor.model.check import CheckRecord
from stripe_monitor.model.destination import DestinationState, Transition
from stripe_monitor.model.ids import validate_destination_id
from stripe_monitor.model.times import iso_ms, utc_now
from stripe_monitor.store.results_table import ResultsTable

STATS_PERIOD = timedelta(hours=24)
UNMONITORED_HINT = (
    "no receipts: forward this destination's pings to POST /webhooks/stripe and list its signing secret in"
    " WebhookSigningSecretId (docs/receipts.md)"
)


class Queries:
    def __init__(self, table: ResultsTable, deliveries: Deliveries, configured: tuple[str, ...] = ()) -> None:
        self.table = table
        self.deliveries = deliveries
        self.configured = configured  # DESTINATION_IDS: known before their first check

    def history(
        self, destination_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[CheckRecord], str | None]:
        validate_destination_id(destination_id)
        return self.table.checks.history(destination_id, limit=limit, cursor=cursor)

    def transitions(
        self, destination_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[Transition], str | None]:
        validate_destination_id(destination_id)
        return self.table.transitions.newest_first(destination_id, limit=limit, cursor=cursor)

    def destinations(self) -> list[dict[str, Any]]:
        """Every destination seen, with how its receipts arrive and how its pings fared in the last day."""
        now = utc_now()
        since = iso_ms(now - STATS_PERIOD)
        configured = self.deliveries.configured()
        found = []
        for destination_id, state in sorted(self.table.states.load_all().items()):
            checks = self.table.checks.since(destination_id, since)
            # The state holds its last check as it was stored; the check itself has what receipts or the
            # sweep learned of its delivery since.
            if checks and state.last_check and checks[0].pinged_at == state.last_check.pinged_at:
                state = replace(state, last_check=checks[0])
            if destination_id in configured:
                state = _with_last_receipt(state, checks)
            channel = self.deliveries.receipt_channel(destination_id, state, now)
            found.append(
                state.to_api(now)
                | {
                    "receipt_channel": channel or "unmonitored",
                    "receipt_hint": None if channel else UNMONITORED_HINT,
                    "delivery_24h": delivery_stats(checks),
                }
            )
        return found

    def mute(self, destination_id: str, until: datetime | None) -> dict[str, Any]:
        """Keep checking and recording, but send no notification until ``until`` (None ends the mute)."""
        validate_destination_id(destination_id)
        known = destination_id in self.configured
        state = self.table.states.set_mute(destination_id, iso_ms(until) if until else None, known=known)
        return state.to_api(utc_now())


def _with_last_receipt(state: DestinationState, checks: list[CheckRecord]) -> DestinationState:
    """A configured destination's receipts are not noted in its state (a write less per receipt): its
    checks say how and when the last one came. (Not for any other: its state decides whether it is
    monitored, and the pings read the state.)"""
    arrivals = [(c.delivered_at, c.delivery_channel) for c in checks if c.delivered_at]
    if not arrivals:
        return state
    at, channel = max(arrivals, key=lambda arrival: arrival[0])
    if (state.last_receipt_at or "") >= at:
        return state
    return replace(state, last_receipt_at=at, receipt_channel=channel)
