"""The Parser models against Stripe's documented payloads."""

import json
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser import ValidationError, parse

from stripe_monitor.stripe.models import ErrorBody, Event, EventDestination, EventDestinationPage, PingEvent

# The API page's own example answer (related_object.type "event_destination").
DOCS_PING_ANSWER: dict[str, Any] = {
    "id": "evt_test_65RM8sQH2oXnebF5Rpc16RJyfa2xSQLHJJh1sxm7H0KI92",
    "object": "v2.core.event",
    "context": None,
    "created": "2024-10-22T16:26:54.063Z",
    "data": None,
    "livemode": False,
    "reason": None,
    "related_object": {
        "id": "ed_test_61RM8ltWcTW4mbsxf16RJyfa2xSQLHJJh1sxm7H0KVT6",
        "type": "event_destination",
        "url": "/v2/core/event_destinations/ed_test_61RM8ltWcTW4mbsxf16RJyfa2xSQLHJJh1sxm7H0KVT6",
    },
    "type": "v2.core.event_destination.ping",
}


def test_the_documented_ping_answer_parses():
    event = parse(event=DOCS_PING_ANSWER, model=PingEvent)

    assert event.related_object.id == "ed_test_61RM8ltWcTW4mbsxf16RJyfa2xSQLHJJh1sxm7H0KVT6"
    assert event.created.year == 2024


def test_the_newer_related_object_type_and_a_reason_parse():
    answer = DOCS_PING_ANSWER | {
        "related_object": DOCS_PING_ANSWER["related_object"] | {"type": "v2.core.event_destination"},
        "reason": {"type": "request", "request": {"id": "req_1", "idempotency_key": "k"}},
    }

    event = parse(event=answer, model=PingEvent)

    assert event.reason is not None and event.reason.request is not None
    assert event.reason.request.idempotency_key == "k"


def test_fields_stripe_adds_later_are_tolerated():
    event = parse(
        event=DOCS_PING_ANSWER | {"changes": None, "snapshot_event": "evt_1", "brand_new": 1}, model=Event
    )

    assert event.type == "v2.core.event_destination.ping"


@pytest.mark.parametrize(
    "change",
    [
        {"object": "event"},
        {"type": "v2.core.event_destination.updated"},
        {"related_object": {"id": "ed_1", "type": "customer", "url": "/v1/customers/cus_1"}},
        {"related_object": None},
        {"created": "not a time"},
    ],
)
def test_anything_but_a_ping_event_is_refused(change):
    with pytest.raises(ValidationError):
        parse(event=DOCS_PING_ANSWER | change, model=PingEvent)


def test_a_list_page_and_a_disabled_eventbridge_destination_parse():
    page = {
        "data": [
            {
                "id": "ed_test_1",
                "object": "v2.core.event_destination",
                "created": "2024-10-22T16:20:09.931Z",
                "updated": "2024-10-22T16:22:02.524Z",
                "description": "",
                "enabled_events": ["v1.billing.meter.error_report_triggered"],
                "event_payload": "thin",
                "events_from": ["self"],
                "livemode": False,
                "metadata": {},
                "name": "Bus",
                "snapshot_api_version": None,
                "status": "disabled",
                "status_details": {"disabled": {"reason": "no_aws_event_source_exists"}},
                "type": "amazon_eventbridge",
                "amazon_eventbridge": {
                    "aws_account_id": "123456789012",
                    "aws_event_source_arn": "arn:aws:events:us-east-1::event-source/"
                    "aws.partner/stripe.com/ed_test_1",
                    "aws_event_source_status": "deleted",
                },
                "webhook_endpoint": None,
            }
        ],
        "next_page_url": None,
        "previous_page_url": None,
    }

    [destination] = parse(event=page, model=EventDestinationPage).data

    assert isinstance(destination, EventDestination)
    assert destination.disabled_reason == "no_aws_event_source_exists"
    assert destination.amazon_eventbridge is not None
    assert destination.amazon_eventbridge.aws_event_source_status == "deleted"


@pytest.mark.parametrize(
    "next_page_url", ["https://elsewhere.example/v2/core/event_destinations?page=2", "//elsewhere/v2/x", ""]
)
def test_a_list_page_whose_next_page_url_leaves_the_api_base_is_refused(next_page_url: str):
    page: dict[str, Any] = {"data": [], "next_page_url": next_page_url, "previous_page_url": None}

    with pytest.raises(ValidationError):
        parse(event=page, model=EventDestinationPage)


def test_the_v2_error_body_parses_with_and_without_optional_fields():
    full = ErrorBody.model_validate_json(
        json.dumps(
            {"error": {"code": "rate_limit", "message": "slow down", "type": "rate_limit", "doc_url": "x"}}
        )
    )
    bare = ErrorBody.model_validate_json(b'{"error": {"code": "not_found", "message": "gone"}}')

    assert (full.error.type, bare.error.type) == ("rate_limit", None)
