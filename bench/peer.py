"""The peer: the same job written the straightforward way, without the monitor.

The official stripe SDK (``StripeClient(...).v2.core.event_destinations.ping``), boto3 (a DynamoDB Table
resource, as in most Lambda examples) and Powertools Logger in one handler. Like the monitor it reads the
Stripe key from Secrets Manager once per execution environment; a scheduled run pings the destinations one
by one, as a plain loop does.
"""

import json
import os
from datetime import UTC, datetime
from typing import Any

import boto3
import stripe
from aws_lambda_powertools import Logger

logger = Logger()
table = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])
secrets = boto3.client("secretsmanager")
_stripe_client: stripe.StripeClient | None = None


def stripe_client() -> stripe.StripeClient:
    global _stripe_client  # one client per execution environment
    if _stripe_client is None:
        key = secrets.get_secret_value(SecretId=os.environ["STRIPE_SECRET_ID"])["SecretString"]
        _stripe_client = stripe.StripeClient(
            key,
            base_addresses={"api": os.environ["STRIPE_API_BASE"]},
            stripe_version=os.environ["STRIPE_API_VERSION"],
        )
    return _stripe_client


def ping(destination_id: str, trigger: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "destination_id": destination_id,
        "pinged_at": datetime.now(UTC).isoformat(timespec="microseconds"),
        "trigger": trigger,
    }
    try:
        event = stripe_client().v2.core.event_destinations.ping(destination_id)
        item |= {"outcome": "ok", "event_id": event.id, "livemode": event.livemode}
    except stripe.StripeError as exc:
        item |= {"outcome": "error", "http_status": exc.http_status, "error_message": str(exc)[:300]}
    table.put_item(Item=item)
    logger.info("ping recorded", ping=item)
    return item


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if "httpMethod" in event:
        item = ping(event["pathParameters"]["destination_id"], "api")
        return {"statusCode": 200 if item["outcome"] == "ok" else 502, "body": json.dumps(item)}
    ids = [d.strip() for d in os.environ["DESTINATION_IDS"].split(",") if d.strip()]
    pinged = [ping(destination_id, "schedule") for destination_id in ids]
    return {"checked": len(pinged), "ok": sum(1 for p in pinged if p["outcome"] == "ok")}
