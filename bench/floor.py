"""The card's floor: one API ping done with the libraries the design card requires, and nothing more.

The key read once per execution environment from Secrets Manager (boto3), one urllib3 POST to Stripe, the
answer validated with a Powertools Parser model, one boto3 ``PutItem``. No retries, logs, metrics, health
or receipts, and no X-Ray SDK (Lambda's active tracing still traces the invocation). ``bench/run.py`` runs
it with boto3 as Lambda's runtime ships it (full, with its bytecode) and Powertools and pydantic from the
built layer: no implementation that keeps the card's libraries can start faster, so ``ours / floor`` is the
price of everything the monitor does beyond a bare ping.
"""

import json
import os
import time
import uuid
from datetime import datetime
from typing import Any, Literal

import boto3
import urllib3
from aws_lambda_powertools.utilities.parser import BaseModel, parse

HTTP = urllib3.PoolManager()
SECRETS = boto3.client("secretsmanager")
DYNAMODB = boto3.client("dynamodb")
TABLE = os.environ["TABLE_NAME"]
BASE = os.environ["STRIPE_API_BASE"]
_key: list[str] = []  # read at the first ping of the execution environment


class RelatedObject(BaseModel):
    id: str
    type: str
    url: str


class PingEvent(BaseModel):
    id: str
    object: Literal["v2.core.event"]
    type: Literal["v2.core.event_destination.ping"]
    created: datetime
    livemode: bool
    related_object: RelatedObject


def stripe_key() -> str:
    if not _key:
        _key.append(SECRETS.get_secret_value(SecretId=os.environ["STRIPE_SECRET_ID"])["SecretString"])
    return _key[0]


def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    destination_id = event["pathParameters"]["destination_id"]
    answer = HTTP.request(
        "POST",
        f"{BASE}/v2/core/event_destinations/{destination_id}/ping",
        body=b"{}",
        headers={
            "Authorization": f"Bearer {stripe_key()}",
            "Stripe-Version": os.environ["STRIPE_API_VERSION"],
            "Content-Type": "application/json",
            "Idempotency-Key": str(uuid.uuid4()),
        },
    )
    ping = parse(event=json.loads(answer.data), model=PingEvent)
    now = time.time()
    pinged_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1e6) % 1_000_000:06d}Z"
    DYNAMODB.put_item(
        TableName=TABLE,
        Item={
            "destination_id": {"S": destination_id},
            "pinged_at": {"S": pinged_at},
            "http_status": {"N": str(answer.status)},
            "event_id": {"S": ping.id},
        },
    )
    return {"statusCode": answer.status, "body": ping.model_dump_json()}
