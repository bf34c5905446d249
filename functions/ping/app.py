"""PingFunction: one entry for the HTTPS API, the EventBridge Scheduler run and a direct invoke.

Thin on purpose: it parses input, calls ``stripe_monitor.checks.Monitor`` and shapes the output. The API's
routes are in ``api.py``.
"""

import re
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.parser import BaseModel, ValidationError, parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import AwareDatetime, field_validator

from stripe_monitor.alerts import AlertPublisher
from stripe_monitor.check_store import CheckStore
from stripe_monitor.checks import Monitor, deadline_from_remaining_ms
from stripe_monitor.destination_ids import InvalidDestinationIdError
from stripe_monitor.observability import logger, metrics, tracer
from stripe_monitor.records import Trigger
from stripe_monitor.settings import get_settings
from stripe_monitor.stripe_key import get_stripe_api_key

IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII, no spaces, as Stripe accepts


@cache
def monitor() -> Monitor:
    settings = get_settings()
    return Monitor(
        settings,
        CheckStore(settings.table_name),
        get_stripe_api_key,
        AlertPublisher(settings.alert_topic_arn),
    )


def remaining_deadline(context: LambdaContext) -> float:
    return deadline_from_remaining_ms(
        context.get_remaining_time_in_millis(), get_settings().deadline_margin_seconds
    )


class ScheduledRun(BaseModel):
    """The ScheduleV2 ``Input``: ``{"scheduled_time": "<aws.scheduler.scheduled-time>"}``."""

    scheduled_time: AwareDatetime
    api_url: str | None = None  # the stack's API URL, for links in alerts

    @field_validator("scheduled_time")
    @classmethod
    def _not_ahead(cls, value: datetime) -> datetime:
        # The scheduler sends the time it fires at. A time far ahead would outrank every real check (health
        # never moves backwards) and can overflow the record's expiry: it is refused before any ping.
        if value > datetime.now(UTC) + timedelta(days=1):
            raise ValueError("scheduled_time must not be more than a day ahead")
        return value


class DirectInvoke(BaseModel):
    """``aws lambda invoke`` payload: ``{"destination_id": "ed_..."}``."""

    destination_id: str
    idempotency_key: str | None = None

    @field_validator("idempotency_key")
    @classmethod
    def _sendable_key(cls, value: str | None) -> str | None:
        # The same rule as the API's header: anything else cannot be sent as an HTTP header to Stripe.
        if value and not IDEMPOTENCY_KEY.fullmatch(value):
            raise ValueError("idempotency_key must be 1-255 printable ASCII characters without spaces")
        return value or None


def run_schedule(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    run = parse(event=event, model=ScheduledRun)
    summary = monitor().run_schedule(
        run.scheduled_time, deadline=remaining_deadline(context), api_url=run.api_url
    )
    logger.info("scheduled run finished", summary=summary.to_dict())
    if summary.not_stored:
        # Let Lambda retry the run (then its DLQ): the retry skips every check already recorded.
        raise RuntimeError(f"{len(summary.not_stored)} checks could not be stored; see the log")
    return summary.to_dict()


def invoke_one(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse(event=event, model=DirectInvoke)
    record = monitor().check_destination(
        request.destination_id,
        trigger=Trigger.INVOKE,
        deadline=remaining_deadline(context),
        idempotency_key=request.idempotency_key,
    )
    return record.to_dict()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if isinstance(event, dict) and "httpMethod" in event:
        from api import app  # at the first API request: scheduled runs never need it

        return app.resolve(event, context)
    try:
        if isinstance(event, dict) and "scheduled_time" in event:
            return run_schedule(event, context)
        if isinstance(event, dict) and "destination_id" in event:
            return invoke_one(event, context)
    except (ValidationError, InvalidDestinationIdError) as exc:
        logger.warning("invalid input", error=str(exc))
        return {"error": {"code": "invalid_input", "message": short_message(exc)}}
    return {
        "error": {
            "code": "unknown_event",
            "message": 'expected an API Gateway request, {"scheduled_time": ...} or {"destination_id": ...}',
        }
    }


def short_message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False, include_input=False)[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(exc)
