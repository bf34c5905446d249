"""PingFunction: one entry for the HTTPS API, the EventBridge Scheduler run and a direct invoke.

Thin on purpose: it parses input, calls the logic (``stripe_monitor.wiring.ping_services``) and shapes the
output. The API's routes are in ``api.py``, imported at the first API request only.
"""

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.parser import BaseModel, ValidationError, parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import field_validator

from stripe_monitor.errors import InvalidInputError, error_body, invalid_event
from stripe_monitor.model.check import Trigger
from stripe_monitor.model.ids import validate_idempotency_key
from stripe_monitor.model.untrusted import BoundedDatetime, is_api_request
from stripe_monitor.observability import logger, metrics, tracer
from stripe_monitor.wiring import ping_services

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver


# When a scheduled run may be delivered: EventBridge Scheduler and Lambda retry it for hours (at most a
# day), and the clocks may differ a little.
RUN_MAX_AGE = timedelta(days=1)
RUN_MAX_AHEAD = timedelta(minutes=5)


class ScheduledRun(BaseModel):
    """The ScheduleV2 ``Input``: ``{"scheduled_time": "<aws.scheduler.scheduled-time>"}``."""

    scheduled_time: BoundedDatetime

    @field_validator("scheduled_time")
    @classmethod
    def _deliverable(cls, value: datetime) -> datetime:
        # A time ahead would outrank every real check (health never moves backwards), one long past would be
        # recorded for TTL to delete at once: only a time the scheduler can really send is run.
        now = datetime.now(UTC)
        if not now - RUN_MAX_AGE <= value <= now + RUN_MAX_AHEAD:
            raise ValueError("scheduled_time must be within the last 24 hours and at most 5 minutes ahead")
        return value


class DirectInvoke(BaseModel):
    """``aws lambda invoke`` payload: ``{"destination_id": "ed_..."}``."""

    destination_id: str
    idempotency_key: str | None = None

    @field_validator("idempotency_key")
    @classmethod
    def _sendable_key(cls, value: str | None) -> str | None:
        # The same rule as the API's header: anything else cannot be sent as an HTTP header to Stripe.
        return validate_idempotency_key(value) if value else None


def run_schedule(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    run = parse(event=event, model=ScheduledRun)
    services = ping_services()
    summary = services.scheduled_run.run(run.scheduled_time, deadline=services.deadline(context))
    # Each check has its own log line already ("check recorded"): the run's line says what came of it.
    logger.info("scheduled run finished", summary=summary.to_dict() | {"checks": len(summary.checks)})
    if summary.not_stored:
        # Let Lambda retry the run (then its DLQ): the retry skips every check already recorded.
        raise RuntimeError(f"{len(summary.not_stored)} checks could not be stored; see the log")
    return summary.to_dict()


def invoke_one(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse(event=event, model=DirectInvoke)
    services = ping_services()
    checked = services.single_check.run(
        request.destination_id,
        trigger=Trigger.INVOKE,
        deadline=services.deadline(context),
        idempotency_key=request.idempotency_key,
    )
    return checked.record.to_dict()


@cache
def api() -> "APIGatewayRestResolver":
    """The API's resolver, built at the first API request: scheduled runs never import the event handler."""
    from api import ROUTES, router
    from stripe_monitor.errors import InvalidDestinationIdError
    from stripe_monitor.http_api import create_resolver

    invalid_id = InvalidDestinationIdError("destination id must look like ed_... or ed_test_...")
    return create_resolver(router, ROUTES, invalid_parameter=invalid_id)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_api_request(event):
        return api().resolve(event, context)
    try:
        if isinstance(event, dict) and "scheduled_time" in event:
            return run_schedule(event, context)
        if isinstance(event, dict) and "destination_id" in event:
            return invoke_one(event, context)
    except (ValidationError, InvalidInputError) as exc:
        logger.warning("invalid input", error=str(exc))
        return invalid_event(exc)
    return error_body(
        "unknown_event", 'expected an API Gateway request, {"scheduled_time": ...} or {"destination_id": ...}'
    )
