"""Receipt items: each ping event that arrived (partition ``#receipt#ed_...``, sort the event id); repeated
arrivals only count."""

from collections.abc import Iterable
from typing import Any

from stripe_monitor.store.dynamo import RECEIPT_PREFIX, batch_get, from_item, key, serialize


class ReceiptItems:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self.table_name = table_name

    def record(self, receipt: dict[str, Any]) -> dict[str, Any]:
        """Store one arrival of an event; repeats only count. Returns the receipt as stored: the first
        arrival's time and channel, and the number of arrivals so far."""
        first = {
            k: v for k, v in receipt.items() if k not in ("destination_id", "event_id") and v is not None
        }
        sets = ", ".join(f"{name} = if_not_exists({name}, :{name})" for name in first)
        answer = self._client.update_item(
            TableName=self.table_name,
            Key=_receipt_key(receipt["destination_id"], receipt["event_id"]),
            UpdateExpression=f"SET {sets} ADD deliveries :one",
            ExpressionAttributeValues={f":{k}": serialize(v) for k, v in first.items()}
            | {":one": {"N": "1"}},
            ReturnValues="ALL_NEW",
        )
        return _receipt_from_item(from_item(answer["Attributes"]))

    def find(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Receipts by (destination_id, event_id), for checks just written."""
        found = batch_get(
            self._client, self.table_name, [_receipt_key(d, e) for d, e in keys], ConsistentRead=True
        )
        receipts = (_receipt_from_item(from_item(item)) for item in found)
        return {(r["destination_id"], r["event_id"]): r for r in receipts}

    def mark_matched(self, destination_id: str, event_id: str, pinged_at: str) -> None:
        self._client.update_item(
            TableName=self.table_name,
            Key=_receipt_key(destination_id, event_id),
            UpdateExpression="SET matched_check = :at REMOVE unsolicited",
            ExpressionAttributeValues={":at": {"S": pinged_at}},
        )


def _receipt_key(destination_id: str, event_id: str) -> dict[str, Any]:
    return key(RECEIPT_PREFIX + destination_id, event_id)


def _receipt_from_item(item: dict[str, Any]) -> dict[str, Any]:
    receipt = dict(item)
    receipt["destination_id"] = item["destination_id"].removeprefix(RECEIPT_PREFIX)
    receipt["event_id"] = item["pinged_at"]
    receipt.pop("pinged_at")
    receipt["deliveries"] = int(item.get("deliveries", 0))
    return receipt
