"""The only module that touches DynamoDB: checks, destination states, transitions and mutes.

Item kinds in the results table (partition ``destination_id``, sort ``pinged_at``):
- a check:        ``ed_...``                  / ISO time of the check
- a state:        ``#state``                  / ``ed_...`` (health, recent verdicts, last check, mute)
- a transition:   ``#transition#ed_...``      / ISO time of the change
- a receipt:      ``#receipt#ed_...``         / event id (proof that a ping event arrived)
A receipt finds its check by querying the destination's newest checks with a consistent read (not an
eventually consistent index), and a check finds its receipt by key, so whichever is written second sees
the first: a receipt that arrives before its check is stored is still matched.
``#`` cannot start a destination id, so the kinds never mix, and one Query lists every destination seen.
"""

import base64
import binascii
import json
from collections.abc import Iterable
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
RECEIPT_PREFIX = "#receipt#"
RECENT_CHECKS_SEARCHED = 50  # a receipt is matched among the destination's newest checks
_MAX_SAME_MILLISECOND = 20
_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()
# Without botocore's client-side parameter validation (about 0.3 ms of CPU per request, docs/performance.md):
# the requests are built here, and DynamoDB validates them anyway (a ValidationException, like any error).
_BOTO_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "max_attempts": 4},
    parameter_validation=False,
)


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
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return record
            except ClientError as exc:
                if _error_code(exc) != "ConditionalCheckFailedException":
                    raise
                if exc.response.get("Item") == _to_item(record.to_dict()):
                    return record  # an earlier attempt of this same write succeeded; its answer was lost
                record = _one_ms_later(record)
        raise RuntimeError("too many checks of one destination in the same millisecond")

    def put_scheduled_check(self, record: CheckRecord) -> None:
        """Store a scheduled check. Its key derives from the scheduled time, so writing it again (a retried
        or redelivered run) writes the same check: one record per destination and time."""
        self._client.put_item(TableName=self.table_name, Item=_to_item(record.to_dict()))

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

    def get_check(self, destination_id: str, pinged_at: str) -> CheckRecord | None:
        answer = self._client.get_item(
            TableName=self.table_name,
            Key={"destination_id": {"S": destination_id}, "pinged_at": {"S": pinged_at}},
            ConsistentRead=True,
        )
        item = answer.get("Item")
        return CheckRecord.from_dict(_from_item(item)) if item else None

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

    def save_state(self, state: DestinationState) -> DestinationState | None:
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
            values |= {":check": _without_none(state.last_check.to_dict()), ":at": state.last_check.pinged_at}
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
                Key={"destination_id": {"S": STATE_PARTITION}, "pinged_at": {"S": state.destination_id}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues={k: _SERIALIZER.serialize(v) for k, v in values.items()},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise
        return _state_from_item(_from_item(answer["Attributes"]))

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

    def note_receipt(self, destination_id: str, channel: str, at: str) -> None:
        self._client.update_item(
            TableName=self.table_name,
            Key={"destination_id": {"S": STATE_PARTITION}, "pinged_at": {"S": destination_id}},
            UpdateExpression="SET receipt_channel = :channel, last_receipt_at = :at",
            ExpressionAttributeValues={":channel": {"S": channel}, ":at": {"S": at}},
        )

    # -- receipts and deliveries ----------------------------------------------------------------------

    def record_receipt(self, receipt: dict[str, Any]) -> dict[str, Any]:
        """Store one arrival of an event; repeats only count. Returns the receipt as stored: the first
        arrival's time and channel, and the number of arrivals so far."""
        first = {
            k: v for k, v in receipt.items() if k not in ("destination_id", "event_id") and v is not None
        }
        sets = ", ".join(f"{name} = if_not_exists({name}, :{name})" for name in first)
        answer = self._client.update_item(
            TableName=self.table_name,
            Key=self._receipt_key(receipt["destination_id"], receipt["event_id"]),
            UpdateExpression=f"SET {sets} ADD deliveries :one",
            ExpressionAttributeValues={f":{k}": _SERIALIZER.serialize(v) for k, v in first.items()}
            | {":one": {"N": "1"}},
            ReturnValues="ALL_NEW",
        )
        return _receipt_from_item(_from_item(answer["Attributes"]))

    def receipts(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Receipts by (destination_id, event_id), for checks just written."""
        wanted = [self._receipt_key(d, e) for d, e in keys]
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for start in range(0, len(wanted), 100):
            request: dict[str, Any] = {
                self.table_name: {"Keys": wanted[start : start + 100], "ConsistentRead": True}
            }
            while request:
                answer = self._client.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self.table_name, []):
                    receipt = _receipt_from_item(_from_item(item))
                    found[(receipt["destination_id"], receipt["event_id"])] = receipt
                request = answer.get("UnprocessedKeys") or {}
        return found

    def mark_receipt_matched(self, destination_id: str, event_id: str, pinged_at: str) -> None:
        self._client.update_item(
            TableName=self.table_name,
            Key=self._receipt_key(destination_id, event_id),
            UpdateExpression="SET matched_check = :at REMOVE unsolicited",
            ExpressionAttributeValues={":at": {"S": pinged_at}},
        )

    def find_check_by_event(self, destination_id: str, event_id: str) -> CheckRecord | None:
        answer = self._client.query(
            TableName=self.table_name,
            KeyConditionExpression="destination_id = :d",
            FilterExpression="event_id = :e",
            ExpressionAttributeValues={":d": {"S": destination_id}, ":e": {"S": event_id}},
            ScanIndexForward=False,
            Limit=RECENT_CHECKS_SEARCHED,
            ConsistentRead=True,
        )
        items = answer.get("Items", [])
        return CheckRecord.from_dict(_from_item(items[0])) if items else None

    def mark_delivered(self, check: CheckRecord, delivery: dict[str, Any]) -> str | None:
        """Set the check's delivery fields (idempotent: always from the first arrival); returns the
        delivery status it had before."""
        answer = self._client.update_item(
            TableName=self.table_name,
            Key={"destination_id": {"S": check.destination_id}, "pinged_at": {"S": check.pinged_at}},
            UpdateExpression="SET " + ", ".join(f"{name} = :{name}" for name in delivery),
            ConditionExpression="attribute_exists(pinged_at)",
            ExpressionAttributeValues={f":{k}": _SERIALIZER.serialize(v) for k, v in delivery.items()},
            ReturnValues="UPDATED_OLD",
        )
        old = answer.get("Attributes", {}).get("delivery_status")
        return str(old["S"]) if old else None

    def pending_checks(self, destination_id: str, *, not_before: str, before: str) -> list[CheckRecord]:
        """The destination's checks between the two times that still wait for their receipt."""
        answer = self._client.query(
            TableName=self.table_name,
            KeyConditionExpression="destination_id = :d AND pinged_at BETWEEN :from AND :to",
            FilterExpression="delivery_status = :pending",
            ExpressionAttributeValues={
                ":d": {"S": destination_id},
                ":from": {"S": not_before},
                ":to": {"S": before},
                ":pending": {"S": "pending"},
            },
            ConsistentRead=True,
        )
        return [CheckRecord.from_dict(_from_item(item)) for item in answer.get("Items", [])]

    def mark_lost(self, check: CheckRecord) -> bool:
        """pending -> lost; False when a receipt came first."""
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key={"destination_id": {"S": check.destination_id}, "pinged_at": {"S": check.pinged_at}},
                UpdateExpression="SET delivery_status = :lost",
                ConditionExpression="delivery_status = :pending",
                ExpressionAttributeValues={":lost": {"S": "lost"}, ":pending": {"S": "pending"}},
            )
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _receipt_key(self, destination_id: str, event_id: str) -> dict[str, Any]:
        return {"destination_id": {"S": RECEIPT_PREFIX + destination_id}, "pinged_at": {"S": event_id}}

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
        receipt_channel=item.get("receipt_channel"),
        last_receipt_at=item.get("last_receipt_at"),
        version=int(item.get("version", 0)),
    )


def _receipt_from_item(item: dict[str, Any]) -> dict[str, Any]:
    receipt = dict(item)
    receipt["destination_id"] = item["destination_id"].removeprefix(RECEIPT_PREFIX)
    receipt["event_id"] = item["pinged_at"]
    receipt.pop("pinged_at")
    receipt["deliveries"] = int(item.get("deliveries", 0))
    return receipt


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
