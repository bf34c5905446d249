"""Transition items: a destination's health changes (partition ``#transition#ed_...``, sort their time)."""

from typing import Any

from stripe_monitor.model.destination import Transition
from stripe_monitor.store.dynamo import TRANSITION_PREFIX, newest_first, to_item


class TransitionItems:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self.table_name = table_name

    def add(self, transition: Transition, *, expires_at: int) -> None:
        item = transition.to_dict() | {
            "destination_id": TRANSITION_PREFIX + transition.destination_id,
            "pinged_at": transition.at,
            "expires_at": expires_at,
        }
        item.pop("at")
        self._client.put_item(TableName=self.table_name, Item=to_item(item))

    def newest_first(
        self, destination_id: str, *, limit: int, cursor: str | None = None
    ) -> tuple[list[Transition], str | None]:
        items, next_cursor = newest_first(
            self._client, self.table_name, TRANSITION_PREFIX + destination_id, limit, cursor
        )
        found = [
            Transition(
                destination_id=destination_id,
                at=item["pinged_at"],
                from_health=item.get("from_health"),
                to_health=item["to_health"],
                reason=item.get("reason", ""),
                last_error=item.get("last_error"),
                muted=bool(item.get("muted", False)),
            )
            for item in items
        ]
        return found, next_cursor
