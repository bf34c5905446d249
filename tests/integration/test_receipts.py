"""Closing the loop end to end: ping -> delivery (signed webhook, EventBridge, the user's application)
-> receipt -> record updated; late and lost; duplicates; unsolicited receipts; signature failures; wait.

Real parts only: the Stripe stand-in delivers over HTTP to a local API Gateway stand-in (SigV4 checked)
in front of the real ReceiptFunction handler, with moto's server behind both functions.
"""

import json
import time
import urllib.error
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3

from stripe_monitor.stripe.signature import sign
from stripe_monitor.wiring import ping_services
from tests.conftest import Deployment, emf_metrics, reset_caches
from tests.support import (
    ROOT,
    FakeLambdaContext,
    api_event,
    load_module_by_path,
    ping_event,
    receipt_app,
    schedule_event,
)
from tools.standins.api_gateway import LocalApiGateway, Route

WEBHOOK_SECRET = "whsec_FAKEsigningSecretForMonitorTests01"
OLD_WEBHOOK_SECRET = "whsec_FAKEpreviousSigningSecretForTests1"
PROBE = "ed_test_61ProbeWebhook000000001"
BRIDGE = "ed_test_61ReceiptBridge00000001"
APPLICATION = "ed_test_61ReceiptApplication001"


RECEIPT_APP = receipt_app()
SNIPPET = load_module_by_path("report_receipt_snippet", ROOT / "docs/snippets/report_receipt.py")


def items_of(deployment: Deployment, destination_id: str) -> list[dict[str, Any]]:
    return [i for i in deployment.items() if i["destination_id"]["S"] == destination_id]


def check_of(deployment: Deployment, destination_id: str, *, until: str | None = None) -> dict[str, Any]:
    """The destination's newest check; with ``until``, waits (10 s at most) for that delivery status."""
    for _ in range(200):
        records, _ = ping_services().queries.history(destination_id, limit=1, cursor=None)
        record = records[0].to_dict()
        if until is None or record["delivery_status"] == until:
            return record
        time.sleep(0.05)
    raise AssertionError(f"{destination_id}: delivery status stayed {record['delivery_status']}, not {until}")


@pytest.fixture
def receipts(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalApiGateway]:
    """The stack's receipt channels wired up: signing secrets in Secrets Manager, the API on 127.0.0.1,
    a probe webhook destination pointed at it, an EventBridge destination whose bus feeds the function."""
    import app

    deployment.aws.put_secret(
        f"{deployment.secret_id}/webhook", json.dumps({"signing_secrets": [WEBHOOK_SECRET]})
    )
    monkeypatch.setenv("WEBHOOK_SECRET_ID", f"{deployment.secret_id}/webhook")
    monkeypatch.setenv("RECEIPT_DESTINATION_IDS", f"{PROBE},{APPLICATION}")
    monkeypatch.setenv("RECEIPT_EVENT_BUS_NAMES", f"aws.partner/stripe.com/{BRIDGE}")
    reset_caches()
    routes = [
        Route("POST", "/destinations/{destination_id}/ping", app.lambda_handler),
        Route("POST", "/webhooks/stripe", RECEIPT_APP.lambda_handler, iam=False),
        Route("POST", "/receipts", RECEIPT_APP.lambda_handler),
    ]
    with LocalApiGateway(routes) as gateway:
        deployment.stripe.add_destination(
            PROBE, url=f"{gateway.url}/webhooks/stripe", signing_secret=WEBHOOK_SECRET
        )
        deployment.stripe.add_destination(BRIDGE, type="amazon_eventbridge")
        deployment.stripe.add_destination(APPLICATION)
        deployment.stripe.on_eventbridge = lambda envelope: RECEIPT_APP.lambda_handler(
            envelope, FakeLambdaContext()
        )
        yield gateway
    reset_caches()


def post_webhook(gateway: LocalApiGateway, body: bytes, headers: dict[str, str]) -> urllib3.BaseHTTPResponse:
    return urllib3.request(
        "POST", f"{gateway.url}/webhooks/stripe", body=body, headers=headers, retries=False
    )


def signed(
    payload: dict[str, Any], secret: str = WEBHOOK_SECRET, at: int | None = None
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {"Stripe-Signature": sign(body, secret, int(at if at is not None else time.time()))}


def thin_ping(destination_id: str, event_id: str = "evt_test_ThinPing000000001") -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "v2.core.event",
        "type": "v2.core.event_destination.ping",
        "created": "2026-11-27T04:00:00.000Z",
        "livemode": False,
        "context": None,
        "related_object": {
            "id": destination_id,
            "type": "v2.core.event_destination",
            "url": f"/v2/x/{destination_id}",
        },
    }


def state_of(deployment: Deployment, destination_id: str, *, until_health: str) -> dict[str, Any]:
    """The destination in ``GET /destinations``, once it has that health (waits, bounded)."""
    for _ in range(100):
        answer = deployment.invoke(api_event("GET", "/destinations"))
        states: list[dict[str, Any]] = json.loads(answer["body"])["destinations"]
        [state] = [d for d in states if d["destination_id"] == destination_id]
        if state["health"] == until_health:
            break
        time.sleep(0.05)
    return state


def test_a_ping_delivered_to_the_probe_webhook_is_recorded_as_delivered(
    deployment, receipts, capsys, monkeypatch
):
    monkeypatch.setenv("PER_DESTINATION_METRICS", "true")
    reset_caches()
    record = json.loads(deployment.invoke(ping_event(PROBE))["body"])

    assert record["delivery_status"] == "pending"
    delivered = check_of(deployment, PROBE, until="delivered")
    assert delivered["delivery_channel"] == "webhook"
    assert delivered["deliveries"] == 1
    assert 0 <= delivered["delivery_latency_ms"] < 120_000
    assert delivered["delivered_at"] >= delivered["event_created"]
    latencies = [
        values["DeliveryLatency"]
        for dims, values in emf_metrics(capsys.readouterr().out)
        if dims.get("destination_id") == PROBE and "DeliveryLatency" in values
    ]
    assert latencies == [[delivered["delivery_latency_ms"]]]


def test_a_ping_delivered_through_eventbridge_is_recorded(deployment, receipts):
    deployment.invoke(ping_event(BRIDGE))

    delivered = check_of(deployment, BRIDGE, until="delivered")

    assert delivered["delivery_channel"] == "eventbridge"


def test_the_documented_snippet_reports_an_application_receipt_with_sigv4(deployment, receipts, monkeypatch):
    record = json.loads(deployment.invoke(ping_event(APPLICATION))["body"])
    event = deployment.stripe.event(record["event_id"])
    assert event is not None
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")

    answer = SNIPPET.report_ping_receipt(event, api_url=receipts.url, region="us-east-1")

    assert answer["status"] == "matched"
    delivered = check_of(deployment, APPLICATION)
    assert (delivered["delivery_status"], delivered["delivery_channel"]) == ("delivered", "application")


def test_receipts_need_iam_a_bad_signature_is_refused(deployment, receipts, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-right-secret")

    with pytest.raises(urllib.error.HTTPError) as refused:
        SNIPPET.report_ping_receipt(thin_ping(APPLICATION), api_url=receipts.url, region="us-east-1")
    assert refused.value.code == 403
    unsigned = urllib3.request("POST", f"{receipts.url}/receipts", body=b"{}", retries=False)
    assert unsigned.status == 403


def test_duplicate_deliveries_count_but_do_not_move_delivered_at(deployment, receipts):
    deployment.stripe.put_destination(
        {
            "id": PROBE,
            "url": f"{receipts.url}/webhooks/stripe",
            "signing_secret": WEBHOOK_SECRET,
            "delivery": "duplicate",
        }
    )
    deployment.invoke(ping_event(PROBE))
    first = check_of(deployment, PROBE, until="delivered")

    for _ in range(100):
        if len(deployment.stripe.deliveries) == 2:
            break
        time.sleep(0.05)
    again = check_of(deployment, PROBE)

    assert [status for _, _, status in deployment.stripe.deliveries] == [200, 200]
    assert again["deliveries"] == 2
    assert again["delivered_at"] == first["delivered_at"]


def test_a_receipt_that_arrives_before_its_scheduled_check_is_stored_is_still_matched(
    deployment, receipts, monkeypatch
):
    slow = "ed_test_61SlowOtherDestination1"
    deployment.stripe.add_destination(slow)
    deployment.stripe.set_latency(slow, 0.5)  # the run writes its records after this one answers
    monkeypatch.setenv("DESTINATION_IDS", f"{PROBE},{slow}")
    reset_caches()

    deployment.invoke(schedule_event())

    assert deployment.stripe.deliveries and deployment.stripe.deliveries[0][2] == 200  # arrived mid-run
    delivered = check_of(deployment, PROBE, until="delivered")
    assert delivered["trigger"] == "schedule"


def test_a_delivery_after_the_sla_is_late_and_degrades_health(deployment, receipts, monkeypatch):
    monkeypatch.setenv("DELIVERY_SLA_SECONDS", "1")
    reset_caches()
    reset_caches()
    deployment.stripe.put_destination(
        {
            "id": PROBE,
            "url": f"{receipts.url}/webhooks/stripe",
            "signing_secret": WEBHOOK_SECRET,
            "delivery_delay": 1.3,
        }
    )

    deployment.invoke(ping_event(PROBE))

    late = check_of(deployment, PROBE, until="late")
    assert late["delivery_latency_ms"] > 1000
    # The receipt function marks the check late, then counts it into health: wait (bounded) for both.
    state = state_of(deployment, PROBE, until_health="degraded")
    assert state["health"] == "degraded"
    assert "delivered late" in state["health_reason"]


def test_a_ping_never_delivered_is_lost_at_the_sweep_and_counts_as_a_failure(
    deployment, alerts, receipts, monkeypatch, capsys
):
    monkeypatch.setenv("LOST_AFTER_SECONDS", "1")
    monkeypatch.setenv("DESTINATION_IDS", PROBE)
    reset_caches()
    deployment.stripe.put_destination({"id": PROBE, "delivery": "drop"})
    deployment.invoke(ping_event(PROBE))
    deployment.invoke(ping_event(PROBE))
    time.sleep(1.1)  # let lost_after pass; the assertions are on records, not on time
    capsys.readouterr()

    summary = deployment.invoke(schedule_event())

    assert len(summary["lost"]) == 2  # the two API pings; the run's own ping is still pending
    documents = emf_metrics(capsys.readouterr().out)
    fleet_lost = [v["LostPings"] for d, v in documents if "destination_id" not in d and "LostPings" in v]
    assert sum(sum(values) for values in fleet_lost) == 2  # what the LostPingsAlarm sums
    statuses = sorted(i["delivery_status"]["S"] for i in items_of(deployment, PROBE))
    assert statuses == ["lost", "lost", "pending"]
    [state] = json.loads(deployment.invoke(api_event("GET", "/destinations"))["body"])["destinations"]
    assert state["health"] == "down"
    assert "not delivered within 1 s" in state["health_reason"]
    down = next(m for m in alerts.messages() if "is DOWN" in m["Subject"])
    assert down["Message"].count("not delivered within 1 s") == 1  # once, not also as the error
    assert f"https://api.example/v1/destinations/{PROBE}/pings" in down["Message"]


def test_a_run_that_takes_longer_than_lost_after_does_not_declare_its_own_pings_lost(
    deployment, receipts, monkeypatch
):
    slow = "ed_test_61SlowOtherDestination1"
    deployment.stripe.add_destination(slow)
    deployment.stripe.set_latency(slow, 1.5)  # the run ends over 1 s after PROBE's ping event was created
    monkeypatch.setenv("LOST_AFTER_SECONDS", "1")
    monkeypatch.setenv("DESTINATION_IDS", f"{PROBE},{slow}")
    reset_caches()
    deployment.stripe.put_destination({"id": PROBE, "delivery": "drop"})

    summary = deployment.invoke(schedule_event())

    assert summary["lost"] == []
    assert [i["delivery_status"]["S"] for i in items_of(deployment, PROBE)] == ["pending"]


def test_a_destination_without_a_receipt_channel_stays_unmonitored_not_lost(
    deployment, receipts, monkeypatch
):
    plain = "ed_test_61PlainNoReceipts00001"
    deployment.stripe.add_destination(plain)
    monkeypatch.setenv("LOST_AFTER_SECONDS", "1")
    monkeypatch.setenv("DESTINATION_IDS", plain)
    reset_caches()
    deployment.invoke(ping_event(plain))
    time.sleep(1.1)

    summary = deployment.invoke(schedule_event())

    assert summary["lost"] == []
    assert {i["delivery_status"]["S"] for i in items_of(deployment, plain)} == {"unmonitored"}


def test_a_receipt_for_an_event_this_stack_did_not_send_is_kept_without_making_up_a_destination(
    deployment, receipts
):
    other = "ed_test_61DashboardPinged00001"
    deployment.stripe.add_destination(
        other, url=f"{receipts.url}/webhooks/stripe", signing_secret=WEBHOOK_SECRET
    )

    deployment.stripe.deliver_event(other, thin_ping(other, "evt_test_FromTheDashboard0001"))

    for _ in range(100):
        receipt = [i for i in deployment.aws.client("dynamodb").scan(TableName=deployment.table_name)["Items"]
                   if i["destination_id"]["S"] == f"#receipt#{other}"]  # fmt: skip
        if receipt:
            break
        time.sleep(0.05)
    assert "checks" not in receipt[0]  # unsolicited: no check of this stack carries the event
    assert receipt[0]["deliveries"] == {"N": "1"}
    assert items_of(deployment, other) == []  # no check was invented
    states = json.loads(deployment.invoke(api_event("GET", "/destinations"))["body"])["destinations"]
    assert other not in {s["destination_id"] for s in states}  # nor a destination to list or ping


@pytest.mark.parametrize(
    ("make_request", "reason"),
    [
        (lambda: signed(thin_ping(PROBE), secret="whsec_SomebodyElsesSecret000000000"), "no valid signature"),
        (lambda: (b'{"tampered": true}', signed(thin_ping(PROBE))[1]), "no valid signature"),
        # 60 s past the 300 s tolerance: a slow machine cannot bring the time back inside it.
        (lambda: signed(thin_ping(PROBE), at=int(time.time()) - 360), "too old"),
        (lambda: signed(thin_ping(PROBE), at=int(time.time()) + 360), "in the future"),
        (lambda: (json.dumps(thin_ping(PROBE)).encode(), {}), "missing Stripe-Signature"),
        (lambda: (json.dumps(thin_ping(PROBE)).encode(), {"Stripe-Signature": "v1=abc"}), "malformed"),
        (lambda: (json.dumps(thin_ping(PROBE)).encode(), {"Stripe-Signature": "t=1,v0=abc"}), "malformed"),
    ],
)
def test_every_signature_failure_is_a_400_with_a_reason_and_nothing_is_recorded(
    deployment, receipts, make_request, reason
):
    body, headers = make_request()

    answer = post_webhook(receipts, body, headers)

    assert answer.status == 400
    assert reason in answer.json()["error"]["message"]
    assert not [i for i in deployment.aws.client("dynamodb").scan(TableName=deployment.table_name)["Items"]
                if i["destination_id"]["S"].startswith("#receipt#")]  # fmt: skip


def test_a_signed_body_that_is_not_json_is_a_400(deployment, receipts):
    body = b"definitely not json"
    answer = post_webhook(receipts, body, {"Stripe-Signature": sign(body, WEBHOOK_SECRET, int(time.time()))})

    assert (answer.status, answer.json()["error"]["code"]) == (400, "invalid_body")


SNAPSHOT_EVENT = {"id": "evt_1Snap", "object": "event", "type": "customer.created", "data": {"object": {}}}


@pytest.mark.parametrize(
    "event",
    [thin_ping(PROBE) | {"type": "v1.billing.meter.error_report_triggered"}, SNAPSHOT_EVENT],
    ids=["v2 thin event", "v1 snapshot event"],
)
def test_a_verified_event_of_another_type_is_a_200_and_ignored(deployment, receipts, event):
    body, headers = signed(event)

    answer = post_webhook(receipts, body, headers)

    assert (answer.status, answer.json()) == (200, {"status": "ignored", "type": event["type"]})
    assert deployment.items() == []


def test_signing_secrets_can_be_rotated(deployment, receipts):
    secret_id = f"{deployment.secret_id}/webhook"
    deployment.aws.put_secret(secret_id, f"{WEBHOOK_SECRET}, {OLD_WEBHOOK_SECRET}")
    reset_caches()
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    body, headers = signed(thin_ping(PROBE, "evt_test_SignedWithOldSecret01"), secret=OLD_WEBHOOK_SECRET)
    assert post_webhook(receipts, body, headers).status == 200  # either current secret verifies

    new_secret = "whsec_FAKEbrandNewSigningSecret000001"
    deployment.aws.put_secret(secret_id, new_secret)  # rotated while the old list is cached
    body, headers = signed(thin_ping(PROBE, "evt_test_SignedWithNewSecret01"), secret=new_secret)
    assert post_webhook(receipts, body, headers).status == 200  # re-read once after a mismatch


def test_ping_and_wait_answers_the_end_to_end_verdict(deployment, receipts):
    event = api_event("POST", f"/destinations/{PROBE}/ping", query={"wait": "5"})

    answer = deployment.invoke(event)

    body = json.loads(answer["body"])
    assert answer["statusCode"] == 200
    assert body["verdict"]["accepted"] is True
    assert body["verdict"]["delivered"] is True
    assert body["verdict"]["delivery_status"] == "delivered"
    assert body["verdict"]["delivery_latency_ms"] is not None


def test_ping_and_wait_times_out_with_a_504_when_nothing_arrives(deployment, receipts):
    deployment.stripe.put_destination({"id": PROBE, "delivery": "drop"})
    event = api_event("POST", f"/destinations/{PROBE}/ping", query={"wait": "1"})

    answer = deployment.invoke(event)

    body = json.loads(answer["body"])
    assert answer["statusCode"] == 504
    assert (body["verdict"]["accepted"], body["verdict"]["delivered"]) == (True, False)
    assert body["delivery_status"] == "pending"


@pytest.mark.parametrize("wait", ["0", "26", "x", "-1"])
def test_an_out_of_range_wait_is_a_400_and_nothing_is_sent(deployment, receipts, wait):
    answer = deployment.invoke(api_event("POST", f"/destinations/{PROBE}/ping", query={"wait": wait}))

    assert (answer["statusCode"], json.loads(answer["body"])["error"]["code"]) == (400, "invalid_wait")
    assert deployment.stripe.ping_count(PROBE) == 0


def receipt_function_call(path: str, body: str) -> dict[str, Any]:
    event = api_event("POST", path)
    event["body"] = body
    answer: dict[str, Any] = RECEIPT_APP.lambda_handler(event, FakeLambdaContext())
    return answer


def test_a_webhook_body_over_the_limit_is_a_413_and_nothing_is_recorded(deployment, receipts):
    body, headers = signed(thin_ping(PROBE) | {"padding": "x" * RECEIPT_APP.MAX_WEBHOOK_BYTES})

    answer = post_webhook(receipts, body, headers)

    assert (answer.status, answer.json()["error"]["code"]) == (413, "body_too_large")
    assert deployment.items() == []


def test_an_application_receipt_over_the_limit_is_a_413_as_on_every_route(deployment, receipts):
    answer = receipt_function_call("/receipts", "x" * (RECEIPT_APP.MAX_RECEIPT_BYTES + 1))

    assert (answer["statusCode"], json.loads(answer["body"])["error"]["code"]) == (413, "body_too_large")


def test_a_webhook_without_a_configured_signing_secret_is_a_503_that_says_so(deployment, monkeypatch):
    monkeypatch.delenv("WEBHOOK_SECRET_ID", raising=False)
    reset_caches()
    reset_caches()
    body, headers = signed(thin_ping(PROBE))
    event = api_event("POST", "/webhooks/stripe", headers=headers)
    event["body"] = body.decode()

    answer = RECEIPT_APP.lambda_handler(event, FakeLambdaContext())

    assert answer["statusCode"] == 503
    assert json.loads(answer["body"])["error"]["code"] == "not_configured"
    assert deployment.items() == []
