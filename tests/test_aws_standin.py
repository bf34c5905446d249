"""The AWS stand-in keeps DynamoDB's guarantee that each request applies to an item atomically: the monitor
relies on it (a check joining its event's item while a receipt records an arrival on it)."""

import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from tools.standins.aws import AwsStandIn

WRITERS = 16


def test_concurrent_updates_of_one_new_item_all_land(aws: AwsStandIn) -> None:
    table = f"atomic-{uuid.uuid4().hex[:8]}"
    dynamodb = aws.client("dynamodb")
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    clients = [aws.client("dynamodb") for _ in range(WRITERS)]
    items = [f"item-{n}" for n in range(20)]

    def add(writer: int, item: str, start: threading.Barrier) -> None:
        start.wait()
        clients[writer].update_item(
            TableName=table,
            Key={"id": {"S": item}},
            UpdateExpression="ADD writers :me",
            ExpressionAttributeValues={":me": {"SS": [str(writer)]}},
        )

    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # moto's server threads switch often: its races show at once
    try:
        with ThreadPoolExecutor(WRITERS) as pool:
            for item in items:  # all writers at once on an item that does not exist yet
                start = threading.Barrier(WRITERS)
                list(pool.map(add, range(WRITERS), [item] * WRITERS, [start] * WRITERS))
    finally:
        sys.setswitchinterval(switch_interval)

    found = {
        item: len(dynamodb.get_item(TableName=table, Key={"id": {"S": item}})["Item"]["writers"]["SS"])
        for item in items
    }
    assert found == dict.fromkeys(items, WRITERS)
