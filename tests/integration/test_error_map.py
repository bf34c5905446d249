"""One error map for both functions: every error an answer in the API's shape, a bug a logged 500."""

import json

import pytest

from stripe_monitor.logic.deliveries import Deliveries
from stripe_monitor.logic.queries import Queries
from tests.integration.test_receipts import receipt_function_call
from tests.support import api_event

REQUEST_ID = "6f1c2a7e-0d3b-4c8e-9a51-2b7d4e0c1a01"  # events/api_ping.json's requestContext.requestId


def test_an_unexpected_error_in_a_route_is_a_logged_500_with_the_request_id(deployment, monkeypatch, caplog):
    def broken(self: Queries) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Queries, "destinations", broken)

    answer = deployment.invoke(api_event("GET", "/destinations"))

    body = json.loads(answer["body"])
    assert answer["statusCode"] == 500
    assert body == {
        "error": {"code": "internal_error", "message": "unexpected error"},
        "request_id": REQUEST_ID,
    }
    assert "a bug" not in answer["body"]
    [logged] = [r for r in caplog.records if r.getMessage() == "unexpected error"]
    assert logged.exc_info is not None and "a bug" in str(logged.exc_info[1])


def test_a_bug_on_a_request_without_a_request_id_is_still_a_500(deployment, monkeypatch):
    monkeypatch.setattr(Queries, "destinations", lambda self: 1 / 0)
    event = api_event("GET", "/destinations")
    del event["requestContext"]["requestId"]

    answer = deployment.invoke(event)

    assert answer["statusCode"] == 500
    assert json.loads(answer["body"])["request_id"] is None


def test_the_receipt_function_answers_a_bug_the_same_way(deployment, monkeypatch):
    def broken(self: Deliveries, receipt: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Deliveries, "record", broken)
    body = json.dumps({"event_id": "evt_test_1", "destination_id": "ed_test_61ErrorMap0000001"})

    answer = receipt_function_call("/receipts", body)

    assert answer["statusCode"] == 500
    assert json.loads(answer["body"])["error"]["code"] == "internal_error"


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/destinations/ed_test_61ErrorMap0000001/mute", "x" * 5000, 413, "body_too_large"),
        ("/destinations/ed_test_61ErrorMap0000001/mute", "{}", 400, "invalid_body"),
        (
            "/destinations/ed_test_61ErrorMap0000001/mute",
            '{"until": "2000-01-01T00:00:00Z"}',
            400,
            "invalid_until",
        ),
    ],
)
def test_the_ping_functions_errors_share_one_shape(deployment, path, body, status, code):
    event = api_event("POST", path)
    event["body"] = body

    answer = deployment.invoke(event)

    error = json.loads(answer["body"])["error"]
    assert (answer["statusCode"], error["code"]) == (status, code)
    assert set(error) == {"code", "message"} and error["message"]
