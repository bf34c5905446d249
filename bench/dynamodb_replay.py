"""DynamoDB's request units of recorded requests, by replaying them one at a time on a fresh table.

The fault proxy (``tools/standins/aws_faults.py``) records every request the functions send, in the order
it received them. Replayed in that order against an empty copy of the table (moto's server), each request
meets the table as it stood, and the items it reads or writes are read whole beside it (``GetItem``, or the
same key range for a ``Query``), so the units follow DynamoDB's rules (``bench/usage.py``):

- a write: the larger of the item before and after, per started KB; a failed conditional write the item as
  it stands (at least 1); a delete the item deleted; ``BatchWriteItem`` item by item; transactions twice;
- a read: per started 4 KB of the whole items read (a projection does not make them smaller), half for an
  eventually consistent read; ``BatchGetItem`` item by item, ``Query`` on the sum of the items it read (its
  ``ScannedCount``: a filter does not make them fewer); an item not found costs the minimum.

Replaying after the measurement keeps the extra reads out of the measured durations.
"""

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import urllib3

from bench.usage import ITEM_STORAGE_OVERHEAD_BYTES, item_size, read_units, write_units

PREFIX = "DynamoDB_20120810."
_PLACEHOLDER = re.compile(r"[#:][A-Za-z0-9_]+")
_AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, "
    "SignedHeaders=host;x-amz-date;x-amz-target, Signature=" + "0" * 64
)


@dataclass(frozen=True)
class Units:
    read: Decimal = Decimal(0)
    write: int = 0

    def __add__(self, other: "Units") -> "Units":
        return Units(self.read + other.read, self.write + other.write)


@dataclass(frozen=True)
class TableSize:
    items: int
    bytes: int  # item sizes plus DynamoDB's 100 bytes of overhead per item (what storage bills)


class Replayer:
    """Replays recorded DynamoDB requests on moto's server at ``endpoint`` (a table of the same name and
    key schema must exist there, empty)."""

    def __init__(self, endpoint: str, key_names: Iterable[str]) -> None:
        self.endpoint = endpoint
        self.key_names = tuple(key_names)
        self._http = urllib3.PoolManager()

    def send(self, operation: str, body: dict[str, Any] | bytes) -> tuple[int, dict[str, Any]]:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        answer = self._http.request(
            "POST",
            self.endpoint,
            body=payload,
            headers={
                "X-Amz-Target": PREFIX + operation,
                "Content-Type": "application/x-amz-json-1.0",
                "Authorization": _AUTHORIZATION,
                "X-Amz-Date": "20260101T000000Z",
            },
            retries=False,
        )
        parsed: dict[str, Any] = json.loads(answer.data or b"{}")
        return answer.status, parsed

    # -- what the replayed requests consume ----------------------------------------------------------

    def replay(self, operation: str, raw_body: bytes) -> Units:
        """Send one recorded request (``operation`` without the ``DynamoDB_20120810.`` prefix) and return
        the units it consumed."""
        body: dict[str, Any] = json.loads(raw_body or b"{}")
        handler = {
            "PutItem": self._put_item,
            "UpdateItem": self._update_item,
            "DeleteItem": self._delete_item,
            "BatchWriteItem": self._batch_write_item,
            "TransactWriteItems": self._transact_write_items,
            "GetItem": self._get_item,
            "BatchGetItem": self._batch_get_item,
            "TransactGetItems": self._transact_get_items,
            "Query": self._query,
            "Scan": self._scan,
        }.get(operation)
        if handler is None:  # DescribeTable and the like: no request units
            self.send(operation, raw_body)
            return Units()
        units: Units = handler(body, raw_body)
        return units

    def _write_one(self, operation: str, table: str, key: dict[str, Any], raw: bytes) -> Units:
        before = self.size(table, key)
        status, answer = self.send(operation, raw)
        if status == 200:
            return Units(write=write_units(before, self.size(table, key)))
        if _code(answer) == "ConditionalCheckFailedException":
            return Units(write=write_units(before, before))
        return Units()  # validation errors and the like consume nothing

    def _put_item(self, body: dict[str, Any], raw: bytes) -> Units:
        key = {name: body["Item"][name] for name in self.key_names}
        return self._write_one("PutItem", body["TableName"], key, raw)

    def _update_item(self, body: dict[str, Any], raw: bytes) -> Units:
        return self._write_one("UpdateItem", body["TableName"], body["Key"], raw)

    def _delete_item(self, body: dict[str, Any], raw: bytes) -> Units:
        return self._write_one("DeleteItem", body["TableName"], body["Key"], raw)

    def _batch_write_item(self, body: dict[str, Any], raw: bytes) -> Units:
        targets = []
        for table, requests in body["RequestItems"].items():
            for request in requests:
                if "PutRequest" in request:
                    item = request["PutRequest"]["Item"]
                    targets.append((table, {name: item[name] for name in self.key_names}))
                else:
                    targets.append((table, request["DeleteRequest"]["Key"]))
        before = [self.size(table, key) for table, key in targets]
        status, answer = self.send("BatchWriteItem", raw)
        if status != 200:
            return Units()
        unprocessed = json.dumps(answer.get("UnprocessedItems") or {})
        total = 0
        for (table, key), size in zip(targets, before, strict=True):
            if json.dumps(key, sort_keys=True) in unprocessed:
                continue
            total += write_units(size, self.size(table, key))
        return Units(write=total)

    def _transact_write_items(self, body: dict[str, Any], raw: bytes) -> Units:
        targets = []
        for action in body["TransactItems"]:
            [(kind, detail)] = action.items()
            item_key = (
                {name: detail["Item"][name] for name in self.key_names} if kind == "Put" else detail["Key"]
            )
            targets.append((detail["TableName"], item_key))
        before = [self.size(table, key) for table, key in targets]
        status, _ = self.send("TransactWriteItems", raw)
        after = [self.size(table, key) for table, key in targets] if status == 200 else before
        total = sum(
            write_units(b, a, transactional=True) for b, a in zip(before, after, strict=True)
        )  # a cancelled transaction consumes as much (ConditionCheck counted like a write)
        return Units(write=total)

    def _get_item(self, body: dict[str, Any], raw: bytes) -> Units:
        size = self.size(body["TableName"], body["Key"])
        status, _ = self.send("GetItem", raw)
        if status != 200:
            return Units()
        return Units(read=read_units(size, consistent=bool(body.get("ConsistentRead"))))

    def _batch_get_item(self, body: dict[str, Any], raw: bytes) -> Units:
        total = Decimal(0)
        for table, request in body["RequestItems"].items():
            consistent = bool(request.get("ConsistentRead"))
            for item_key in request["Keys"]:
                total += read_units(self.size(table, item_key), consistent=consistent)
        status, _ = self.send("BatchGetItem", raw)
        return Units(read=total) if status == 200 else Units()

    def _transact_get_items(self, body: dict[str, Any], raw: bytes) -> Units:
        total = Decimal(0)
        for action in body["TransactItems"]:
            detail = action["Get"]
            size = self.size(detail["TableName"], detail["Key"])
            total += read_units(size, consistent=True, transactional=True)
        status, _ = self.send("TransactGetItems", raw)
        return Units(read=total) if status == 200 else Units()

    def _query(self, body: dict[str, Any], raw: bytes) -> Units:
        return self._range_read("Query", body, raw, body.get("KeyConditionExpression", ""))

    def _scan(self, body: dict[str, Any], raw: bytes) -> Units:
        return self._range_read("Scan", body, raw, "")

    def _range_read(self, operation: str, body: dict[str, Any], raw: bytes, key_condition: str) -> Units:
        status, answer = self.send(operation, raw)
        if status != 200:
            return Units()
        scanned = int(answer.get("ScannedCount", answer.get("Count", 0)))
        size = 0
        if scanned:
            # The same items again, whole: no projection, filter or Select, and only as many as were read.
            whole = {
                k: v
                for k, v in body.items()
                if k
                in (
                    "TableName",
                    "IndexName",
                    "KeyConditionExpression",
                    "ExclusiveStartKey",
                    "ScanIndexForward",
                )
            }
            whole["ConsistentRead"] = True
            whole["Limit"] = scanned
            used = set(_PLACEHOLDER.findall(key_condition))
            for field in ("ExpressionAttributeNames", "ExpressionAttributeValues"):
                kept = {k: v for k, v in (body.get(field) or {}).items() if k in used}
                if kept:
                    whole[field] = kept
            _, items = self.send(operation, whole)
            size = sum(item_size(item) for item in items.get("Items", []))
        return Units(read=read_units(size, consistent=bool(body.get("ConsistentRead"))))

    # -- the table -----------------------------------------------------------------------------------

    def size(self, table: str, key: dict[str, Any]) -> int:
        """The whole item's size now (0 if there is none)."""
        status, answer = self.send("GetItem", {"TableName": table, "Key": key, "ConsistentRead": True})
        return item_size(answer.get("Item")) if status == 200 else 0

    def table_size(self, table: str) -> TableSize:
        items = total = 0
        request: dict[str, Any] = {"TableName": table}
        while True:
            _, answer = self.send("Scan", request)
            for item in answer.get("Items", []):
                items += 1
                total += item_size(item) + ITEM_STORAGE_OVERHEAD_BYTES
            if "LastEvaluatedKey" not in answer:
                return TableSize(items, total)
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def _code(answer: dict[str, Any]) -> str:
    return str(answer.get("__type", "")).rpartition("#")[2]
