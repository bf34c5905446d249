"""The only module that touches DynamoDB: checks, destination states, transitions and mutes.

Item kinds in the results table (partition ``destination_id``, sort ``pinged_at``):
- a check:        ``ed_...``                  / ISO time of the check
- a state:        ``#state``                  / ``ed_...`` (health, recent verdicts, last check, mute)
- a transition:   ``#transition#ed_...``      / ISO time of the change
``#`` cannot start a destination id, so the kinds never mix, and one Query lists every destination seen.
"""

import base64
import binascii
import json
import random
import time
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError

from stripe_monitor.destination_state import DestinationState, Transition
from stripe_monitor.health import Health, Verdict
from stripe_monitor.records import CheckRecord, iso_ms, parse_iso

STATE_PARTITION = "#state"
TRANSITION_PREFIX = "#transition#"
BATCH_WRITE_SIZE = 25
_MAX_SAME_MILLISECOND = 20
_MAX_UNPROCESSED_ROUNDS = 8
_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()
_BOTO_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 4})


class DuplicateCheckError(Exception):
    """A check with this exact key exists already (a redelivered scheduled run)."""


class UnprocessedItemsError(Exception):
    """DynamoDB kept refusing some batch items; their keys are in ``keys``."""

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__(f"{len(keys)} items not written after retries")
        self.keys = keys


class InvalidCursorError(ValueError):
    """The pagination cursor was not produced by this API for this destination."""


class CheckStore:
    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table_name = table_name
        # boto3 reads AWS_ENDPOINT_URL itself, so local stand-ins need no code here.
        self._client = client or boto3.client("dynamodb", config=_BOTO_CONFIG)

    # -- checks ---------------------------------------------------------------------------------------

    def put_check(self, record: CheckRecord) -> CheckRecord:
        """Store a new check and return it as stored. Two checks of a destination in the same
        millisecond get distinct keys: the later one moves on by 1 ms."""
        for _ in range(_MAX_SAME_MILLISECOND):
            try:
                self._client.put_item(
                    TableName=self.table_name,
                    Item=_to_item(record.to_dict()),
                    ConditionExpression="attribute_not_exists(pinged_at)",
                )
                return record
            except ClientError as exc:
                if _error_code(exc) != "ConditionalCheckFailedException":
                    raise
                record = _one_ms_later(record)
        raise RuntimeError("too many checks of one destination in the same millisecond")

    def put_checks(self, records: Sequence[CheckRecord]) -> None:
        """Write many checks with BatchWriteItem, retrying unprocessed items with backoff.

        Used for scheduled checks, whose keys derive from the scheduled time: writing one again writes the
        same item, so a retried or redelivered run stays at one record per destination and time.
        """
        requests = [{"PutRequest": {"Item": _to_item(r.to_dict())}} for r in records]
        for start in range(0, len(requests), BATCH_WRITE_SIZE):
            pending = requests[start : start + BATCH_WRITE_SIZE]
            for round_number in range(_MAX_UNPROCESSED_ROUNDS):
                answer = self._client.batch_write_item(RequestItems={self.table_name: pending})
                pending = answer.get("UnprocessedItems", {}).get(self.table_name, [])
                if not pending:
                    break
                time.sleep(min(0.05 * 2**round_number, 1.0) * random.uniform(0.5, 1.0))
            else:
                keys = [
                    (
                        p["PutRequest"]["Item"]["destination_id"]["S"],
                        p["PutRequest"]["Item"]["pinged_at"]["S"],
                    )
                    for p in pending
                ]
                raise UnprocessedItemsError(keys)

    def existing_check_keys(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (destination_id, pinged_at) checks exist already."""
        wanted = [{"destination_id": {"S": d}, "pinged_at": {"S": p}} for d, p in keys]
        found: set[tuple[str, str]] = set()
        for start in range(0, len(wanted), 100):
            request: dict[str, Any] = {
                self.table_name: {
                    "Keys": wanted[start : start + 100],
                    "ProjectionExpression": "destination_id, pinged_at",
                    "ConsistentRead": True,
                }
            }
            while request:
                answer = self._client.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self.table_name, []):
                    found.add((item["destination_id"]["S"], item["pinged_at"]["S"]))
                request = answer.get("UnprocessedKeys") or {}
        return found

    def history(
        self, destination_id: str, *, limit: int, cursor: str | None = None
    ) -> tuple[list[CheckRecord], str | None]:
        """A destination's checks, newest first, and the cursor of the next page (None on the last)."""
        items, next_cursor = self._page(destination_id, limit, cursor)
        return [CheckRecord.from_dict(item) for item in items], next_cursor

    # -- destination states ---------------------------------------------------------------------------

    def load_states(self) -> dict[str, DestinationState]:
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
                state = _state_from_item(_from_item(item))
                states[state.destination_id] = state
            if "LastEvaluatedKey" not in answer:
                return states
            query["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def get_state(self, destination_id: str) -> DestinationState:
        answer = self._client.get_item(
            TableName=self.table_name,
            Key={"destination_id": {"S": STATE_PARTITION}, "pinged_at": {"S": destination_id}},
            ConsistentRead=True,
        )
        item = answer.get("Item")
        return _state_from_item(_from_item(item)) if item else DestinationState(destination_id)

    def save_state(self, state: DestinationState, *, previous_check_at: str | None) -> bool:
        """Write the health part of a state if nobody else did since it was read (optimistic locking).

        Returns False on a conflict; the mute is never overwritten (it is set separately).
        """
        values: dict[str, Any] = {
            ":health": state.health,
            ":since": state.health_since,
            ":reason": state.health_reason,
            ":recent": [str(v) for v in state.recent],
            ":check": _without_none(state.last_check.to_dict()) if state.last_check else None,
            ":at": state.last_check.pinged_at if state.last_check else None,
        }
        condition = "attribute_not_exists(last_checked_at)"
        if previous_check_at is not None:
            values[":previous"] = previous_check_at
            condition = "last_checked_at = :previous"
        update = "SET health = :health, health_since = :since, health_reason = :reason, recent = :recent, "
        update += "last_check = :check, last_checked_at = :at"
        if state.removed_at is None:
            update += " REMOVE removed_at"
        else:
            values[":removed"] = state.removed_at
            update = update.replace("SET ", "SET removed_at = :removed, ")
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key={"destination_id": {"S": STATE_PARTITION}, "pinged_at": {"S": state.destination_id}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues={k: _SERIALIZER.serialize(v) for k, v in values.items()},
            )
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def set_mute(self, destination_id: str, until: str | None) -> DestinationState:
        key = {"destination_id": {"S": STATE_PARTITION}, "pinged_at": {"S": destination_id}}
        if until is None:
            self._client.update_item(
                TableName=self.table_name, Key=key, UpdateExpression="REMOVE muted_until"
            )
        else:
            self._client.update_item(
                TableName=self.table_name,
                Key=key,
                UpdateExpression="SET muted_until = :until",
                ExpressionAttributeValues={":until": {"S": until}},
            )
        return self.get_state(destination_id)

    # -- transitions ----------------------------------------------------------------------------------

    def add_transition(self, transition: Transition, *, expires_at: int) -> None:
        item = transition.to_dict() | {
            "destination_id": TRANSITION_PREFIX + transition.destination_id,
            "pinged_at": transition.at,
            "expires_at": expires_at,
        }
        item.pop("at")
        self._client.put_item(TableName=self.table_name, Item=_to_item(item))

    def transitions(
        self, destination_id: str, *, limit: int, cursor: str | None = None
    ) -> tuple[list[Transition], str | None]:
        items, next_cursor = self._page(TRANSITION_PREFIX + destination_id, limit, cursor)
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

    # -- shared ---------------------------------------------------------------------------------------

    def _page(
        self, partition: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        query: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "destination_id = :d",
            "ExpressionAttributeValues": {":d": {"S": partition}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor:
            query["ExclusiveStartKey"] = {
                "destination_id": {"S": partition},
                "pinged_at": {"S": decode_cursor(cursor)},
            }
        answer = self._client.query(**query)
        last = answer.get("LastEvaluatedKey")
        return [_from_item(item) for item in answer.get("Items", [])], encode_cursor(
            last["pinged_at"]["S"]
        ) if last else None


def encode_cursor(pinged_at: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": pinged_at}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))["after"]
        parse_iso(value)
    except (ValueError, KeyError, TypeError, UnicodeError, binascii.Error):
        raise InvalidCursorError("cursor is not valid; use the next_cursor of a previous page") from None
    return str(value)


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
    )


def _one_ms_later(record: CheckRecord) -> CheckRecord:
    later = iso_ms(parse_iso(record.pinged_at) + timedelta(milliseconds=1))
    return CheckRecord.from_dict(record.to_dict() | {"pinged_at": later})


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _SERIALIZER.serialize(value) for name, value in _without_none(values).items()}


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
