"""One ping = one classified result; ``ping_destination`` never raises for what Stripe or the network does.

Whatever answered is not trusted: every string taken from the answer is scrubbed of secrets and bounded in
length before it is recorded, so a record always fits in its item and never holds the key.
"""

from aws_lambda_powertools.utilities.parser import ValidationError, parse

from stripe_monitor.errors import validation_message
from stripe_monitor.model.check import DestinationFacts, Outcome, PingResult
from stripe_monitor.model.ids import is_event_id, validate_destination_id
from stripe_monitor.model.times import iso_ms
from stripe_monitor.model.untrusted import bounded, loads_json
from stripe_monitor.redaction import clean_message, scrub
from stripe_monitor.stripe.client import StripeClient, StripeResponse, StripeTransportError
from stripe_monitor.stripe.models import PING_EVENT_TYPE, ErrorBody, Event, EventDestination, PingEvent


def ping_destination(
    client: StripeClient, destination_id: str, *, idempotency_key: str, deadline: float
) -> PingResult:
    """Ping one destination and classify the answer.

    Raises ``InvalidDestinationIdError`` (before any request) for a malformed id; nothing else.
    """
    validate_destination_id(destination_id)
    try:
        response = client.ping(destination_id, idempotency_key=idempotency_key, deadline=deadline)
    except StripeTransportError as exc:
        return PingResult(
            destination_id=destination_id,
            outcome=Outcome.TIMEOUT if exc.kind == "timeout" else Outcome.NETWORK_ERROR,
            idempotency_key=idempotency_key,
            attempts=exc.attempts,
            latency_ms=exc.elapsed_ms,
            error_code=exc.kind,
            error_message=clean_message(str(exc)),
        )
    return classify_response(destination_id, idempotency_key, response)


def classify_response(destination_id: str, idempotency_key: str, response: StripeResponse) -> PingResult:
    common = {
        "destination_id": destination_id,
        "idempotency_key": idempotency_key,
        "attempts": response.attempts,
        "latency_ms": response.elapsed_ms,
        "http_status": response.status,
        "stripe_request_id": outside_text(response.request_id),
    }
    if 200 <= response.status < 300:
        try:
            event = _validated_ping_event(destination_id, response)
        except _InvalidAnswerError as exc:
            return PingResult(
                outcome=Outcome.INVALID_RESPONSE, error_code="invalid_response",
                error_message=clean_message(str(exc)), **common,  # type: ignore[arg-type]
            )  # fmt: skip
        return PingResult(
            outcome=Outcome.OK,
            event_id=outside_text(event.id),
            event_created=iso_ms(event.created),
            livemode=event.livemode,
            **common,  # type: ignore[arg-type]
        )
    code, message = _error_code_and_message(response)
    return PingResult(
        outcome=_outcome_for_status(response.status), error_code=outside_text(code),
        error_message=clean_message(message),
        **common,  # type: ignore[arg-type]
    )  # fmt: skip


class _InvalidAnswerError(Exception):
    pass


def _validated_ping_event(destination_id: str, response: StripeResponse) -> PingEvent:
    if response.body_too_large:
        raise _InvalidAnswerError("response body is larger than the monitor accepts")
    try:
        payload = loads_json(response.body)
    except ValueError:
        raise _InvalidAnswerError("response body is not JSON (or nested too deep)") from None
    if not isinstance(payload, dict):
        raise _InvalidAnswerError("response body is not a JSON object")
    try:
        event = parse(event=payload, model=Event)
    except ValidationError as exc:
        raise _InvalidAnswerError(f"response is not a v2.core.event: {validation_message(exc)}") from None
    if event.type != PING_EVENT_TYPE:
        raise _InvalidAnswerError(f"expected a {PING_EVENT_TYPE} event, got {event.type!r}")
    try:
        ping_event = parse(event=payload, model=PingEvent)
    except ValidationError as exc:
        raise _InvalidAnswerError(f"ping event is malformed: {validation_message(exc)}") from None
    if ping_event.related_object.id != destination_id:
        other = outside_text(ping_event.related_object.id)
        raise _InvalidAnswerError(f"ping event is for {other!r}, not for the destination pinged")
    if not is_event_id(ping_event.id):
        # No receipt could ever match it (a receipt's event id is checked the same way): the check would
        # wait for a delivery that cannot be recognised, and be declared lost.
        raise _InvalidAnswerError(f"ping event id {outside_text(ping_event.id)!r} is not a Stripe event id")
    return ping_event


def _outcome_for_status(status: int) -> Outcome:
    if status == 404:
        return Outcome.NOT_FOUND
    if status in (401, 403):
        return Outcome.UNAUTHORIZED
    if status == 429:
        return Outcome.RATE_LIMITED
    return Outcome.STRIPE_ERROR


def _error_code_and_message(response: StripeResponse) -> tuple[str, str]:
    fallback = (f"http_{response.status}", f"Stripe answered HTTP {response.status} without a v2 error body")
    if response.body_too_large:
        return fallback
    try:
        body = ErrorBody.model_validate_json(response.body)
    except ValueError:  # pydantic's ValidationError is a ValueError: not JSON, or not the v2 error shape
        return fallback
    return body.error.code, body.error.message


def destination_facts(destination: EventDestination | None) -> DestinationFacts | None:
    """What a check records of the destination's state in Stripe."""
    if destination is None:
        return None
    bridge = destination.amazon_eventbridge
    return DestinationFacts(
        destination_status=outside_text(destination.status),
        disabled_reason=outside_text(destination.disabled_reason),
        destination_type=outside_text(destination.type),
        event_source_status=outside_text(bridge.aws_event_source_status if bridge else None),
    )


def outside_text(text: str | None) -> str | None:
    """A string from Stripe's answer, as it may be stored: scrubbed and bounded."""
    return bounded(scrub(text)) if text is not None else None
