"""ReceiptFunction: records that a ping event ARRIVED, from Amazon EventBridge, from the stack's signed
webhook route, or from the user's application. Thin: parse, call ``Deliveries.record``, shape the answer;
errors are raised and answered by the error map (``stripe_monitor/http_api.py``).
"""

import base64
import binascii
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.parser import BaseModel, ValidationError, parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from stripe_monitor.errors import (
    BodyTooLargeError,
    InvalidInputError,
    NotConfiguredError,
    RouteNotFoundError,
)
from stripe_monitor.http_api import create_resolver, json_response, parse_body
from stripe_monitor.logic.deliveries import MAX_CLOCK_SKEW
from stripe_monitor.model.ids import is_event_id, validate_destination_id
from stripe_monitor.model.receipt import Channel, Receipt
from stripe_monitor.model.untrusted import BoundedDatetime, is_api_request, loads_json
from stripe_monitor.observability import logger, metrics, tracer
from stripe_monitor.stripe.models import PING_EVENT_TYPE, Event, PingEvent
from stripe_monitor.wiring import receipt_services

MAX_WEBHOOK_BYTES = 64 * 1024
MAX_RECEIPT_BYTES = 4096
MAX_RECEIPT_AGE = timedelta(days=1)
WEBHOOK = "/webhooks/stripe"
RECEIPTS = "/receipts"
ROUTES = {WEBHOOK: ("POST",), RECEIPTS: ("POST",)}

router = APIGatewayRouter()  # type: ignore[no-untyped-call]


@router.post(WEBHOOK)
def stripe_webhook() -> Response[str]:
    """Public (Stripe cannot sign with SigV4): only a verified ``Stripe-Signature`` gets anything stored."""
    event = router.current_event
    payload = _raw_body(event.body or "", bool(event.is_base64_encoded))
    if len(payload) > MAX_WEBHOOK_BYTES:
        raise BodyTooLargeError(f"body larger than {MAX_WEBHOOK_BYTES} bytes")
    verifier = receipt_services().webhook
    if verifier is None:
        raise NotConfiguredError("no webhook signing secret is configured")
    header = next((v for k, v in event.headers.items() if k.lower() == "stripe-signature"), None)
    document = _json_object(payload)
    channel = verifier.verify(payload, header, _related_id(document))
    if document is None:
        raise InvalidInputError("body is not a JSON object", code="invalid_body")
    if document.get("type") != PING_EVENT_TYPE or document.get("object") != "v2.core.event":
        # Signed by Stripe, but not a ping (e.g. a snapshot event to the same endpoint): acknowledge it,
        # or Stripe retries it for days and may disable the destination.
        kind = document.get("type")
        return json_response(200, {"status": "ignored", "type": kind if isinstance(kind, str) else None})
    try:
        parse(event=document, model=Event)
    except ValidationError:
        raise InvalidInputError("body is not a Stripe v2 event", code="invalid_body") from None
    try:
        return json_response(200, _record_ping(document, channel))
    except ValueError:  # signed, but not a well-formed ping (pydantic's ValidationError, a bad id)
        raise InvalidInputError(
            "body is not a Stripe ping event for an event destination", code="invalid_body"
        ) from None


def _raw_body(body: str, is_base64_encoded: bool) -> bytes:
    try:
        return base64.b64decode(body, validate=True) if is_base64_encoded else body.encode()
    except (binascii.Error, ValueError):  # invalid base64, or text that is not UTF-8 (lone surrogates)
        raise InvalidInputError("body is not valid base64 or UTF-8", code="invalid_body") from None


def _json_object(payload: bytes) -> dict[str, Any] | None:
    try:
        document = loads_json(payload)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _related_id(document: dict[str, Any] | None) -> str | None:
    """The destination the event names: whose signing secrets sign it (not trusted before that)."""
    related = document.get("related_object") if document else None
    found = related.get("id") if isinstance(related, dict) else None
    return found if isinstance(found, str) else None


class ApplicationReceipt(BaseModel):
    """``POST /receipts`` from the user's webhook handler when a ping event arrived there."""

    event_id: str
    destination_id: str
    received_at: BoundedDatetime | None = None


@router.post(RECEIPTS)
def application_receipt() -> Response[str]:
    raw = router.current_event.body or ""
    if len(raw) > MAX_RECEIPT_BYTES:
        raise BodyTooLargeError(f"body larger than {MAX_RECEIPT_BYTES} bytes")
    body = parse_body(ApplicationReceipt, raw, expected="event_id, destination_id, received_at")
    validate_destination_id(body.destination_id)
    if not is_event_id(body.event_id):
        raise InvalidInputError("event_id must be a Stripe event id (evt_...)", code="invalid_event_id")
    now = datetime.now(UTC)
    received_at = body.received_at or now
    if not now - MAX_RECEIPT_AGE <= received_at <= now + MAX_CLOCK_SKEW:
        ahead = MAX_CLOCK_SKEW.seconds // 60
        raise InvalidInputError(
            f"received_at must be within the last day and at most {ahead} minutes ahead",
            code="invalid_received_at",
        )
    receipt = Receipt(body.destination_id, body.event_id, Channel.APPLICATION, received_at)
    return json_response(200, receipt_services().deliveries.record(receipt))


def _record_ping(document: dict[str, Any], channel: Channel) -> dict[str, Any]:
    """A verified thin ping event (webhook body or EventBridge ``detail``) -> a receipt."""
    ping = parse(event=document, model=PingEvent)
    if not is_event_id(ping.id):
        raise ValueError("not a Stripe event id")  # it becomes part of a table key
    receipt = Receipt(
        destination_id=ping.related_object.id,
        event_id=ping.id,
        channel=channel,
        received_at=datetime.now(UTC),
        event_created=ping.created,
    )
    return receipt_services().deliveries.record(receipt)


def eventbridge_receipt(event: dict[str, Any]) -> dict[str, Any]:
    """The standard EventBridge envelope from the Stripe partner bus; ``detail`` is the thin event."""
    envelope = parse(event=event, model=EventBridgeModel)
    if envelope.detail_type != PING_EVENT_TYPE:
        return {"status": "ignored", "type": envelope.detail_type}
    if not isinstance(envelope.detail, dict):
        raise ValueError("EventBridge detail is not a Stripe event")
    return _record_ping(envelope.detail, Channel.EVENTBRIDGE)


@cache
def api() -> APIGatewayRestResolver:
    return create_resolver(router, ROUTES, invalid_parameter=RouteNotFoundError("no such route"))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_api_request(event):
        return api().resolve(event, context)
    try:
        return eventbridge_receipt(event)
    except ValueError as exc:  # pydantic's ValidationError and InvalidInputError included
        # Not retryable: a malformed event stays malformed. Logged, then dropped.
        logger.warning("not a Stripe ping event", error=str(exc)[:300])
        return {"status": "rejected"}
