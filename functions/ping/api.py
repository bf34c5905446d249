"""PingFunction's HTTPS API: the routes, on a Powertools router (``app.api`` builds the resolver at the
first API request). Routes parse the request, call the logic, shape the answer; errors are raised and
answered by the error map (``stripe_monitor/http_api.py``).
"""

from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.utilities.parser import BaseModel

from stripe_monitor.errors import BodyTooLargeError, InvalidInputError
from stripe_monitor.http_api import json_response, parse_body
from stripe_monitor.model.check import DeliveryStatus, Outcome, Trigger
from stripe_monitor.model.ids import validate_idempotency_key
from stripe_monitor.model.untrusted import BoundedDatetime, parse_int
from stripe_monitor.wiring import ping_services

MAX_WAIT_SECONDS = 25
HISTORY_DEFAULT_LIMIT = 20
HISTORY_MAX_LIMIT = 100
MAX_MUTE = timedelta(days=90)
MAX_BODY_BYTES = 4096
_STATUS_FOR_OUTCOME = {
    Outcome.OK: HTTPStatus.OK,
    Outcome.NOT_FOUND: HTTPStatus.NOT_FOUND,
    Outcome.TIMEOUT: HTTPStatus.GATEWAY_TIMEOUT,
    Outcome.CONFIG_ERROR: HTTPStatus.INTERNAL_SERVER_ERROR,
}
PING = "/destinations/<destination_id>/ping"
PINGS = "/destinations/<destination_id>/pings"
TRANSITIONS = "/destinations/<destination_id>/transitions"
MUTE = "/destinations/<destination_id>/mute"
DESTINATIONS = "/destinations"
ROUTES = {
    PING: ("POST",),
    PINGS: ("GET",),
    TRANSITIONS: ("GET",),
    MUTE: ("POST", "DELETE"),
    DESTINATIONS: ("GET",),
}

router = APIGatewayRouter()  # type: ignore[no-untyped-call]


@router.post(PING)
def ping_now(destination_id: str) -> Response[str]:
    headers = router.current_event.headers
    idempotency_key = headers.get("Idempotency-Key") or next(
        (v for k, v in headers.items() if k.lower() == "idempotency-key"), None
    )
    if idempotency_key is not None:
        validate_idempotency_key(idempotency_key)
    raw_wait = router.current_event.get_query_string_value("wait")
    wait = parse_int(raw_wait, low=1, high=MAX_WAIT_SECONDS)
    if raw_wait is not None and wait is None:
        raise InvalidInputError(
            f"wait must be a number of seconds from 1 to {MAX_WAIT_SECONDS}", code="invalid_wait"
        )
    services = ping_services()
    checked = services.single_check.run(
        destination_id,
        trigger=Trigger.API,
        deadline=services.deadline(router.lambda_context),
        idempotency_key=idempotency_key,
    )
    record = checked.record
    status = _STATUS_FOR_OUTCOME.get(record.outcome, HTTPStatus.BAD_GATEWAY)
    # As Stripe marks a repeated request's answer.
    answer_headers = {"Idempotent-Replayed": "true"} if checked.replayed else None
    if wait is None:
        return json_response(status, record.to_dict(), answer_headers)
    # Ping and wait: a gate for deploy pipelines. Never longer than Lambda has left.
    remaining = (
        router.lambda_context.get_remaining_time_in_millis() / 1000
        - services.settings.deadline_margin_seconds
    )
    record = services.deliveries.wait_for(record, seconds=max(min(wait, remaining), 0))
    delivered = record.delivery_status in (DeliveryStatus.DELIVERED, DeliveryStatus.LATE)
    verdict = {
        "accepted": record.outcome is Outcome.OK,
        "delivered": delivered if record.delivery_status is not DeliveryStatus.UNMONITORED else None,
        "delivery_status": record.delivery_status,
        "ping_latency_ms": record.latency_ms,
        "delivery_latency_ms": record.delivery_latency_ms,
    }
    if record.delivery_status is DeliveryStatus.PENDING:
        status = HTTPStatus.GATEWAY_TIMEOUT
    return json_response(status, record.to_dict() | {"verdict": verdict}, answer_headers)


@router.get(PINGS)
def ping_history(destination_id: str) -> Response[str]:
    limit, cursor = _page_parameters()
    records, next_cursor = ping_services().queries.history(destination_id, limit=limit, cursor=cursor)
    pings = [r.to_dict() for r in records]
    return json_response(200, {"destination_id": destination_id, "pings": pings, "next_cursor": next_cursor})


@router.get(TRANSITIONS)
def health_transitions(destination_id: str) -> Response[str]:
    limit, cursor = _page_parameters()
    found, next_cursor = ping_services().queries.transitions(destination_id, limit=limit, cursor=cursor)
    body: dict[str, Any] = {
        "destination_id": destination_id,
        "transitions": [t.to_dict() for t in found],
        "next_cursor": next_cursor,
    }
    return json_response(200, body)


@router.get(DESTINATIONS)
def destinations() -> Response[str]:
    return json_response(200, {"destinations": ping_services().queries.destinations()})


class MuteRequest(BaseModel):
    until: BoundedDatetime


@router.post(MUTE)
def mute(destination_id: str) -> Response[str]:
    raw = router.current_event.body or ""
    if len(raw) > MAX_BODY_BYTES:
        raise BodyTooLargeError(f"the body must be at most {MAX_BODY_BYTES} bytes")
    request = parse_body(MuteRequest, raw, expected='{"until": "<ISO-8601 time with zone>"}')
    now = datetime.now(UTC)
    if not now < request.until <= now + MAX_MUTE:
        raise InvalidInputError(
            f"until must be in the future and at most {MAX_MUTE.days} days away", code="invalid_until"
        )
    return json_response(200, ping_services().queries.mute(destination_id, request.until))


@router.delete(MUTE)
def unmute(destination_id: str) -> Response[str]:
    return json_response(200, ping_services().queries.mute(destination_id, None))


def _page_parameters() -> tuple[int, str | None]:
    raw_limit = router.current_event.get_query_string_value("limit", str(HISTORY_DEFAULT_LIMIT))
    limit = parse_int(raw_limit, low=1, high=HISTORY_MAX_LIMIT)
    if limit is None:
        raise InvalidInputError(
            f"limit must be an integer from 1 to {HISTORY_MAX_LIMIT}", code="invalid_limit"
        )
    return limit, router.current_event.get_query_string_value("cursor") or None
