"""Check items: one per attempted ping (partition the destination id, sort the check's time), with the
delivery fields that receipts set (a check and its receipt meet on the event's item: ``receipts.py``)."""

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from botocore.exceptions import ClientError

from stripe_monitor.model.check import CheckRecord, DeliveryStatus
from stripe_monitor.model.times import iso_ms, parse_iso
from stripe_monitor.store.dynamo import (
    batch_get,
    from_item,
    is_condition_failure,
    key,
    newest_first,
    serialize,
    to_item,
)

_MAX_SAME_MILLISECOND = 20


class CheckItems:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self.table_name = table_name

    def put_check(self, record: CheckRecord) -> CheckRecord:
        """Store a new check and return it as stored. Two checks of a destination in the same
        millisecond get distinct keys: the later one moves on by 1 ms."""
        for _ in range(_MAX_SAME_MILLISECOND):
            try:
                self._client.put_item(
                    TableName=self.table_name,
                    Item=to_item(record.to_dict()),
                    ConditionExpression="attribute_not_exists(pinged_at)",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return record
            except ClientError as exc:
                if not is_condition_failure(exc):
                    raise
                if exc.response.get("Item") == to_item(record.to_dict()):
                    return record  # an earlier attempt of this same write succeeded; its answer was lost
                record = _one_ms_later(record)
        raise RuntimeError("too many checks of one destination in the same millisecond")

    def put_scheduled_check(self, record: CheckRecord) -> None:
        """Store a scheduled check. Its key derives from the scheduled time, so writing it again (a retried
        or redelivered run) writes the same check: one record per destination and time."""
        self._client.put_item(TableName=self.table_name, Item=to_item(record.to_dict()))

    def existing_keys(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (destination_id, pinged_at) checks exist already."""
        found = batch_get(
            self._client,
            self.table_name,
            [key(d, p) for d, p in keys],
            ProjectionExpression="destination_id, pinged_at",
            ConsistentRead=True,
        )
        return {(item["destination_id"]["S"], item["pinged_at"]["S"]) for item in found}

    def get(self, destination_id: str, pinged_at: str) -> CheckRecord | None:
        answer = self._client.get_item(
            TableName=self.table_name, Key=key(destination_id, pinged_at), ConsistentRead=True
        )
        item = answer.get("Item")
        return CheckRecord.from_dict(from_item(item)) if item else None

    def history(
        self, destination_id: str, *, limit: int, cursor: str | None = None
    ) -> tuple[list[CheckRecord], str | None]:
        """A destination's checks, newest first, and the cursor of the next page (None on the last)."""
        items, next_cursor = newest_first(self._client, self.table_name, destination_id, limit, cursor)
        return [CheckRecord.from_dict(item) for item in items], next_cursor

    # -- delivery ---------------------------------------------------------------------------------------

    def mark_delivered(
        self, destination_id: str, pinged_at: str, delivery: dict[str, Any]
    ) -> tuple[bool, str | None]:
        """Set a check's delivery fields (idempotent: always from the first arrival). Returns whether the
        check is there (retention may have removed it) and the delivery status it had before."""
        try:
            answer = self._client.update_item(
                TableName=self.table_name,
                Key=key(destination_id, pinged_at),
                UpdateExpression="SET " + ", ".join(f"{name} = :{name}" for name in delivery),
                ConditionExpression="attribute_exists(pinged_at)",
                ExpressionAttributeValues={f":{k}": serialize(v) for k, v in delivery.items()},
                # ALL_OLD, not UPDATED_OLD, which some DynamoDB implementations leave without the
                # attributes whose value does not change: a repeated arrival would look like the first.
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False, None
            raise
        old = answer.get("Attributes", {}).get("delivery_status")
        return True, str(old["S"]) if old else None

    def since(self, destination_id: str, not_before: str, *, most: int = 500) -> list[CheckRecord]:
        """The destination's newest checks from ``not_before`` on, at most ``most`` (newest first)."""
        query: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "destination_id = :d AND pinged_at >= :from",
            "ExpressionAttributeValues": {":d": {"S": destination_id}, ":from": {"S": not_before}},
            "ScanIndexForward": False,
            "Limit": 100,
        }
        found: list[CheckRecord] = []
        while len(found) < most:
            answer = self._client.query(**query)
            found += [CheckRecord.from_dict(from_item(item)) for item in answer.get("Items", [])]
            if "LastEvaluatedKey" not in answer:
                break
            query["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        return found[:most]

    def pending(self, destination_id: str, *, not_before: str, before: str) -> list[CheckRecord]:
        """The destination's checks between the two times that still wait for their receipt."""
        answer = self._client.query(
            TableName=self.table_name,
            KeyConditionExpression="destination_id = :d AND pinged_at BETWEEN :from AND :to",
            FilterExpression="delivery_status = :pending",
            ExpressionAttributeValues={
                ":d": {"S": destination_id},
                ":from": {"S": not_before},
                ":to": {"S": before},
                ":pending": {"S": DeliveryStatus.PENDING},
            },
            ConsistentRead=True,
        )
        return [CheckRecord.from_dict(from_item(item)) for item in answer.get("Items", [])]

    def mark_lost(self, check: CheckRecord) -> bool:
        """pending -> lost; False when a receipt came first."""
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=key(check.destination_id, check.pinged_at),
                UpdateExpression="SET delivery_status = :lost",
                ConditionExpression="delivery_status = :pending",
                ExpressionAttributeValues={
                    ":lost": {"S": DeliveryStatus.LOST},
                    ":pending": {"S": DeliveryStatus.PENDING},
                },
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True


def _one_ms_later(record: CheckRecord) -> CheckRecord:
    later = iso_ms(parse_iso(record.pinged_at) + timedelta(milliseconds=1))
    return CheckRecord.from_dict(record.to_dict() | {"pinged_at": later})
