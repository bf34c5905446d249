"""The floor: only the irreducible work of one API ping, one urllib3 POST to Stripe and one boto3 PutItem.

No validation, no retries, no secret (the key comes from the environment), no logs, no metrics, no traces:
no implementation of the job can do less, so ``ours / minimum`` is the price of everything else.
"""

import os
import time
import uuid
from typing import Any

import boto3
import urllib3

HTTP = urllib3.PoolManager()
DYNAMODB = boto3.client("dynamodb")
TABLE = os.environ["TABLE_NAME"]
BASE = os.environ["STRIPE_API_BASE"]
HEADERS = {
    "Authorization": f"Bearer {os.environ['STRIPE_API_KEY']}",
    "Stripe-Version": os.environ["STRIPE_API_VERSION"],
    "Content-Type": "application/json",
}


def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    destination_id = event["pathParameters"]["destination_id"]
    answer = HTTP.request(
        "POST",
        f"{BASE}/v2/core/event_destinations/{destination_id}/ping",
        body=b"{}",
        headers={**HEADERS, "Idempotency-Key": str(uuid.uuid4())},
    )
    now = time.time()
    pinged_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1e6) % 1_000_000:06d}Z"
    DYNAMODB.put_item(
        TableName=TABLE,
        Item={
            "destination_id": {"S": destination_id},
            "pinged_at": {"S": pinged_at},
            "http_status": {"N": str(answer.status)},
        },
    )
    return {"statusCode": answer.status, "body": answer.data.decode()}
