"""The HTTPS API through the real handler, moto's server and the Stripe stand-in."""

import json
import time

import pytest

from tests.conftest import FAKE_STRIPE_KEY, load_event
from tests.integration.api_events import api_event, history_event, ping_event
from tests.local.stripe_standin import Fault

HEALTHY = "ed_test_61DemoHealthyWebhook0001"


def body(response):
    return json.loads(response["body"])


@pytest.fixture
def healthy(deployment):
    deployment.stripe.add_destination(HEALTHY)
    return HEALTHY


def test_the_committed_api_ping_event_pings_and_records(deployment, healthy):
    response = deployment.invoke(load_event("api_ping.json"))

    assert response["statusCode"] == 200
    record = body(response)
    assert record["destination_id"] == HEALTHY
    assert record["outcome"] == "ok"
    assert record["trigger"] == "api"
    assert record["idempotency_key"] == "demo-api-ping-0001"  # the request's Idempotency-Key header
    assert deployment.stripe.requests[-1].idempotency_key == "demo-api-ping-0001"
    [item] = deployment.items()
    assert item["pinged_at"]["S"] == record["pinged_at"]
    assert item["event_id"]["S"] == record["event_id"]


def test_the_record_has_every_contract_field(deployment, healthy):
    record = body(deployment.invoke(ping_event(healthy)))

    assert set(record) == {
        "destination_id", "pinged_at", "outcome", "trigger", "http_status", "attempts", "latency_ms",
        "event_id", "event_created", "livemode", "stripe_request_id", "idempotency_key", "error_code",
        "error_message", "expires_at", "destination_status", "disabled_reason", "destination_type",
        "event_source_status", "delivery_status", "delivered_at", "delivery_channel", "delivery_latency_ms",
        "deliveries",
    }  # fmt: skip
    assert len(record["pinged_at"]) == len("2026-11-27T04:00:00.123Z") and record["pinged_at"].endswith("Z")


def test_without_a_header_each_ping_gets_its_own_idempotency_key(deployment, healthy):
    first = body(deployment.invoke(ping_event(healthy)))
    second = body(deployment.invoke(ping_event(healthy)))

    assert first["idempotency_key"] != second["idempotency_key"]
    assert first["event_id"] != second["event_id"]


def test_expires_at_follows_the_retention_setting(deployment, healthy, monkeypatch):
    monkeypatch.setenv("RESULT_RETENTION_DAYS", "7")
    from tests.conftest import reset_caches

    reset_caches()
    record = body(deployment.invoke(ping_event(healthy)))

    assert abs(record["expires_at"] - (time.time() + 7 * 86400)) < 120


@pytest.mark.parametrize(
    ("fault", "status", "outcome"),
    [
        (Fault("status", 500), 502, "stripe_error"),
        (Fault("status", 429), 502, "rate_limited"),
        (Fault("status", 401), 502, "unauthorized"),
        (Fault("hang", seconds=3), 504, "timeout"),
        (Fault("reset"), 502, "network_error"),
        (Fault("wrong_event_type"), 502, "invalid_response"),
    ],
)
def test_each_failure_answers_its_status_with_the_record_as_body(deployment, healthy, fault, status, outcome):
    deployment.stripe.script(healthy, [fault], forever=True)

    response = deployment.invoke(ping_event(healthy), remaining_ms=6_000)

    assert response["statusCode"] == status
    assert body(response)["outcome"] == outcome
    [item] = deployment.items()
    assert item["outcome"]["S"] == outcome


def test_an_unknown_destination_is_a_404_and_recorded(deployment):
    response = deployment.invoke(ping_event("ed_test_61NotInThisAccount0001"))

    assert response["statusCode"] == 404
    assert body(response)["outcome"] == "not_found"
    assert len(deployment.items()) == 1


@pytest.mark.parametrize(
    "bad_id", ["evt_123", "ed_test_x%2F..", "ed_test_é", "ED_TEST_123", "ed_test_" + "a" * 120]
)
def test_an_invalid_id_is_a_400_and_nothing_is_sent_or_recorded(deployment, bad_id):
    response = deployment.invoke(ping_event(bad_id))

    assert response["statusCode"] == 400
    assert body(response)["error"]["code"] == "invalid_destination_id"
    assert deployment.stripe.requests == []
    assert deployment.items() == []


def test_an_invalid_idempotency_key_is_a_400(deployment, healthy):
    response = deployment.invoke(ping_event(healthy, idempotency_key="has space"))

    assert response["statusCode"] == 400
    assert body(response)["error"]["code"] == "invalid_idempotency_key"
    assert deployment.stripe.requests == []


def test_history_is_newest_first_and_paginated_with_a_cursor(deployment, healthy):
    made = [body(deployment.invoke(ping_event(healthy)))["pinged_at"] for _ in range(5)]

    first = body(deployment.invoke(history_event(healthy, limit="2")))
    second = body(deployment.invoke(history_event(healthy, limit="2", cursor=first["next_cursor"])))
    third = body(deployment.invoke(history_event(healthy, limit="2", cursor=second["next_cursor"])))

    seen = [p["pinged_at"] for page in (first, second, third) for p in page["pings"]]
    assert seen == sorted(made, reverse=True)
    assert third["next_cursor"] is None


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", "1.5"])
def test_history_limit_out_of_bounds_is_a_400(deployment, limit):
    response = deployment.invoke(history_event(HEALTHY, limit=limit))

    assert response["statusCode"] == 400
    assert body(response)["error"]["code"] == "invalid_limit"


def test_history_with_a_forged_cursor_is_a_400(deployment):
    response = deployment.invoke(history_event(HEALTHY, cursor="not-a-cursor"))

    assert (response["statusCode"], body(response)["error"]["code"]) == (400, "invalid_cursor")


def test_destinations_lists_the_latest_check_of_each(deployment, healthy):
    other = "ed_test_61SecondDestination001"
    deployment.invoke(ping_event(healthy))
    latest_of_healthy = body(deployment.invoke(ping_event(healthy)))
    deployment.invoke(ping_event(other))

    response = deployment.invoke(load_event("api_destinations.json"))

    assert response["statusCode"] == 200
    latest = {d["destination_id"]: d for d in body(response)["destinations"]}
    assert set(latest) == {healthy, other}
    assert latest[healthy]["last_check"]["pinged_at"] == latest_of_healthy["pinged_at"]
    assert latest[healthy]["health"] == "healthy"
    assert latest[other]["last_check"]["outcome"] == "not_found"
    assert latest[other]["health"] == "degraded"


def test_the_committed_history_event_reads_history(deployment, healthy):
    deployment.invoke(ping_event(healthy))

    response = deployment.invoke(load_event("api_history.json"))

    assert response["statusCode"] == 200
    assert len(body(response)["pings"]) == 1


def test_unknown_routes_are_404_and_wrong_methods_405(deployment):
    unknown = deployment.invoke(api_event("GET", "/nowhere"))
    wrong_method = deployment.invoke(api_event("GET", f"/destinations/{HEALTHY}/ping"))

    assert (unknown["statusCode"], body(unknown)["error"]["code"]) == (404, "not_found")
    assert wrong_method["statusCode"] == 405
    assert wrong_method["multiValueHeaders"]["Allow"] == ["POST"]
    assert deployment.stripe.requests == []


def test_a_missing_secret_is_a_recorded_config_error_and_a_500(deployment, healthy, monkeypatch):
    from tests.conftest import reset_caches

    monkeypatch.setenv("STRIPE_SECRET_ID", "stripe-monitor/does-not-exist")
    reset_caches()

    response = deployment.invoke(ping_event(healthy))

    assert response["statusCode"] == 500
    record = body(response)
    assert record["outcome"] == "config_error"
    assert "stripe-monitor/does-not-exist" in record["error_message"]
    assert deployment.stripe.requests == []
    assert [i["outcome"]["S"] for i in deployment.items()] == ["config_error"]


@pytest.mark.parametrize(
    ("secret_value", "problem"),
    [
        ("not-a-stripe-key", "does not hold a Stripe secret key"),
        ('{"apikey": "x"}', "api_key"),
        ("{broken", "JSON"),
    ],
)
def test_a_malformed_secret_is_a_config_error_that_names_the_problem_not_the_value(
    deployment, healthy, secret_value, problem
):
    deployment.aws.put_secret(deployment.secret_id, secret_value)

    response = deployment.invoke(ping_event(healthy))

    assert response["statusCode"] == 500
    assert problem in body(response)["error_message"]
    assert secret_value not in response["body"]
    assert deployment.stripe.requests == []


def test_a_json_secret_with_api_key_works(deployment, healthy):
    deployment.aws.put_secret(deployment.secret_id, json.dumps({"api_key": FAKE_STRIPE_KEY}))

    assert deployment.invoke(ping_event(healthy))["statusCode"] == 200
