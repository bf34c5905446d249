"""PingFunction's HTTPS API: the routes, on Powertools' REST resolver.

Imported by ``app.lambda_handler`` at the first API request only: a scheduled run never needs the event
handler (about 18 ms of a cold start, docs/performance.md).
"""

import json
import re
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.utilities.parser import BaseModel, ValidationError
from pydantic import AwareDatetime

from app import IDEMPOTENCY_KEY, monitor, remaining_deadline, short_message
from stripe_monitor.check_store import InvalidCursorError
from stripe_monitor.checks import StorageError
from stripe_monitor.deliveries import DELIVERED, LATE, PENDING, UNMONITORED
from stripe_monitor.destination_ids import InvalidDestinationIdError
from stripe_monitor.ping import Outcome
from stripe_monitor.records import Trigger
from stripe_monitor.settings import ConfigError, get_settings

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
_ROUTES = {  # path pattern -> allowed methods: what not_found answers 405 (or 400) rather than 404
    re.compile(r"/destinations/[^/]+/ping"): ("POST",),
    re.compile(r"/destinations/[^/]+/pings"): ("GET",),
    re.compile(r"/destinations/[^/]+/transitions"): ("GET",),
    re.compile(r"/destinations/[^/]+/mute"): ("POST", "DELETE"),
    re.compile(r"/destinations"): ("GET",),
}

app = APIGatewayRestResolver()


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status, content_type="application/json", body=json.dumps(body), headers=headers
    )


def error_response(
    status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> Response[str]:
    return _json(status, {"error": {"code": code, "message": message}, **extra}, headers)


@app.post("/destinations/<destination_id>/ping")
def ping_now(destination_id: str) -> Response[str]:
    idempotency_key = app.current_event.headers.get("Idempotency-Key") or next(
        (v for k, v in app.current_event.headers.items() if k.lower() == "idempotency-key"), None
    )
    if idempotency_key is not None and not IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        return error_response(400, "invalid_idempotency_key", "Idempotency-Key must be 1-255 printable ASCII")
    raw_wait = app.current_event.get_query_string_value("wait")
    if raw_wait is not None and not (raw_wait.isdigit() and 1 <= int(raw_wait) <= MAX_WAIT_SECONDS):
        return error_response(
            400, "invalid_wait", f"wait must be a number of seconds from 1 to {MAX_WAIT_SECONDS}"
        )
    record = monitor().check_destination(
        destination_id,
        trigger=Trigger.API,
        deadline=remaining_deadline(app.lambda_context),
        idempotency_key=idempotency_key,
        api_url=_api_url(),
    )
    status = _STATUS_FOR_OUTCOME.get(record.outcome, HTTPStatus.BAD_GATEWAY)
    if raw_wait is None:
        return _json(status, record.to_dict())
    # Ping and wait: a gate for deploy pipelines. Never longer than Lambda has left.
    remaining = (
        app.lambda_context.get_remaining_time_in_millis() / 1000 - get_settings().deadline_margin_seconds
    )
    record = monitor().wait_for_delivery(record, seconds=max(min(int(raw_wait), remaining), 0))
    delivered = record.delivery_status in (DELIVERED, LATE)
    verdict = {
        "accepted": record.outcome is Outcome.OK,
        "delivered": delivered if record.delivery_status != UNMONITORED else None,
        "delivery_status": record.delivery_status,
        "ping_latency_ms": record.latency_ms,
        "delivery_latency_ms": record.delivery_latency_ms,
    }
    if record.delivery_status == PENDING:
        status = HTTPStatus.GATEWAY_TIMEOUT
    return _json(status, record.to_dict() | {"verdict": verdict})


@app.get("/destinations/<destination_id>/pings")
def ping_history(destination_id: str) -> Response[str]:
    limit, cursor = _page_parameters()
    records, next_cursor = monitor().history(destination_id, limit=limit, cursor=cursor)
    pings = [r.to_dict() for r in records]
    return _json(200, {"destination_id": destination_id, "pings": pings, "next_cursor": next_cursor})


@app.get("/destinations/<destination_id>/transitions")
def health_transitions(destination_id: str) -> Response[str]:
    limit, cursor = _page_parameters()
    found, next_cursor = monitor().transitions(destination_id, limit=limit, cursor=cursor)
    transitions = [t.to_dict() for t in found]
    return _json(
        200, {"destination_id": destination_id, "transitions": transitions, "next_cursor": next_cursor}
    )


@app.get("/destinations")
def destinations() -> Response[str]:
    return _json(200, {"destinations": monitor().destinations()})


class MuteRequest(BaseModel):
    until: AwareDatetime


@app.post("/destinations/<destination_id>/mute")
def mute(destination_id: str) -> Response[str]:
    raw = app.current_event.body or ""
    if len(raw) > MAX_BODY_BYTES:
        return error_response(413, "body_too_large", f"the body must be at most {MAX_BODY_BYTES} bytes")
    try:
        request = MuteRequest.model_validate_json(raw or "{}")
    except ValidationError as exc:
        return error_response(
            400, "invalid_body", f'expected {{"until": "<ISO-8601 time with zone>"}}: {short_message(exc)}'
        )
    now = datetime.now(UTC)
    if not now < request.until <= now + MAX_MUTE:
        return error_response(
            400, "invalid_until", f"until must be in the future and at most {MAX_MUTE.days} days away"
        )
    return _json(200, monitor().mute(destination_id, request.until))


@app.delete("/destinations/<destination_id>/mute")
def unmute(destination_id: str) -> Response[str]:
    return _json(200, monitor().mute(destination_id, None))


def _page_parameters() -> tuple[int, str | None]:
    raw_limit = app.current_event.get_query_string_value("limit", str(HISTORY_DEFAULT_LIMIT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= HISTORY_MAX_LIMIT:
        raise BadRequestError("invalid_limit", f"limit must be an integer from 1 to {HISTORY_MAX_LIMIT}")
    return int(raw_limit), app.current_event.get_query_string_value("cursor") or None


def _api_url() -> str | None:
    """The API's base URL as the caller used it, for links in alerts."""
    context = app.current_event.request_context
    domain = context.domain_name
    return f"https://{domain}/{context.stage}" if domain else None


@app.not_found
def not_found(_: Exception) -> Response[str]:
    """Whatever no route took: API Gateway sends every signed request here (its catch-all routes)."""
    path, method = app.current_event.path, app.current_event.http_method
    methods = next((m for pattern, m in _ROUTES.items() if pattern.fullmatch(path)), None)
    if methods is None:
        return error_response(404, "not_found", f"no route for {method} {path}")
    if method not in methods:
        return error_response(
            405,
            "method_not_allowed",
            f"{method} is not allowed on {path}",
            headers={"Allow": ", ".join(methods)},
        )
    # A known route and method that the resolver did not take: the id has characters no id has.
    return error_response(
        400, "invalid_destination_id", "destination id must look like ed_... or ed_test_..."
    )


@app.exception_handler(InvalidDestinationIdError)
def invalid_destination(exc: InvalidDestinationIdError) -> Response[str]:
    return error_response(400, "invalid_destination_id", str(exc))


class BadRequestError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@app.exception_handler(BadRequestError)
def bad_request(exc: BadRequestError) -> Response[str]:
    return error_response(400, exc.code, str(exc))


@app.exception_handler(InvalidCursorError)
def invalid_cursor(exc: InvalidCursorError) -> Response[str]:
    return error_response(400, "invalid_cursor", str(exc))


@app.exception_handler(StorageError)
def storage_failed(exc: StorageError) -> Response[str]:
    return error_response(
        500, "storage_error", "the check was made but could not be stored", check=exc.record.to_dict()
    )


@app.exception_handler(ConfigError)
def misconfigured(exc: ConfigError) -> Response[str]:
    return error_response(500, "config_error", str(exc))
