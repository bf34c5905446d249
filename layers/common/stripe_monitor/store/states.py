"""State items: one per destination seen (partition ``#state``, sort the destination id), so one Query lists
every destination. Health writes are conditional on the state's version (optimistic locking)."""

from typing import Any

from botocore.exceptions import ClientError

from stripe_monitor.errors import UnknownDestinationError
from stripe_monitor.model.check import CheckRecord
from stripe_monitor.model.destination import DestinationState, Health, Verdict
from stripe_monitor.store.dynamo import (
    STATE_PARTITION,
    from_item,
    is_condition_failure,
    key,
    serialize,
    without_none,
)

# What the state keeps of its last check (the check item has it all): what health, the list of destinations
# and alerts read. A state is written at every check, and DynamoDB bills each started KB of the item.
_LAST_CHECK_FIELDS = (
    "destination_id", "pinged_at", "outcome", "trigger", "http_status", "attempts", "latency_ms",
    "error_code", "error_message", "destination_status", "disabled_reason", "destination_type",
    "event_source_status", "delivery_status",
)  # fmt: skip


class StateItems:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self.table_name = table_name

    def load_all(self) -> dict[str, DestinationState]:
        query: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "destination_id = :d",
            "ExpressionAttributeValues": {":d": {"S": STATE_PARTITION}},
            "ConsistentRead": True,
        }
        states: dict[str, DestinationState] = {}
        while True:
            answer = self._client.query(**query)
            for item in answer.get("Items", []):
                state = _state_from_item(from_item(item))
                states[state.destination_id] = state
            if "LastEvaluatedKey" not in answer:
                return states
            query["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def get(self, destination_id: str) -> DestinationState:
        answer = self._client.get_item(
            TableName=self.table_name, Key=key(STATE_PARTITION, destination_id), ConsistentRead=True
        )
        item = answer.get("Item")
        return _state_from_item(from_item(item)) if item else DestinationState(destination_id)

    def save(self, state: DestinationState) -> DestinationState | None:
        """Write the health part of a state if nobody else did since ``state.version`` was read
        (optimistic locking). Returns the state as stored (mute and receipt channel included, whoever
        set them), or None on a conflict; the mute is never overwritten (it is set separately)."""
        values: dict[str, Any] = {
            ":health": state.health,
            ":since": state.health_since,
            ":reason": state.health_reason,
            ":recent": [str(v) for v in state.recent],
            ":next": state.version + 1,
        }
        sets = [
            "health = :health",
            "health_since = :since",
            "health_reason = :reason",
            "recent = :recent",
            "version = :next",
        ]
        if state.last_check is not None:
            check = {name: getattr(state.last_check, name) for name in _LAST_CHECK_FIELDS}
            values |= {":check": without_none(check), ":at": state.last_check.pinged_at}
            sets += ["last_check = :check", "last_checked_at = :at"]
        if state.removed_at is not None:
            values[":removed"] = state.removed_at
            sets.append("removed_at = :removed")
        update = "SET " + ", ".join(sets) + ("" if state.removed_at else " REMOVE removed_at")
        condition = "attribute_not_exists(version)"
        if state.version:
            values[":expected"] = state.version
            condition = "version = :expected"
        try:
            answer = self._client.update_item(
                TableName=self.table_name,
                Key=key(STATE_PARTITION, state.destination_id),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues={k: serialize(v) for k, v in values.items()},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return None
            raise
        return _state_from_item(from_item(answer["Attributes"]))

    def set_mute(self, destination_id: str, until: str | None, *, known: bool = False) -> DestinationState:
        """Mute (or, with None, unmute) a destination; one that has no state yet only when it is ``known``
        (configured), else ``UnknownDestinationError``: a mute never makes up a destination."""
        update: dict[str, Any] = {"UpdateExpression": "REMOVE muted_until"}
        if until is not None:
            update = {
                "UpdateExpression": "SET muted_until = :until",
                "ExpressionAttributeValues": {":until": {"S": until}},
            }
        try:
            answer = self._client.update_item(
                TableName=self.table_name,
                Key=key(STATE_PARTITION, destination_id),
                ReturnValues="ALL_NEW",
                **update,
                **({} if known else {"ConditionExpression": "attribute_exists(pinged_at)"}),
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise UnknownDestinationError(
                    f"{destination_id} is not configured and the monitor has never checked it"
                ) from None
            raise
        return _state_from_item(from_item(answer["Attributes"]))

    def note_receipt(self, destination_id: str, channel: str, at: str) -> None:
        """A receipt for one of the monitor's own pings came through ``channel`` (so the destination is one
        the monitor checked: never a made-up state)."""
        self._client.update_item(
            TableName=self.table_name,
            Key=key(STATE_PARTITION, destination_id),
            UpdateExpression="SET receipt_channel = :channel, last_receipt_at = :at",
            ExpressionAttributeValues={":channel": {"S": channel}, ":at": {"S": at}},
        )


def _state_from_item(item: dict[str, Any]) -> DestinationState:
    check = item.get("last_check")
    return DestinationState(
        destination_id=item["pinged_at"],
        health=Health(item["health"]) if item.get("health") else None,
        health_since=item.get("health_since"),
        health_reason=item.get("health_reason"),
        recent=tuple(Verdict(v) for v in item.get("recent", [])),
        last_check=CheckRecord.from_dict(check) if check else None,
        muted_until=item.get("muted_until"),
        removed_at=item.get("removed_at"),
        receipt_channel=item.get("receipt_channel"),
        last_receipt_at=item.get("last_receipt_at"),
        version=int(item.get("version", 0)),
    )
