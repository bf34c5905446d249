"""The urllib3 client against the Stripe stand-in over real sockets: headers, retries, deadline, limits."""

import time

import pytest

from stripe_monitor.config import DEFAULT_API_VERSION
from stripe_monitor.stripe.client import StripeClient, StripeClientConfig, StripeTransportError
from tests.conftest import FAKE_STRIPE_KEY
from tools.standins.stripe import Fault, StripeStandIn

DESTINATION = "ed_test_61ClientTests0000000001"


@pytest.fixture
def client(stripe: StripeStandIn) -> StripeClient:
    stripe.add_destination(DESTINATION)
    config = StripeClientConfig(
        api_base=stripe.url, connect_timeout=0.5, read_timeout=0.5, max_retries=3, backoff_base=0.01
    )
    return StripeClient(FAKE_STRIPE_KEY, config)


def far_deadline() -> float:
    return time.monotonic() + 30


def test_ping_sends_auth_version_user_agent_json_and_idempotency_key(client, stripe):
    response = client.ping(DESTINATION, idempotency_key="key-1", deadline=far_deadline())

    assert response.status == 200
    [request] = stripe.requests
    assert request.authorized
    assert request.method == "POST"
    assert request.stripe_version == DEFAULT_API_VERSION
    assert request.user_agent is not None and request.user_agent.startswith("stripe-destination-monitor/")
    assert request.content_type == "application/json"
    assert request.body == b"{}"
    assert request.idempotency_key == "key-1"
    assert response.request_id is not None and response.request_id.startswith("req_")
    assert response.attempts == 1


def test_server_errors_are_retried_with_one_idempotency_key(client, stripe):
    stripe.script(DESTINATION, [Fault("status", 500), Fault("status", 503)])

    response = client.ping(DESTINATION, idempotency_key="same-key", deadline=far_deadline())

    assert response.status == 200
    assert response.attempts == 3
    assert [r.idempotency_key for r in stripe.requests] == ["same-key"] * 3
    assert stripe.event_count(DESTINATION) == 1


@pytest.mark.parametrize("status", [409, 429, 500, 502, 503])
def test_retryable_statuses_are_retried(client, stripe, status):
    stripe.script(DESTINATION, [Fault("status", status)])

    response = client.ping(DESTINATION, idempotency_key="k", deadline=far_deadline())

    assert (response.status, response.attempts) == (200, 2)


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_client_errors_are_not_retried(client, stripe, status):
    stripe.script(DESTINATION, [Fault("status", status)])

    response = client.ping(DESTINATION, idempotency_key="k", deadline=far_deadline())

    assert (response.status, response.attempts) == (status, 1)


def test_retries_are_bounded(client, stripe):
    stripe.script(DESTINATION, [Fault("status", 503)], forever=True)

    response = client.ping(DESTINATION, idempotency_key="k", deadline=far_deadline())

    assert (response.status, response.attempts) == (503, 4)  # 1 + max_retries
    assert stripe.ping_count(DESTINATION) == 4


def test_stripe_should_retry_false_forbids_a_retry(client, stripe):
    stripe.script(DESTINATION, [Fault("status", 500, headers={"Stripe-Should-Retry": "false"})])

    response = client.ping(DESTINATION, idempotency_key="k", deadline=far_deadline())

    assert (response.status, response.attempts) == (500, 1)


def test_stripe_should_retry_true_forces_a_retry_of_a_client_error(client, stripe):
    stripe.script(DESTINATION, [Fault("status", 400, headers={"Stripe-Should-Retry": "true"})])

    response = client.ping(DESTINATION, idempotency_key="k", deadline=far_deadline())

    assert (response.status, response.attempts) == (200, 2)


def test_retry_after_is_honoured(client, stripe):
    stripe.script(DESTINATION, [Fault("status", 429, headers={"Retry-After": "1"})])

    response = client.ping(DESTINATION, idempotency_key="k", deadline=far_deadline())

    first, second = stripe.requests
    assert response.status == 200
    assert second.started - first.started >= 0.95


def test_retry_after_beyond_the_cap_is_capped(stripe):
    stripe.add_destination(DESTINATION)
    stripe.script(DESTINATION, [Fault("status", 429, headers={"Retry-After": "3600"})])
    config = StripeClientConfig(api_base=stripe.url, backoff_base=0.01, retry_after_max=0.2)

    response = StripeClient(FAKE_STRIPE_KEY, config).ping(
        DESTINATION, idempotency_key="k", deadline=far_deadline()
    )

    first, second = stripe.requests
    assert response.status == 200
    assert 0.15 <= second.started - first.started < 5


def test_no_retry_is_started_that_cannot_finish_before_the_deadline(client, stripe):
    stripe.script(DESTINATION, [Fault("status", 503, headers={"Retry-After": "2"})], forever=True)

    response = client.ping(DESTINATION, idempotency_key="k", deadline=time.monotonic() + 1.5)

    assert (response.status, response.attempts) == (503, 1)


def test_a_hanging_answer_is_a_timeout_after_bounded_attempts(client, stripe):
    stripe.script(DESTINATION, [Fault("hang", seconds=3)], forever=True)
    started = time.monotonic()

    with pytest.raises(StripeTransportError) as caught:
        client.ping(DESTINATION, idempotency_key="k", deadline=started + 2.5)

    assert caught.value.kind == "timeout"
    assert 1 <= caught.value.attempts <= 4
    assert time.monotonic() - started < 2.5 + 0.5  # the deadline holds, give or take scheduling
    assert {r.idempotency_key for r in stripe.requests} == {"k"}


def test_a_slow_answer_then_a_good_one_succeeds_on_retry(client, stripe):
    stripe.script(DESTINATION, [Fault("hang", seconds=2)])

    response = client.ping(DESTINATION, idempotency_key="k", deadline=far_deadline())

    assert (response.status, response.attempts) == (200, 2)


def test_connection_refused_is_a_network_error_after_retries(stripe):
    config = StripeClientConfig(api_base="http://127.0.0.1:9", backoff_base=0.01, max_retries=2)

    with pytest.raises(StripeTransportError) as caught:
        StripeClient(FAKE_STRIPE_KEY, config).ping(DESTINATION, idempotency_key="k", deadline=far_deadline())

    assert caught.value.kind == "network_error"
    assert caught.value.attempts == 3


def test_a_connection_reset_mid_body_is_retried(client, stripe):
    stripe.script(DESTINATION, [Fault("reset")])

    response = client.ping(DESTINATION, idempotency_key="k", deadline=far_deadline())

    assert (response.status, response.attempts) == (200, 2)


def test_a_huge_body_is_not_read_whole(stripe):
    stripe.add_destination(DESTINATION)
    stripe.script(DESTINATION, [Fault("huge_body", size=3_000_000)])
    config = StripeClientConfig(api_base=stripe.url, max_body_bytes=100_000)

    response = StripeClient(FAKE_STRIPE_KEY, config).ping(
        DESTINATION, idempotency_key="k", deadline=far_deadline()
    )

    assert response.body_too_large
    assert response.body == b""


def test_list_follows_next_page_url_until_null(client, stripe):
    for n in range(1, 26):
        stripe.add_destination(f"ed_test_61ListPage{n:04d}")

    destinations = list(client.list_destinations(deadline=far_deadline(), page_size=10))

    assert len({d.id for d in destinations}) == 26
    assert sum(1 for r in stripe.requests if r.method == "GET") == 3


def test_a_post_without_an_idempotency_key_is_refused_before_sending(client, stripe):
    with pytest.raises(ValueError, match="idempotency key"):
        client.ping(DESTINATION, idempotency_key="", deadline=far_deadline())

    assert stripe.requests == []


def test_the_list_returns_the_destination_model(client, stripe):
    stripe.add_destination(
        "ed_test_61EventBridgePending01", type="amazon_eventbridge", event_source_status="pending"
    )

    listed = client.list_destinations(deadline=far_deadline())
    destination = next(d for d in listed if d.id == "ed_test_61EventBridgePending01")

    assert destination.type == "amazon_eventbridge"
    assert destination.amazon_eventbridge is not None
    assert destination.amazon_eventbridge.aws_event_source_status == "pending"


def test_the_key_is_not_in_the_client_repr_or_errors(stripe):
    client = StripeClient(FAKE_STRIPE_KEY, StripeClientConfig(api_base="http://127.0.0.1:9", max_retries=0))

    with pytest.raises(StripeTransportError) as caught:
        client.ping(DESTINATION, idempotency_key="k", deadline=far_deadline())

    assert FAKE_STRIPE_KEY not in repr(client)
    assert FAKE_STRIPE_KEY not in str(caught.value)
    assert FAKE_STRIPE_KEY not in repr(caught.value)
