"""Every outcome of one ping, through the real HTTP path to the Stripe stand-in."""

import time
from typing import Any

import pytest

from stripe_monitor.errors import InvalidDestinationIdError
from stripe_monitor.model.check import Outcome
from stripe_monitor.stripe.classify import ping_destination
from stripe_monitor.stripe.client import StripeClient, StripeClientConfig
from tests.conftest import FAKE_STRIPE_KEY
from tools.standins.stripe import Fault, StripeStandIn

DESTINATION = "ed_test_61OutcomeTests000000001"


def ping(
    stripe: StripeStandIn, destination_id: str = DESTINATION, *, api_key: str = FAKE_STRIPE_KEY, **config: Any
):
    settings: dict[str, Any] = {
        "api_base": stripe.url,
        "connect_timeout": 0.5,
        "read_timeout": 0.5,
        "backoff_base": 0.01,
    }
    client = StripeClient(api_key, StripeClientConfig(**(settings | config)))
    return ping_destination(
        client, destination_id, idempotency_key="outcome-key", deadline=time.monotonic() + 10
    )


@pytest.fixture(autouse=True)
def destination(stripe: StripeStandIn) -> None:
    stripe.add_destination(DESTINATION)


def test_ok_carries_the_event_and_request_ids(stripe):
    result = ping(stripe)

    assert result.outcome is Outcome.OK
    assert result.http_status == 200
    assert result.event_id is not None and result.event_id.startswith("evt_")
    assert result.event_created is not None and result.event_created.endswith("Z")
    assert result.livemode is False
    assert result.stripe_request_id is not None
    assert result.idempotency_key == "outcome-key"
    assert result.attempts == 1
    assert result.latency_ms >= 0
    assert result.error_code is None


def test_unknown_destination_is_not_found(stripe):
    result = ping(stripe, "ed_test_61NobodyKnowsThisOne01")

    assert (result.outcome, result.http_status, result.error_code) == (Outcome.NOT_FOUND, 404, "not_found")


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_are_unauthorized(stripe, status):
    stripe.script(DESTINATION, [Fault("status", status, error_code="permission_denied")])

    assert ping(stripe).outcome is Outcome.UNAUTHORIZED


def test_a_wrong_key_is_unauthorized_and_not_echoed(stripe):
    result = ping(stripe, api_key="sk_test_NotTheRightKey00000000000000")

    assert (result.outcome, result.http_status) == (Outcome.UNAUTHORIZED, 401)
    assert "NotTheRightKey" not in (result.error_message or "")


def test_rate_limiting_that_outlasts_the_retries_is_rate_limited(stripe):
    stripe.script(DESTINATION, [Fault("status", 429, error_code="rate_limit")], forever=True)

    result = ping(stripe, max_retries=2)

    assert (result.outcome, result.attempts, result.error_code) == (Outcome.RATE_LIMITED, 3, "rate_limit")


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (Fault("status", 400, error_code="invalid_fields"), "invalid_fields"),
        (Fault("status", 500), "api_error"),
    ],
)
def test_other_errors_are_stripe_errors_with_stripes_code(stripe, fault, code):
    stripe.script(DESTINATION, [fault], forever=True)

    result = ping(stripe, max_retries=1)

    assert (result.outcome, result.error_code) == (Outcome.STRIPE_ERROR, code)
    assert result.error_message


def test_an_html_502_is_a_stripe_error_without_a_v2_body(stripe):
    stripe.script(DESTINATION, [Fault("html_502")], forever=True)

    result = ping(stripe, max_retries=1)

    assert (result.outcome, result.http_status, result.error_code) == (Outcome.STRIPE_ERROR, 502, "http_502")


def test_a_hang_past_the_timeouts_is_a_timeout(stripe):
    stripe.script(DESTINATION, [Fault("hang", seconds=2)], forever=True)

    result = ping(stripe, max_retries=1)

    assert (result.outcome, result.http_status, result.attempts) == (Outcome.TIMEOUT, None, 2)


def test_a_refused_connection_is_a_network_error(stripe):
    result = ping(stripe, api_base="http://127.0.0.1:9", max_retries=1)

    assert (result.outcome, result.attempts) == (Outcome.NETWORK_ERROR, 2)


def test_a_tls_handshake_that_fails_is_a_network_error(stripe):
    # https:// to the stand-in, which speaks plain HTTP: the TLS handshake fails, as with a proxy or a
    # certificate problem; nothing reaches the stand-in as a request.
    result = ping(stripe, api_base=stripe.url.replace("http://", "https://"), max_retries=1)

    assert (result.outcome, result.http_status, result.error_code) == (
        Outcome.NETWORK_ERROR,
        None,
        "network_error",
    )
    assert stripe.requests == []


def test_resets_on_every_attempt_are_a_network_error(stripe):
    stripe.script(DESTINATION, [Fault("reset")], forever=True)

    result = ping(stripe, max_retries=1)

    assert (result.outcome, result.attempts) == (Outcome.NETWORK_ERROR, 2)


@pytest.mark.parametrize(
    ("fault", "message_part"),
    [
        (Fault("non_json"), "not JSON"),
        (Fault("truncated_json"), "not JSON"),
        (Fault("wrong_shape"), "not a v2.core.event"),
        (Fault("wrong_event_type"), "v2.core.event_destination.updated"),
        (Fault("other_destination"), "not for the destination pinged"),
        (Fault("huge_body", size=2_000_000), "larger than"),
    ],
)
def test_a_2xx_that_is_not_this_destinations_ping_event_is_an_invalid_response(stripe, fault, message_part):
    stripe.script(DESTINATION, [fault])

    result = ping(stripe, max_body_bytes=1_000_000)

    assert (result.outcome, result.http_status) == (Outcome.INVALID_RESPONSE, 200)
    assert message_part in (result.error_message or "")


@pytest.mark.parametrize(
    "bad_id",
    [
        "",
        "ed_",
        "evt_test_123",
        "ed_test_abc/../x",
        "ed_test_%2Fx",
        "ed_test_a b",
        "ed_test_é",
        "ed_" + "a" * 200,
    ],
)
def test_an_invalid_id_is_refused_before_any_request(stripe, bad_id):
    with pytest.raises(InvalidDestinationIdError):
        ping(stripe, bad_id)

    assert stripe.requests == []
