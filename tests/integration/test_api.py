"""The HTTPS API through the real handler, moto's server and the Stripe stand-in."""

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.conftest import FAKE_STRIPE_KEY
from tests.support import api_event, history_event, load_event, ping_event, receipt_app
from tools.standins.api_gateway import LocalApiGateway, template_routes
from tools.standins.stripe import Fault

HEALTHY = "ed_test_61DemoHealthyWebhook0001"
ERROR_KEYS = {"code", "message"}


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


def proxy_event(method: str, path: str) -> dict[str, Any]:
    """What API Gateway sends for a request its catch-all ``ANY /{proxy+}`` route took."""
    event = api_event(method, path)
    event["resource"] = event["requestContext"]["resourcePath"] = "/{proxy+}"
    event["pathParameters"] = {"proxy": path.removeprefix("/")}
    return event


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nowhere"),
        ("GET", "/destinations/ed_test_1/unknown"),
        ("POST", "/destinations/ed_test_1/ping/extra"),
        ("GET", "/destinations/ed_test_1"),
        ("GET", "/destinations/ed_test_é/unknown"),  # not a known route: 404, whatever the id
        ("DELETE", "/destinations/not-an-id/pings/2"),
        ("POST", "/receipts/extra"),
        ("GET", "/webhooks"),
    ],
)
def test_unknown_routes_are_404(deployment, method, path):
    answer = deployment.invoke(proxy_event(method, path))

    assert answer["statusCode"] == 404
    assert body(answer) == {"error": {"code": "not_found", "message": f"no route for {method} {path}"}}
    assert deployment.stripe.requests == []


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", f"/destinations/{HEALTHY}/ping", "POST"),
        ("DELETE", f"/destinations/{HEALTHY}/pings", "GET"),
        ("POST", f"/destinations/{HEALTHY}/transitions", "GET"),
        ("PUT", f"/destinations/{HEALTHY}/mute", "POST, DELETE"),
        ("POST", "/destinations", "GET"),
        ("PATCH", "/destinations/ed_test_é/ping", "POST"),  # a known route: the method decides first
    ],
)
def test_wrong_methods_on_known_routes_are_405_with_allow(deployment, method, path, allowed):
    answer = deployment.invoke(api_event(method, path))

    assert answer["statusCode"] == 405
    assert body(answer)["error"]["code"] == "method_not_allowed"
    assert answer["multiValueHeaders"]["Allow"] == [allowed]
    assert deployment.stripe.requests == []


# ------------------------------------------------------------------------------------------ gateway


def _receipt_handler() -> Any:
    return receipt_app().lambda_handler


@pytest.fixture
def gateway(deployment) -> Iterator[LocalApiGateway]:
    """The API as the template declares it (catch-alls and gateway responses included), on 127.0.0.1."""
    import app

    routes = template_routes({"PingFunction": app.lambda_handler, "ReceiptFunction": _receipt_handler()})
    with LocalApiGateway(routes) as local:
        yield local


def call(
    gateway: LocalApiGateway, method: str, path: str, *, secret: str | None = "testing"
) -> urllib3.BaseHTTPResponse:
    """``secret`` None: unsigned; another secret than the stand-in's: a wrong signature."""
    url = f"{gateway.url}{path}"
    headers: dict[str, str] = {}
    if secret is not None:
        request = AWSRequest(method=method, url=url, data=b"")
        SigV4Auth(Credentials("testing", secret), "execute-api", "us-east-1").add_auth(request)
        headers = dict(request.headers.items())
    return urllib3.request(method, url, headers=headers, retries=False)


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nowhere", 404, "not_found"),
        ("GET", "/", 404, "not_found"),
        ("GET", "/destinations/ed_test_1/unknown", 404, "not_found"),
        ("POST", "/destinations/ed_test_1/ping/extra", 404, "not_found"),
        ("GET", "/destinations/ed_test_1", 404, "not_found"),
        ("POST", "/receipts/extra", 404, "not_found"),
        ("GET", f"/destinations/{HEALTHY}/ping", 405, "method_not_allowed"),
        ("PATCH", f"/destinations/{HEALTHY}/mute", 405, "method_not_allowed"),
        ("POST", "/destinations", 405, "method_not_allowed"),
        ("GET", "/receipts", 405, "method_not_allowed"),  # ReceiptFunction's own path: its answer
        ("GET", "/webhooks/stripe", 405, "method_not_allowed"),
    ],
)
def test_signed_requests_to_unknown_routes_reach_a_function_through_the_catch_alls(
    deployment, gateway, method, path, status, code
):
    answer = call(gateway, method, path)

    assert (answer.status, answer.json()["error"]["code"]) == (status, code)
    assert set(answer.json()["error"]) == ERROR_KEYS
    if status == 405:
        assert answer.headers["Allow"] in {"GET", "POST", "POST, DELETE"}
    assert deployment.stripe.requests == []


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nowhere"), ("GET", "/webhooks/stripe"), ("POST", "/receipts"), ("GET", "/destinations")],
)
def test_unsigned_requests_get_the_gateway_403_in_the_error_shape(gateway, method, path):
    answer = call(gateway, method, path, secret=None)

    assert answer.status == 403
    assert answer.json() == {
        "error": {
            "code": "missing_authentication_token",
            "message": "no such route, or the request is not signed with SigV4",
        }
    }


def test_a_wrong_signature_gets_the_gateway_403_in_the_error_shape(gateway):
    answer = call(gateway, "GET", "/nowhere", secret="not-the-right-secret")

    assert answer.status == 403
    assert answer.json()["error"]["code"] == "invalid_signature"
    assert set(answer.json()["error"]) == ERROR_KEYS


def test_the_catch_alls_leave_the_webhook_public_and_the_rest_behind_iam(gateway):
    webhook = call(gateway, "POST", "/webhooks/stripe", secret=None)  # Stripe cannot sign with SigV4

    assert webhook.status != 403  # the function answered: no signing secret, or a bad Stripe-Signature
    assert webhook.json()["error"]["code"] in {"not_configured", "invalid_signature"}
    assert gateway.requests[-1] == ("POST", "/webhooks/stripe", webhook.status)


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


def test_each_check_logs_one_json_line_correlated_with_the_api_request(deployment, healthy, caplog):
    from stripe_monitor.observability import logger

    deployment.invoke(ping_event(HEALTHY))

    # The records as Powertools' JSON formatter writes them (it holds the invocation's correlation id).
    formatter = logger.registered_formatter
    lines = [json.loads(formatter.format(r)) for r in caplog.records if r.getMessage() == "check recorded"]
    [check_line] = lines
    request_id = load_event("api_ping.json")["requestContext"]["requestId"]
    assert check_line["correlation_id"] == request_id
    assert check_line["check"]["destination_id"] == HEALTHY
    assert check_line["level"] == "INFO"


def test_a_mute_body_over_the_limit_is_a_413(deployment):
    event = api_event("POST", f"/destinations/{HEALTHY}/mute")
    event["body"] = json.dumps({"until": "2030-01-01T00:00:00Z", "padding": "x" * 5000})

    answer = deployment.invoke(event)

    assert (answer["statusCode"], body(answer)["error"]["code"]) == (413, "body_too_large")
