"""Each class of hostile request the review found, through the real handlers on moto and the Stripe
stand-in: a clear 4xx, nothing stored that should not be, and never a 5xx or a raised exception."""

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.reliability.conftest import KNOWN
from tests.reliability.support import body, configure
from tests.reliability.test_hostile_input import webhook_event
from tests.support import api_event, ping_event
from tools.standins.aws_faults import GET_SECRET_VALUE, AwsFault
from tools.standins.stripe import Fault

HEX = "0123456789abcdef" * 4
TRICKY_NUMBERS = ["²", "①", "¹²³", "٣", "9" * 5_000, "-1", "1e3", " 7", "0x10"]


def thin_ping(destination_id: str = KNOWN, created: str = "2026-11-27T04:00:00.000Z", **more: Any) -> bytes:
    document = {
        "id": "evt_test_HostileClass000000001",
        "object": "v2.core.event",
        "type": "v2.core.event_destination.ping",
        "created": created,
        "livemode": False,
        "context": None,
        "related_object": {"id": destination_id, "type": "v2.core.event_destination", "url": "/v2/x"},
    } | more
    return json.dumps(document).encode()


def signed(payload: bytes, at: int | None = None) -> dict[str, str]:
    from stripe_monitor.stripe.signature import sign
    from tests.conftest import FAKE_SIGNING_SECRET

    return {
        "Stripe-Signature": sign(payload, FAKE_SIGNING_SECRET, int(at if at is not None else time.time()))
    }


def cursor_of(document: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


# ------------------------------------------------------------------------ 1. numbers: ASCII digits, bounded


@pytest.mark.parametrize("value", TRICKY_NUMBERS)
@pytest.mark.parametrize("name", ["limit", "wait"])
def test_a_number_that_is_not_ascii_digits_in_range_is_a_400(hostile, name, value):
    path = f"/destinations/{KNOWN}/{'ping' if name == 'wait' else 'pings'}"

    response = hostile.invoke(api_event("POST" if name == "wait" else "GET", path, query={name: value}))

    assert (response["statusCode"], body(response)["error"]["code"]) == (400, f"invalid_{name}")
    assert hostile.stripe.requests == []


@pytest.mark.parametrize("timestamp", TRICKY_NUMBERS)
def test_a_signature_timestamp_that_is_not_ascii_digits_is_a_400(receiver, timestamp):
    header = {"Stripe-Signature": f"t={timestamp},v1={HEX}"}

    response = receiver.invoke(webhook_event(thin_ping(), header, as_base64=False))

    assert (response["statusCode"], body(response)["error"]["code"]) == (400, "invalid_signature")


# ------------------------------------------------------------------------ 2. decoding hostile bytes


def test_a_body_marked_base64_that_is_not_is_a_400(receiver):
    event = webhook_event(thin_ping(), signed(thin_ping()), as_base64=True) | {"body": "not base64 %%%"}

    response = receiver.invoke(event)

    assert (response["statusCode"], body(response)["error"]["code"]) == (400, "invalid_body")


@pytest.mark.parametrize("v1", ["ü" * 64, "Ⅻ", HEX.upper(), HEX[:-1] + "g"])
def test_a_signature_that_is_not_lowercase_hex_is_a_400(receiver, v1):
    header = {"Stripe-Signature": f"t={int(time.time())},v1={v1}"}

    response = receiver.invoke(webhook_event(thin_ping(), header, as_base64=False))

    assert (response["statusCode"], body(response)["error"]["code"]) == (400, "invalid_signature")


def test_a_body_with_a_lone_surrogate_is_a_400(receiver):
    event = webhook_event(thin_ping(), signed(thin_ping()), as_base64=False) | {"body": '{"id": "\ud800"}'}

    response = receiver.invoke(event)

    assert response["statusCode"] == 400


def test_a_signed_webhook_body_nested_deeper_than_json_allows_is_a_400(receiver):
    payload = b"[" * 30_000 + b"]" * 30_000  # within the 64 KiB limit

    response = receiver.invoke(webhook_event(payload, signed(payload), as_base64=False))

    assert (response["statusCode"], body(response)["error"]["code"]) == (400, "invalid_body")


def test_a_receipt_body_nested_deep_is_a_400(receiver):
    event = api_event("POST", "/receipts") | {"body": "[" * 2_000 + "]" * 2_000}
    event["resource"] = event["requestContext"]["resourcePath"] = "/receipts"

    response = receiver.invoke(event)

    assert (response["statusCode"], body(response)["error"]["code"]) == (400, "invalid_body")


# ------------------------------------------------------------------------ 3. datetimes at the edge


@pytest.mark.parametrize("created", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+05:00"])
def test_a_signed_ping_created_at_the_edge_of_time_is_a_400(receiver, created):
    payload = thin_ping(created=created)

    response = receiver.invoke(webhook_event(payload, signed(payload), as_base64=False))

    assert (response["statusCode"], body(response)["error"]["code"]) == (400, "invalid_body")
    assert receiver.receipts() == 0


def test_an_eventbridge_ping_created_at_the_edge_of_time_is_rejected_not_retried(receiver):
    detail = json.loads(thin_ping(created="0001-01-01T00:00:00+01:00"))
    envelope = {
        "version": "0", "id": "e1", "detail-type": "v2.core.event_destination.ping",
        "source": f"aws.partner/stripe.com/{KNOWN}", "account": "123456789012",
        "time": "9999-12-31T23:59:59-23:59", "region": "us-east-1", "resources": [], "detail": detail,
    }  # fmt: skip

    assert receiver.invoke(envelope) == {"status": "rejected"}
    assert receiver.receipts() == 0


@pytest.mark.parametrize(
    "scheduled_time",
    [
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59-23:59",
        "1970-01-01T00:00:00Z",  # TTL would delete its records at once
        (datetime.now(UTC) + timedelta(hours=23)).isoformat(),  # would outrank every real check
        (datetime.now(UTC) - timedelta(days=2)).isoformat(),  # older than any scheduler retry
    ],
)
def test_a_scheduled_run_outside_the_schedulers_window_is_refused_before_any_ping(
    hostile, monkeypatch, scheduled_time
):
    configure(monkeypatch, DESTINATION_IDS=KNOWN)

    answer = hostile.invoke({"scheduled_time": scheduled_time})

    assert answer["error"]["code"] == "invalid_input"
    assert hostile.stripe.requests == []
    assert hostile.deployment.items() == []


# ------------------------------------------------------------------------ 4. cursors


@pytest.mark.parametrize(
    "document", [5, [], None, "after", {"after": {"x": 1}}, {"after": ["a"]}, {"after": 7}, {"before": "x"}]
)
def test_a_cursor_that_does_not_decode_to_a_cursor_is_a_400(hostile, document):
    response = hostile.invoke(
        api_event("GET", f"/destinations/{KNOWN}/pings", query={"cursor": cursor_of(document)})
    )

    assert (response["statusCode"], body(response)["error"]["code"]) == (400, "invalid_cursor")


def test_a_cursor_nested_deeper_than_json_allows_is_a_400(hostile):
    cursor = base64.urlsafe_b64encode(b'{"after": ' + b"[" * 5_000).decode()

    response = hostile.invoke(api_event("GET", f"/destinations/{KNOWN}/pings", query={"cursor": cursor}))

    assert (response["statusCode"], body(response)["error"]["code"]) == (400, "invalid_cursor")


# ------------------------------------------------------------------------ 5. forged webhooks cost nothing


def test_forged_webhooks_read_the_signing_secrets_at_most_once_more(receiver, proxy):
    for _ in range(20):
        header = {"Stripe-Signature": f"t={int(time.time())},v1={HEX}"}
        response = receiver.invoke(webhook_event(thin_ping(), header, as_base64=False))
        assert response["statusCode"] == 400

    assert proxy.calls[GET_SECRET_VALUE] <= 2  # the first read, and one re-read in case they were rolled


def test_a_forged_webhook_while_secrets_manager_throttles_is_still_a_400(receiver, proxy):
    receiver.invoke(
        webhook_event(thin_ping(), {"Stripe-Signature": f"t={int(time.time())},v1={HEX}"}, as_base64=False)
    )
    proxy.inject(AwsFault.throttle(GET_SECRET_VALUE, times=None))
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()  # as if the cache had expired: every read now fails

    for _ in range(5):
        header = {"Stripe-Signature": f"t={int(time.time())},v1={HEX}"}
        response = receiver.invoke(webhook_event(thin_ping(), header, as_base64=False))
        assert (response["statusCode"], body(response)["error"]["code"]) == (400, "invalid_signature")


# ------------------------------------------------------------------------ 7. phantom destinations


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_a_mute_of_a_destination_never_seen_is_a_404_and_makes_none_up(hostile, method):
    phantom = "ed_test_61PhantomDestination001"
    event = api_event(method, f"/destinations/{phantom}/mute")
    event["body"] = json.dumps({"until": (datetime.now(UTC) + timedelta(hours=1)).isoformat()})

    response = hostile.invoke(event)

    assert (response["statusCode"], body(response)["error"]["code"]) == (404, "unknown_destination")
    listed = body(hostile.invoke(api_event("GET", "/destinations")))["destinations"]
    assert phantom not in {d["destination_id"] for d in listed}


def test_a_receipt_for_a_destination_never_seen_makes_none_to_ping(receiver, hostile, monkeypatch):
    phantom = "ed_test_61PhantomDestination002"
    payload = thin_ping(phantom, created=datetime.now(UTC).isoformat())
    assert receiver.invoke(webhook_event(payload, signed(payload), as_base64=False))["statusCode"] == 200
    hostile.stripe.script_list([Fault("status", 500)], forever=True)  # discovery falls back on states

    hostile.invoke({"scheduled_time": datetime.now(UTC).isoformat()})

    assert phantom not in {r.destination_id for r in hostile.stripe.requests}


# ------------------------------------------------------------------------ 8. impossible times


def test_a_receipt_said_to_arrive_before_its_event_was_created_is_refused(receiver, hostile):
    record = body(hostile.invoke(ping_event(KNOWN)))
    created = datetime.fromisoformat(record["event_created"])
    event = api_event("POST", "/receipts")
    event["resource"] = event["requestContext"]["resourcePath"] = "/receipts"
    event["body"] = json.dumps(
        {
            "event_id": record["event_id"],
            "destination_id": KNOWN,
            "received_at": (created - timedelta(minutes=10)).isoformat(),
        }
    )

    response = receiver.invoke(event)

    assert (response["statusCode"], body(response)["error"]["code"]) == (400, "invalid_received_at")
    history = body(hostile.invoke(api_event("GET", f"/destinations/{KNOWN}/pings")))["pings"]
    assert history[0]["delivery_status"] == "pending"  # not "delivered" with a latency clamped to 0


@pytest.mark.parametrize(
    "offset", [timedelta(days=-2), timedelta(hours=1)], ids=["two-days-ago", "an-hour-ahead"]
)
def test_a_receipt_said_to_arrive_outside_the_last_day_or_in_the_future_is_refused(receiver, hostile, offset):
    record = body(hostile.invoke(ping_event(KNOWN)))
    event = api_event("POST", "/receipts")
    event["resource"] = event["requestContext"]["resourcePath"] = "/receipts"
    received_at = (datetime.now(UTC) + offset).isoformat()
    event["body"] = json.dumps(
        {"event_id": record["event_id"], "destination_id": KNOWN, "received_at": received_at}
    )

    response = receiver.invoke(event)

    assert (response["statusCode"], body(response)["error"]["code"]) == (400, "invalid_received_at")
    assert "within the last day and at most 5 minutes ahead" in body(response)["error"]["message"]
    history = body(hostile.invoke(api_event("GET", f"/destinations/{KNOWN}/pings")))["pings"]
    assert history[0]["delivery_status"] == "pending"
