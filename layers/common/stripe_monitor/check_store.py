"""The only module that touches DynamoDB: check records, the latest check per destination, and history.

Item layout in the results table (partition ``destination_id``, sort ``pinged_at``):
- a check:            destination_id = ``ed_...``,        pinged_at = ISO time of the check
- latest per dest.:   destination_id = ``#latest``,        pinged_at = ``ed_...`` (a copy of its newest check)
``#`` cannot start a destination id, so the two never mix, and one Query lists every destination seen.
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

from stripe_monitor.records import CheckRecord, iso_ms, parse_iso

LATEST_PARTITION = "#latest"
_MAX_SAME_MILLISECOND = 20
_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()
_BOTO_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 4})


class DuplicateCheckError(Exception):
    """A check with this exact key exists already (a redelivered scheduled run)."""


class InvalidCursorError(ValueError):
    """The pagination cursor was not produced by this API for this destination."""


class CheckStore:
    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table_name = table_name
        # boto3 reads AWS_ENDPOINT_URL itself, so local stand-ins need no code here.
        self._client = client or boto3.client("dynamodb", config=_BOTO_CONFIG)

    def put_check(self, record: CheckRecord, *, exact_key: bool = False) -> CheckRecord:
        """Store a new check and return it as stored.

        Two checks of a destination in the same millisecond get distinct keys (the later one moves on by
        1 ms). With ``exact_key`` (scheduled runs, whose key derives from the scheduled time) an existing
        item means the run was redelivered: ``DuplicateCheckError``, nothing written.
        """
        for _ in range(_MAX_SAME_MILLISECOND):
            try:
                self._client.put_item(
                    TableName=self.table_name,
                    Item=_to_item(record.to_dict()),
                    ConditionExpression="attribute_not_exists(pinged_at)",
                )
                break
            except ClientError as exc:
                if _error_code(exc) != "ConditionalCheckFailedException":
                    raise
                if exact_key:
                    raise DuplicateCheckError(f"{record.destination_id} @ {record.pinged_at}") from None
                record = _one_ms_later(record)
        else:
            raise RuntimeError("too many checks of one destination in the same millisecond")
        self._update_latest(record)
        return record

    def _update_latest(self, record: CheckRecord) -> None:
        item = record.to_dict() | {"destination_id": LATEST_PARTITION, "pinged_at": record.destination_id}
        item["checked_at"] = record.pinged_at
        item.pop("expires_at")  # the latest view outlives the retention of the checks themselves
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item=_to_item(item),
                # An older check finishing late never replaces a newer one.
                ConditionExpression="attribute_not_exists(checked_at) OR checked_at < :at",
                ExpressionAttributeValues={":at": {"S": record.pinged_at}},
            )
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise

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
        query: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "destination_id = :d",
            "ExpressionAttributeValues": {":d": {"S": destination_id}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor:
            query["ExclusiveStartKey"] = {
                "destination_id": {"S": destination_id},
                "pinged_at": {"S": decode_cursor(cursor)},
            }
        answer = self._client.query(**query)
        records = [CheckRecord.from_dict(_from_item(item)) for item in answer.get("Items", [])]
        last = answer.get("LastEvaluatedKey")
        return records, encode_cursor(last["pinged_at"]["S"]) if last else None

    def latest_checks(self) -> list[dict[str, Any]]:
        """The newest check of every destination seen, ordered by destination id."""
        query: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "destination_id = :d",
            "ExpressionAttributeValues": {":d": {"S": LATEST_PARTITION}},
        }
        latest: list[dict[str, Any]] = []
        while True:
            answer = self._client.query(**query)
            for item in answer.get("Items", []):
                values = _from_item(item)
                destination_id = values["pinged_at"]
                values["pinged_at"] = values.pop("checked_at")
                values["destination_id"] = destination_id
                latest.append(CheckRecord.from_dict(values).to_dict())
            if "LastEvaluatedKey" not in answer:
                return latest
            query["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


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


def _one_ms_later(record: CheckRecord) -> CheckRecord:
    later = iso_ms(parse_iso(record.pinged_at) + timedelta(milliseconds=1))
    return CheckRecord.from_dict(record.to_dict() | {"pinged_at": later})


def _to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _SERIALIZER.serialize(value) for name, value in values.items() if value is not None}


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
