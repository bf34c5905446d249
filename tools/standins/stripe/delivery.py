"""How Stripe delivers an event: the thin payload, signed and POSTed to a webhook endpoint, or wrapped in an
EventBridge envelope."""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from tools.standins.service import post
from tools.standins.stripe.model import Destination


def thin_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """The thin event Stripe delivers for a full v2 event."""
    thin = {k: event[k] for k in ("id", "object", "type", "created", "livemode", "context", "related_object")}
    if event.get("reason") is not None:
        thin["reason"] = event["reason"]
    return thin


def post_to_webhook(destination: Destination, thin: dict[str, Any]) -> int | None:
    """POST the thin event, signed with the destination's secret, to its loopback URL; the HTTP status of
    the answer, or None when there was none."""
    assert destination.url and destination.signing_secret
    if urlsplit(destination.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the stand-in delivers to loopback addresses only")
    payload = json.dumps(thin).encode()
    timestamp = int(datetime.now(UTC).timestamp())
    digest = hmac.new(destination.signing_secret.encode(), f"{timestamp}.".encode() + payload, "sha256")
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": f"t={timestamp},v1={digest.hexdigest()}",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }
    return post(destination.url, payload, headers)


def eventbridge_envelope(destination: Destination, thin: dict[str, Any]) -> dict[str, Any]:
    """The event as EventBridge hands it to the destination's partner event bus."""
    return {
        "version": "0",
        "id": secrets.token_hex(16),
        "detail-type": thin["type"],
        "source": f"aws.partner/stripe.com/{destination.id}",
        "account": destination.aws_account_id,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": destination.aws_region,
        "resources": [],
        "detail": thin,
    }
