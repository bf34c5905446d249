"""Whatever answers at the Stripe API base, at its worst (a raw-socket server that sends exactly the bytes
scripted): every attempted ping is still recorded, before the deadline, in a record that fits, with no
secret in it; and the client keeps Stripe's own rules."""

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from stripe_monitor.stripe.retry import StripeRetry
from tests.conftest import FAKE_STRIPE_KEY, Deployment
from tests.reliability.support import body, configure, stored_checks
from tests.support import ping_event, schedule_event
from tools.standins.hostile_stripe import Answer, HostileStripe

DESTINATION = "ed_test_61HostileStripe00000001"
MAX_ITEM_BYTES = 400 * 1024  # DynamoDB's item limit


def event(event_id: str = "evt_test_Hostile000000000001", **more: Any) -> bytes:
    document = {
        "id": event_id,
        "object": "v2.core.event",
        "type": "v2.core.event_destination.ping",
        "created": "2026-11-27T04:00:00.000Z",
        "livemode": False,
        "related_object": {"id": DESTINATION, "type": "v2.core.event_destination", "url": "/v2/x"},
    } | more
    return json.dumps(document).encode()


def error(code: str, message: str = "refused", status: int = 400) -> Answer:
    return Answer(status, json.dumps({"error": {"code": code, "message": message}}).encode())


@pytest.fixture
def hostile(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileStripe]:
    with HostileStripe() as server:
        configure(monkeypatch, STRIPE_API_BASE=server.url, STRIPE_MAX_RETRIES="0")
        yield server


def ping(deployment: Deployment, remaining_ms: int = 20_000) -> tuple[int, dict[str, Any]]:
    response = deployment.invoke(ping_event(DESTINATION), remaining_ms=remaining_ms)
    return response["statusCode"], body(response)


# ------------------------------------------------------------------------ 9. the deadline holds


@pytest.mark.parametrize("trickled", ["the whole answer", "the body"])
def test_an_answer_trickled_one_byte_at_a_time_ends_at_the_deadline_and_is_recorded(
    deployment, hostile, trickled
):
    hostile.script(Answer(200, event(), seconds_per_byte=0.3, head_at_once=trickled == "the body"))
    started = time.monotonic()

    status, record = ping(deployment, remaining_ms=5_000)  # the deadline: 5 s less the 2 s margin

    assert time.monotonic() - started < 5.0  # before Lambda would have killed the invocation
    assert (status, record["outcome"]) == (504, "timeout")
    assert [c["outcome"] for c in stored_checks(deployment)] == ["timeout"]


# ------------------------------------------------------------------------ 10. oversized values


def test_an_oversized_error_code_and_request_id_are_cut_so_the_record_fits(deployment, hostile):
    answer = error("x" * 900_000)
    hostile.script(Answer(answer.status, answer.body, headers={"Request-Id": "req_" + "y" * 8_000}))

    _, record = ping(deployment)

    [stored] = stored_checks(deployment)
    assert record["outcome"] == "stripe_error"
    assert len(stored["error_code"]) <= 255 and stored["error_code"].endswith("[truncated]")
    assert len(stored["stripe_request_id"]) <= 255
    assert len(json.dumps(stored)) < MAX_ITEM_BYTES


def test_an_event_id_no_stripe_event_has_is_an_invalid_response_not_a_lost_ping(deployment, hostile):
    hostile.script(Answer(200, event("evt_" + "x" * 900_000)))

    _, record = ping(deployment)

    assert record["outcome"] == "invalid_response"
    assert len(json.dumps(stored_checks(deployment))) < MAX_ITEM_BYTES


def test_a_next_page_url_that_loops_ends_the_listing_with_an_error(deployment, hostile, monkeypatch):
    page: dict[str, Any] = {
        "data": [],
        "next_page_url": "/v2/core/event_destinations?page=again",
        "previous_page_url": None,
    }
    hostile.script(Answer(200, json.dumps(page).encode()))

    summary = deployment.invoke(schedule_event())

    assert "repeats" in summary["discovery_error"]
    assert len(hostile.requests) == 2  # the first page, the page it points at; not the same page again


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_an_answer_nested_deeper_than_json_allows_is_an_invalid_response(deployment, hostile, depth):
    hostile.script(Answer(200, b"[" * depth + b"]" * depth))

    _, record = ping(deployment)

    assert record["outcome"] == "invalid_response"


@pytest.mark.parametrize("created", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+05:00"])
def test_an_event_created_at_the_edge_of_time_is_an_invalid_response(deployment, hostile, created):
    hostile.script(Answer(200, event(created=created)))

    _, record = ping(deployment)

    assert record["outcome"] == "invalid_response"


# ------------------------------------------------------------------------ 11. the key, echoed


ECHOES = {
    "in the error code": lambda key: error(f"invalid_api_key_{key}", status=401),
    "in the message, URL-encoded": lambda key: error("bad", f"key {quote(key, safe='').replace('_', '%5F')}"),
    "in the request id": lambda key: Answer(500, b"{}", headers={"Request-Id": key}),
    "as the event id": lambda key: Answer(200, event(key)),
    "glued to text": lambda key: error("auth", f"no such key:{key}!", status=403),
    "glued to a word": lambda key: error(f"token{key}", status=401),
    "as JSON escapes": lambda key: error("bad", key.replace("_", "\\u005f")),
}


def forms_of(key: str) -> list[str]:
    """The key as it may be echoed: literally, percent-encoded (either case), with JSON escapes."""
    return [key, key.replace("_", "%5F"), key.replace("_", "%5f"), key.replace("_", "\\u005f")]


@pytest.mark.parametrize("where", sorted(ECHOES))
def test_the_key_echoed_anywhere_is_stored_logged_and_answered_nowhere(deployment, hostile, caplog, where):
    hostile.script(ECHOES[where](FAKE_STRIPE_KEY))

    status, record = ping(deployment)  # the fixtures fail the test if the key shows up in the answer, the
    # stored items, the log or the metrics; the assertions below say so for this test's own eyes too

    for form in forms_of(FAKE_STRIPE_KEY):
        assert form not in json.dumps(record)
        assert form not in json.dumps(stored_checks(deployment))
        assert form not in caplog.text
    assert status < 600


# ------------------------------------------------------------------------ 12. Stripe's own rules


def test_a_destination_with_a_status_the_model_does_not_know_is_listed_and_pinged(deployment, hostile):
    destination = {
        "id": DESTINATION, "object": "v2.core.event_destination", "created": "2026-11-27T04:00:00.000Z",
        "livemode": False, "status": "paused_for_review", "type": "webhook_endpoint",
    }  # fmt: skip
    page = {"data": [destination], "next_page_url": None, "previous_page_url": None}
    hostile.script(Answer(200, json.dumps(page).encode()), Answer(200, event()))

    summary = deployment.invoke(schedule_event())

    assert summary["discovery_error"] is None
    [check] = summary["checks"]
    assert (check["outcome"], check["destination_status"]) == ("ok", "paused_for_review")


def test_an_organization_key_is_a_config_error_that_says_so_and_nothing_is_sent(deployment, hostile):
    deployment.aws.put_secret(deployment.secret_id, "sk_org_FAKEorganizationKey0000000000001")

    status, record = ping(deployment)

    assert (status, record["outcome"]) == (500, "config_error")
    assert "Stripe-Context" in record["error_message"]
    assert hostile.requests == []


@pytest.mark.parametrize(("error_type", "attempts"), [("idempotency_error", 1), ("lock_timeout", 3)])
def test_a_409_is_retried_unless_the_key_was_reused_with_other_parameters(
    deployment, hostile, monkeypatch, error_type, attempts
):
    configure(monkeypatch, STRIPE_MAX_RETRIES="2")
    answer = json.dumps({"error": {"code": "conflict", "message": "conflict", "type": error_type}})
    hostile.script(Answer(409, answer.encode()))

    _, record = ping(deployment)

    assert (record["http_status"], record["attempts"]) == (409, attempts)
    assert len(hostile.requests) == attempts


def test_no_retry_waits_less_than_the_backoff_base_as_stripes_clients_do():
    retry = StripeRetry(total=5, backoff_base=0.5)

    delays = [retry._delay_before_next_attempt(None) for _ in range(200)]

    assert min(delays) >= 0.5
