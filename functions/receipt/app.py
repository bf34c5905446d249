"""ReceiptFunction: records that a ping event ARRIVED, from Amazon EventBridge, from the stack's signed
webhook route, or from the user's application. Thin: parse, call ``Deliveries.record``, shape the answer.
"""

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.parser import BaseModel, ValidationError, parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import AwareDatetime

from stripe_monitor.alerts import AlertPublisher
from stripe_monitor.check_store import CheckStore
from stripe_monitor.checks import Monitor
from stripe_monitor.deliveries import Receipt
from stripe_monitor.destination_ids import InvalidDestinationIdError, validate_destination_id
from stripe_monitor.observability import logger, metrics, tracer
from stripe_monitor.settings import ConfigError, get_settings
from stripe_monitor.signing_secrets import get_signing_secrets
from stripe_monitor.stripe_key import get_stripe_api_key
from stripe_monitor.stripe_models import PING_EVENT_TYPE, Event, PingEvent
from stripe_monitor.webhook_signature import SignatureError, verify_signature

MAX_WEBHOOK_BYTES = 64 * 1024
MAX_RECEIPT_BYTES = 4096
# How far a reported arrival time may lie in the future (clock skew) or in the past.
MAX_CLOCK_SKEW = timedelta(minutes=5)
MAX_RECEIPT_AGE = timedelta(days=1)
_ROUTES = {"/webhooks/stripe": ("POST",), "/receipts": ("POST",)}  # path -> allowed methods, for 405s

app = APIGatewayRestResolver()


@cache
def monitor() -> Monitor:
    settings = get_settings()
    return Monitor(
        settings,
        CheckStore(settings.table_name),
        get_stripe_api_key,
        AlertPublisher(settings.alert_topic_arn),
    )


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status, content_type="application/json", body=json.dumps(body), headers=headers
    )


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response[str]:
    return _json(status, {"error": {"code": code, "message": message}}, headers)


@app.post("/webhooks/stripe")
def stripe_webhook() -> Response[str]:
    """Public (Stripe cannot sign with SigV4): only a verified ``Stripe-Signature`` gets anything stored."""
    event = app.current_event
    raw = event.body or ""
    payload = base64.b64decode(raw) if event.is_base64_encoded else raw.encode()
    if len(payload) > MAX_WEBHOOK_BYTES:
        return _error(400, "body_too_large", f"body larger than {MAX_WEBHOOK_BYTES} bytes")
    secret_id = get_settings().webhook_secret_id
    if not secret_id:
        return _error(503, "not_configured", "no webhook signing secret is configured")
    header = next((v for k, v in event.headers.items() if k.lower() == "stripe-signature"), None)
    try:
        _verify(payload, header, secret_id)
    except SignatureError as exc:
        return _error(400, "invalid_signature", str(exc))
    try:
        document = json.loads(payload)
    except ValueError:
        return _error(400, "invalid_body", "body is not JSON")
    if not isinstance(document, dict):
        return _error(400, "invalid_body", "body is not a Stripe event")
    if document.get("type") != PING_EVENT_TYPE or document.get("object") != "v2.core.event":
        # Signed by Stripe, but not a ping (e.g. a snapshot event to the same endpoint): acknowledge it,
        # or Stripe retries it for days and may disable the destination.
        kind = document.get("type")
        return _json(200, {"status": "ignored", "type": kind if isinstance(kind, str) else None})
    try:
        parse(event=document, model=Event)
    except ValidationError:
        return _error(400, "invalid_body", "body is not a Stripe v2 event")
    try:
        return _json(200, _record_ping(document, "webhook"))
    except ValueError:  # signed, but not a well-formed ping (pydantic's ValidationError, a bad id)
        return _error(400, "invalid_body", "body is not a Stripe ping event for an event destination")


def _verify(payload: bytes, header: str | None, secret_id: str) -> None:
    tolerance = get_settings().webhook_tolerance_seconds
    try:
        verify_signature(
            payload, header, get_signing_secrets(secret_id), now=time.time(), tolerance=tolerance
        )
    except SignatureError as exc:
        if "no valid signature" not in str(exc):
            raise
        # The secrets may have been rotated since they were cached: read them again, once.
        fresh = get_signing_secrets(secret_id, force_fetch=True)
        verify_signature(payload, header, fresh, now=time.time(), tolerance=tolerance)


class ApplicationReceipt(BaseModel):
    """``POST /receipts`` from the user's webhook handler when a ping event arrived there."""

    event_id: str
    destination_id: str
    received_at: AwareDatetime | None = None


@app.post("/receipts")
def application_receipt() -> Response[str]:
    raw = app.current_event.body or ""
    if len(raw) > MAX_RECEIPT_BYTES:
        return _error(400, "body_too_large", f"body larger than {MAX_RECEIPT_BYTES} bytes")
    try:
        body = ApplicationReceipt.model_validate_json(raw or "{}")
        validate_destination_id(body.destination_id)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        return _error(
            400, "invalid_body", f"expected event_id, destination_id, received_at: {where}: {first['msg']}"
        )
    except InvalidDestinationIdError as exc:
        return _error(400, "invalid_destination_id", str(exc))
    if not body.event_id.startswith("evt_") or not body.event_id.isascii() or len(body.event_id) > 255:
        return _error(400, "invalid_event_id", "event_id must be a Stripe event id (evt_...)")
    now = datetime.now(UTC)
    received_at = body.received_at or now
    if not now - MAX_RECEIPT_AGE <= received_at <= now + MAX_CLOCK_SKEW:
        return _error(400, "invalid_received_at", "received_at must be within the last day")
    receipt = Receipt(body.destination_id, body.event_id, "application", received_at)
    return _json(200, monitor().deliveries.record(receipt))


@app.exception_handler(ConfigError)
def misconfigured(exc: ConfigError) -> Response[str]:
    return _error(500, "config_error", str(exc))


@app.not_found
def not_found(_: Exception) -> Response[str]:
    """Other methods on this function's paths reach it too (the template's ANY routes): 405, not 404."""
    path, method = app.current_event.path, app.current_event.http_method
    if path in _ROUTES:
        allowed = {"Allow": ", ".join(_ROUTES[path])}
        return _error(405, "method_not_allowed", f"{method} is not allowed on {path}", allowed)
    return _error(404, "not_found", f"no route for {method} {path}")


def _record_ping(document: dict[str, Any], channel: str) -> dict[str, Any]:
    """A verified thin ping event (webhook body or EventBridge ``detail``) -> a receipt."""
    ping = parse(event=document, model=PingEvent)
    if not ping.id.startswith("evt_") or not ping.id.isascii() or len(ping.id) > 255:
        raise ValueError("not a Stripe event id")  # it becomes part of a table key
    receipt = Receipt(
        destination_id=ping.related_object.id,
        event_id=ping.id,
        channel=channel,
        received_at=datetime.now(UTC),
        event_created=ping.created,
    )
    return monitor().deliveries.record(receipt)


def eventbridge_receipt(event: dict[str, Any]) -> dict[str, Any]:
    """The standard EventBridge envelope from the Stripe partner bus; ``detail`` is the thin event."""
    envelope = parse(event=event, model=EventBridgeModel)
    if envelope.detail_type != PING_EVENT_TYPE:
        return {"status": "ignored", "type": envelope.detail_type}
    if not isinstance(envelope.detail, dict):
        raise ValueError("EventBridge detail is not a Stripe event")
    return _record_ping(envelope.detail, "eventbridge")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if isinstance(event, dict) and "httpMethod" in event:
        return app.resolve(event, context)
    try:
        return eventbridge_receipt(event)
    except ValueError as exc:  # pydantic's ValidationError and InvalidDestinationIdError included
        # Not retryable: a malformed event stays malformed. Logged, then dropped.
        logger.warning("not a Stripe ping event", error=str(exc)[:300])
        return {"status": "rejected"}
