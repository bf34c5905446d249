"""What the API reads (history, transitions, every destination) and the mute it sets."""

from datetime import datetime
from typing import Any

from stripe_monitor.model.check import CheckRecord
from stripe_monitor.model.destination import Transition
from stripe_monitor.model.ids import validate_destination_id
from stripe_monitor.model.times import iso_ms, utc_now
from stripe_monitor.store.results_table import ResultsTable


class Queries:
    def __init__(self, table: ResultsTable, configured: tuple[str, ...] = ()) -> None:
        self.table = table
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
        now = utc_now()
        return [state.to_api(now) for _, state in sorted(self.table.states.load_all().items())]

    def mute(self, destination_id: str, until: datetime | None) -> dict[str, Any]:
        """Keep checking and recording, but send no notification until ``until`` (None ends the mute)."""
        validate_destination_id(destination_id)
        known = destination_id in self.configured
        state = self.table.states.set_mute(destination_id, iso_ms(until) if until else None, known=known)
        return state.to_api(utc_now())
