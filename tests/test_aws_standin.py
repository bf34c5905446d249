"""The AWS stand-in keeps DynamoDB's guarantee that each request applies to an item atomically and answers
with the item as that request left it: the monitor relies on it (a check joining its event's item while a
receipt records an arrival on it; a delivery counted once from ``ALL_OLD``)."""

import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tools.standins.aws import AwsStandIn

WRITERS = 12
ITEMS = [f"item-{n}" for n in range(20)]


@pytest.fixture
def table(aws: AwsStandIn) -> str:
    name = f"atomic-{uuid.uuid4().hex[:8]}"
    aws.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


@pytest.fixture
def all_at_once(aws: AwsStandIn) -> Iterator[Callable[[Callable[[Any, str], Any], str], list[Any]]]:
    """Run ``request(client, item)`` from every writer at the same moment; their answers."""
    clients = [aws.client("dynamodb") for _ in range(WRITERS)]

    def run(request: Callable[[Any, str], Any], item: str) -> list[Any]:
        start = threading.Barrier(WRITERS)

        def one(client: Any) -> Any:
            start.wait()
            return request(client, item)

        return list(pool.map(one, clients))

    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # moto's server threads (in this process) switch often: races show at once
    try:
        with ThreadPoolExecutor(WRITERS) as pool:
            yield run
    finally:
        sys.setswitchinterval(switch_interval)


def test_concurrent_updates_of_a_new_item_all_land_each_answered_with_its_own_result(table, all_at_once):
    def add_one(client: Any, item: str) -> int:
        answer = client.update_item(
            TableName=table,
            Key={"id": {"S": item}},
            UpdateExpression="ADD n :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="ALL_NEW",
        )
        return int(answer["Attributes"]["n"]["N"])

    counts = {item: sorted(all_at_once(add_one, item)) for item in ITEMS}

    assert counts == {item: list(range(1, WRITERS + 1)) for item in ITEMS}


def test_of_concurrent_updates_of_one_item_exactly_one_sees_the_old_value(aws, table, all_at_once):
    def deliver(client: Any, item: str) -> str:
        answer = client.update_item(
            TableName=table,
            Key={"id": {"S": item}},
            UpdateExpression="SET delivery = :delivered",
            ExpressionAttributeValues={":delivered": {"S": "delivered"}},
            ReturnValues="ALL_OLD",
        )
        return str(answer["Attributes"]["delivery"]["S"])

    for item in ITEMS:
        aws.client("dynamodb").put_item(
            TableName=table, Item={"id": {"S": item}, "delivery": {"S": "pending"}}
        )
    seen_pending = {item: all_at_once(deliver, item).count("pending") for item in ITEMS}

    assert seen_pending == dict.fromkeys(ITEMS, 1)
