"""The scheduled run and the direct invoke through the real handler and the stand-ins."""

import pytest

from tests.conftest import ROTATED_STRIPE_KEY, reset_caches
from tests.support import load_event, ping_event, run_time_ms, schedule_event
from tools.standins.stripe import Fault

HEALTHY = "ed_test_61DemoHealthyWebhook0001"
BRIDGE = "ed_test_61DemoEventBridge0002"
FAILING = "ed_test_61DemoFailing5xx0003"


@pytest.fixture
def three_destinations(deployment, monkeypatch):
    deployment.stripe.add_destination(HEALTHY)
    deployment.stripe.add_destination(BRIDGE, type="amazon_eventbridge", event_source_status="active")
    deployment.stripe.add_destination(FAILING)
    deployment.stripe.script(FAILING, [Fault("status", 500)], forever=True)
    monkeypatch.setenv("DESTINATION_IDS", f"{HEALTHY}, {BRIDGE},{FAILING}")
    reset_caches()
    return deployment


def test_a_scheduled_run_checks_every_configured_destination(three_destinations):
    summary = three_destinations.invoke(schedule_event())

    assert summary["scheduled_time"] == run_time_ms()
    assert (summary["checked"], summary["ok"], summary["failed"]) == (3, 2, 1)
    outcomes = {c["destination_id"]: c["outcome"] for c in summary["checks"]}
    assert outcomes == {HEALTHY: "ok", BRIDGE: "ok", FAILING: "stripe_error"}
    items = three_destinations.items()
    assert {i["destination_id"]["S"] for i in items} == {HEALTHY, BRIDGE, FAILING}
    assert {i["trigger"]["S"] for i in items} == {"schedule"}
    assert {i["pinged_at"]["S"] for i in items} == {run_time_ms()}


def test_a_redelivered_scheduled_run_neither_pings_nor_records_twice(three_destinations):
    three_destinations.invoke(schedule_event())
    pings_after_first_run = sum(three_destinations.stripe.ping_count(d) for d in (HEALTHY, BRIDGE, FAILING))

    again = three_destinations.invoke(schedule_event())

    assert again["checked"] == 0
    assert again["already_recorded"] == sorted([HEALTHY, BRIDGE, FAILING])
    assert (
        sum(three_destinations.stripe.ping_count(d) for d in (HEALTHY, BRIDGE, FAILING))
        == pings_after_first_run
    )
    assert len(three_destinations.items()) == 3


def test_a_scheduled_runs_idempotency_key_derives_from_the_scheduled_time(three_destinations):
    three_destinations.invoke(schedule_event())
    three_destinations.invoke(schedule_event(10))

    keys = {r.idempotency_key for r in three_destinations.stripe.requests if r.destination_id == HEALTHY}
    assert keys == {
        f"schedule-{run_time_ms()}-{HEALTHY}",
        f"schedule-{run_time_ms(10)}-{HEALTHY}",
    }
    assert three_destinations.stripe.event_count(HEALTHY) == 2


def test_a_run_that_lost_its_records_pings_again_with_the_same_key_and_gets_the_same_event(
    three_destinations,
):
    first = three_destinations.invoke(schedule_event())
    assert first["checked"] == 3
    three_destinations.aws.client("dynamodb").delete_item(
        TableName=three_destinations.table_name,
        Key={"destination_id": {"S": HEALTHY}, "pinged_at": {"S": run_time_ms()}},
    )

    again = three_destinations.invoke(schedule_event())

    assert again["checked"] == 1
    assert three_destinations.stripe.event_count(HEALTHY) == 1  # Stripe replayed the first event


def test_a_scheduled_run_with_a_malformed_time_is_refused(deployment):
    answer = deployment.invoke({"scheduled_time": "yesterday"})

    assert answer["error"]["code"] == "invalid_input"
    assert deployment.stripe.requests == []


def test_the_committed_invoke_event_pings_one_destination(deployment):
    deployment.stripe.add_destination(HEALTHY)

    record = deployment.invoke(load_event("invoke.json"))

    assert (record["destination_id"], record["outcome"], record["trigger"]) == (HEALTHY, "ok", "invoke")
    assert len(deployment.items()) == 1


def test_a_direct_invoke_with_an_invalid_id_is_refused_without_a_request(deployment):
    answer = deployment.invoke({"destination_id": "ed_test_../../x"})

    assert answer["error"]["code"] == "invalid_input"
    assert deployment.stripe.requests == []
    assert deployment.items() == []


def test_an_unknown_event_shape_is_refused(deployment):
    assert deployment.invoke({"hello": "world"})["error"]["code"] == "unknown_event"


def test_a_rotated_key_is_re_read_once_after_a_401(deployment):
    deployment.stripe.add_destination(HEALTHY)
    deployment.invoke(ping_event(HEALTHY))  # caches the current key
    deployment.aws.put_secret(deployment.secret_id, ROTATED_STRIPE_KEY)
    deployment.stripe.api_key = ROTATED_STRIPE_KEY  # Stripe now only accepts the rotated key

    record = deployment.invoke(load_event("invoke.json"))

    assert record["outcome"] == "ok"
    assert record["attempts"] == 2
    statuses = [r.status for r in deployment.stripe.requests[-2:]]
    assert statuses == [401, 200]


def test_a_401_with_an_unchanged_key_is_recorded_as_unauthorized(deployment):
    deployment.stripe.add_destination(HEALTHY)
    deployment.stripe.api_key = ROTATED_STRIPE_KEY  # the secret still holds the old key

    record = deployment.invoke(load_event("invoke.json"))

    assert (record["outcome"], record["http_status"], record["attempts"]) == ("unauthorized", 401, 1)
