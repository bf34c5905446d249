"""What every item kind shares: the DynamoDB client, (de)serialisation, keys and one page of a query."""

from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError

from stripe_monitor.store.cursor import decode_cursor, encode_cursor

STATE_PARTITION = "#state"
TRANSITION_PREFIX = "#transition#"
RECEIPT_PREFIX = "#receipt#"
IDEMPOTENCY_PREFIX = "#idempotency#"
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


def dynamodb_client() -> Any:
    # boto3 reads AWS_ENDPOINT_URL itself, so local stand-ins need no code here.
    return boto3.client("dynamodb", config=_BOTO_CONFIG)


def key(partition: str, sort: str) -> dict[str, Any]:
    return {"destination_id": {"S": partition}, "pinged_at": {"S": sort}}


def serialize(value: Any) -> dict[str, Any]:
    serialized: dict[str, Any] = _SERIALIZER.serialize(value)
    return serialized


def without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {name: serialize(value) for name, value in without_none(values).items()}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_condition_failure(exc: ClientError) -> bool:
    return error_code(exc) == "ConditionalCheckFailedException"


def batch_get(
    client: Any, table_name: str, keys: list[dict[str, Any]], **options: Any
) -> list[dict[str, Any]]:
    """Every item of ``keys`` that exists, 100 keys a request, unprocessed keys asked again."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(keys), 100):
        request: dict[str, Any] = {table_name: {"Keys": keys[start : start + 100], **options}}
        while request:
            answer = client.batch_get_item(RequestItems=request)
            found += answer.get("Responses", {}).get(table_name, [])
            request = answer.get("UnprocessedKeys") or {}
    return found


def newest_first(
    client: Any, table_name: str, partition: str, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a partition, newest first, and the cursor of the next page (None on the last)."""
    query: dict[str, Any] = {
        "TableName": table_name,
        "KeyConditionExpression": "destination_id = :d",
        "ExpressionAttributeValues": {":d": {"S": partition}},
        "ScanIndexForward": False,
        "Limit": limit,
    }
    if cursor:
        query["ExclusiveStartKey"] = key(partition, decode_cursor(cursor))
    answer = client.query(**query)
    last = answer.get("LastEvaluatedKey")
    items = [from_item(item) for item in answer.get("Items", [])]
    return items, encode_cursor(last["pinged_at"]["S"]) if last else None
