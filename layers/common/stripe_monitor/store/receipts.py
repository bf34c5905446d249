"""Receipt items: one per ping event (partition ``#receipt#ed_...``, sort the event id), holding the checks
that carry the event and its arrivals.

A check adds itself to its event's item (``expect``), a receipt records an arrival on it (``record``); both
are single atomic updates that return the item, so whichever comes second sees the first: a receipt that
arrives before its check is stored still settles it, and a receipt finds every check of its event however
old (two API pings retried with one idempotency key carry the same event).
"""

from typing import Any

from botocore.exceptions import ClientError

from stripe_monitor.errors import InvalidInputError
from stripe_monitor.model.check import CheckRecord
from stripe_monitor.store.dynamo import RECEIPT_PREFIX, from_item, is_condition_failure, key, serialize


class ReceiptItems:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self.table_name = table_name

    def expect(self, check: CheckRecord) -> dict[str, Any] | None:
        """Add a check that waits for its event to the event's item; the event's first arrival if one came
        already (else None)."""
        if not (check.event_id and check.event_created):
            raise ValueError("only a check whose ping created an event waits for it")
        answer = self._client.update_item(
            TableName=self.table_name,
            Key=_receipt_key(check.destination_id, check.event_id),
            UpdateExpression="ADD checks :check SET event_created = if_not_exists(event_created, :created),"
            " expires_at = if_not_exists(expires_at, :expires)",
            ExpressionAttributeValues={
                ":check": {"SS": [check.pinged_at]},
                ":created": {"S": check.event_created},
                ":expires": {"N": str(check.expires_at)},
            },
            ReturnValues="ALL_NEW",
        )
        receipt = _receipt_from_item(from_item(answer["Attributes"]))
        return receipt if "received_at" in receipt else None

    def record(self, arrival: dict[str, Any], *, created_by: str) -> dict[str, Any]:
        """Store one arrival of an event; repeats only count. Returns the item as stored: the first
        arrival's time and channel, the number of arrivals and the checks of the event.

        Refused (400 ``invalid_received_at``) when the event was created after ``created_by``: a receipt
        cannot come before its event, beyond the clocks' skew."""
        first = {
            k: v for k, v in arrival.items() if k not in ("destination_id", "event_id") and v is not None
        }
        sets = ", ".join(f"{name} = if_not_exists({name}, :{name})" for name in first)
        try:
            answer = self._client.update_item(
                TableName=self.table_name,
                Key=_receipt_key(arrival["destination_id"], arrival["event_id"]),
                UpdateExpression=f"SET {sets} ADD deliveries :one",
                ConditionExpression="attribute_not_exists(event_created) OR event_created <= :created_by",
                ExpressionAttributeValues={f":{k}": serialize(v) for k, v in first.items()}
                | {":one": {"N": "1"}, ":created_by": {"S": created_by}},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise InvalidInputError(
                    "the receipt says the event arrived before Stripe created it", code="invalid_received_at"
                ) from None
            raise
        return _receipt_from_item(from_item(answer["Attributes"]))


def _receipt_key(destination_id: str, event_id: str) -> dict[str, Any]:
    return key(RECEIPT_PREFIX + destination_id, event_id)


def _receipt_from_item(item: dict[str, Any]) -> dict[str, Any]:
    receipt = dict(item)
    receipt["destination_id"] = item["destination_id"].removeprefix(RECEIPT_PREFIX)
    receipt["event_id"] = item["pinged_at"]
    receipt.pop("pinged_at")
    receipt["deliveries"] = int(item.get("deliveries", 0))
    receipt["checks"] = sorted(item.get("checks", ()))
    return receipt
