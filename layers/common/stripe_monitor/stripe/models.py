"""Pydantic models of the Stripe API v2 answers the monitor reads, validated with Powertools Parser.

Models allow extra fields, and enum-like fields (``status``, ``type``, ...) are open strings: Stripe adds
fields and values over time, and an unknown one must never fail a check or a page of the list.
"""

from datetime import datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.parser import BaseModel
from pydantic import ConfigDict, StringConstraints

from stripe_monitor.model.untrusted import BoundedDatetime

PING_EVENT_TYPE = "v2.core.event_destination.ping"


class StripeObject(BaseModel):
    # Built at first use: most calls validate one or two of these models (cold start).
    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)


class EventReasonRequest(StripeObject):
    id: str
    idempotency_key: str | None = None


class EventReason(StripeObject):
    type: str
    request: EventReasonRequest | None = None


class RelatedObject(StripeObject):
    id: str | None = None
    type: str
    url: str


class Event(StripeObject):
    """A ``v2.core.event``."""

    id: str
    object: Literal["v2.core.event"]
    context: str | None = None
    created: BoundedDatetime
    data: dict[str, Any] | None = None
    livemode: bool
    reason: EventReason | None = None
    related_object: RelatedObject | None = None
    type: str


class PingRelatedObject(RelatedObject):
    id: str
    # The API page's example says "event_destination", newer sources "v2.core.event_destination".
    type: Literal["event_destination", "v2.core.event_destination"]


class PingEvent(Event):
    """The event that ``POST /v2/core/event_destinations/{id}/ping`` creates and returns."""

    type: Literal["v2.core.event_destination.ping"]
    related_object: PingRelatedObject


class DisabledDetails(StripeObject):
    reason: str | None = None


class StatusDetails(StripeObject):
    disabled: DisabledDetails | None = None


class AmazonEventBridge(StripeObject):
    aws_account_id: str | None = None
    aws_event_source_arn: str | None = None
    aws_event_source_status: str | None = None


class WebhookEndpoint(StripeObject):
    signing_secret: str | None = None
    url: str | None = None


class EventDestination(StripeObject):
    """A ``v2.core.event_destination``."""

    id: str
    object: Literal["v2.core.event_destination"]
    created: datetime
    updated: datetime | None = None
    description: str | None = None
    enabled_events: tuple[str, ...] = ()
    event_payload: str | None = None
    events_from: list[str] | None = None
    livemode: bool
    metadata: dict[str, Any] | None = None
    name: str | None = None
    snapshot_api_version: str | None = None
    status: str  # "enabled" or "disabled" today; any other value counts as not disabled
    status_details: StatusDetails | None = None
    type: str
    amazon_eventbridge: AmazonEventBridge | None = None
    azure_event_grid: dict[str, Any] | None = None
    webhook_endpoint: WebhookEndpoint | None = None

    @property
    def disabled_reason(self) -> str | None:
        details = self.status_details.disabled if self.status_details else None
        return details.reason if details else None


class EventDestinationPage(StripeObject):
    """One page of a v2 list: no ``object`` key, and ``next_page_url`` is null on the last page."""

    data: list[EventDestination]
    # A path on the API base: the client sends its key with the next request, so never to another host.
    next_page_url: Annotated[str, StringConstraints(pattern=r"^/v2/")] | None
    previous_page_url: str | None = None


class ErrorDetail(StripeObject):
    code: str
    message: str
    type: str | None = None
    doc_url: str | None = None
    user_message: str | None = None


class ErrorBody(StripeObject):
    """The v2 error shape ``{"error": {"code", "message", ...}}``."""

    error: ErrorDetail
