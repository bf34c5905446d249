"""Watching a whole account: discovery, destination state, concurrency, rate limit, deadline, health,
transitions, SNS alerts and mutes, through the real handler, moto's server and the Stripe stand-in."""

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import (
    ROTATED_STRIPE_KEY,
    STACK_API_URL,
    Deployment,
    emf_metrics,
    reset_caches,
    wait_until,
)
from tests.support import api_event, ping_event, run_time, run_time_ms
from tools.standins.stripe import Fault

WEBHOOK = "ed_test_61FleetWebhook00000001"
PENDING_BRIDGE = "ed_test_61FleetBridgePending001"
DISABLED = "ed_test_61FleetDisabled00000001"


def run(deployment: Deployment, minute: int = 0, remaining_ms: int = 20_000) -> Any:
    when = run_time(10 * minute).isoformat()
    return deployment.invoke({"scheduled_time": when}, remaining_ms)


def configure(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_caches()


@pytest.fixture
def account(deployment):
    """A Stripe account with a webhook, an EventBridge destination whose source is pending, a disabled one."""
    stripe = deployment.stripe
    stripe.add_destination(WEBHOOK)
    stripe.add_destination(PENDING_BRIDGE, type="amazon_eventbridge", event_source_status="pending")
    stripe.add_destination(DISABLED, status="disabled", disabled_reason="no_aws_event_source_exists")
    return deployment


def test_an_empty_destination_list_discovers_every_destination_across_pages(deployment, monkeypatch):
    ids = [f"ed_test_61Discovered{n:05d}" for n in range(23)]
    for destination_id in ids:
        deployment.stripe.add_destination(destination_id)
    configure(monkeypatch, STRIPE_LIST_PAGE_SIZE="10")

    summary = run(deployment)

    assert summary["mode"] == "discovered"
    assert sorted(c["destination_id"] for c in summary["checks"]) == ids
    list_requests = [r for r in deployment.stripe.requests if r.method == "GET"]
    assert len(list_requests) == 3  # 10 + 10 + 3, following next_page_url
    assert {i["destination_id"]["S"] for i in deployment.items()} == set(ids)


def test_each_check_records_the_destination_state_and_a_disabled_one_is_not_pinged(account):
    summary = run(account)

    checks = {c["destination_id"]: c for c in summary["checks"]}
    assert checks[WEBHOOK]["destination_status"] == "enabled"
    assert checks[WEBHOOK]["destination_type"] == "webhook_endpoint"
    assert checks[PENDING_BRIDGE]["destination_type"] == "amazon_eventbridge"
    assert checks[PENDING_BRIDGE]["event_source_status"] == "pending"
    disabled = checks[DISABLED]
    assert (disabled["outcome"], disabled["destination_status"]) == ("disabled", "disabled")
    assert disabled["disabled_reason"] == "no_aws_event_source_exists"
    assert disabled["attempts"] == 0
    assert account.stripe.ping_count(DISABLED) == 0
    assert (summary["ok"], summary["failed"], summary["disabled"]) == (2, 0, 1)


def test_an_eventbridge_destination_with_a_pending_source_is_flagged_degraded(account):
    run(account)

    states = {
        d["destination_id"]: d
        for d in json.loads(account.invoke(api_event("GET", "/destinations"))["body"])["destinations"]
    }
    assert states[PENDING_BRIDGE]["health"] == "degraded"
    assert "EventBridge event source is pending" in states[PENDING_BRIDGE]["health_reason"]
    assert states[DISABLED]["health"] == "down"
    assert states[WEBHOOK]["health"] == "healthy"


def test_configured_ids_limit_the_run_and_an_unknown_one_is_not_found(account, monkeypatch):
    unknown = "ed_test_61NotInTheAccount00001"
    configure(monkeypatch, DESTINATION_IDS=f"{WEBHOOK},{unknown}")

    summary = run(account)

    outcomes = {c["destination_id"]: c["outcome"] for c in summary["checks"]}
    assert outcomes == {WEBHOOK: "ok", unknown: "not_found"}
    assert account.stripe.ping_count(PENDING_BRIDGE) == 0


def test_a_destination_that_disappears_is_reported_removed_once(account, alerts):
    run(account, minute=0)
    account.stripe.remove_destination(WEBHOOK)

    second = run(account, minute=1)
    third = run(account, minute=2)

    assert second["removed"] == [WEBHOOK]
    assert third["removed"] == []
    removed_alerts = [m for m in alerts.messages() if "REMOVED" in m["Subject"]]
    assert len(removed_alerts) == 1
    assert WEBHOOK in removed_alerts[0]["Subject"]
    states = {
        d["destination_id"]: d
        for d in json.loads(account.invoke(api_event("GET", "/destinations"))["body"])["destinations"]
    }
    assert states[WEBHOOK]["removed_at"] == run_time_ms(10)


def test_checks_run_concurrently_within_the_worker_bound(deployment, monkeypatch):
    for n in range(12):
        deployment.stripe.add_destination(f"ed_test_61Concurrent{n:05d}")
    deployment.stripe.set_latency(0.2)
    configure(monkeypatch, CHECK_WORKERS="4", STRIPE_REQUESTS_PER_SECOND="100")

    summary = run(deployment)

    assert summary["checked"] == 12
    assert 2 <= deployment.stripe.max_in_flight <= 4  # measured by the stand-in, not by a clock


def test_the_client_side_rate_limit_is_respected(deployment, monkeypatch):
    for n in range(12):
        deployment.stripe.add_destination(f"ed_test_61RateLimited{n:04d}")
    configure(monkeypatch, CHECK_WORKERS="8", STRIPE_REQUESTS_PER_SECOND="10")

    summary = run(deployment)

    starts = sorted(r.started for r in deployment.stripe.requests)
    assert summary["checked"] == 12 and len(starts) == 13  # one list page + 12 pings
    busiest_second = max(sum(1 for s in starts if first <= s < first + 1.0) for first in starts)
    assert busiest_second <= 10 + 1  # slots are 0.1 s apart; a window can touch both ends


def test_work_that_cannot_start_before_the_deadline_is_reported_not_lost(deployment, monkeypatch):
    ids = [f"ed_test_61Deadline{n:07d}" for n in range(6)]
    for destination_id in ids:
        deployment.stripe.add_destination(destination_id)
    deployment.stripe.set_latency(0.6)
    configure(monkeypatch, CHECK_WORKERS="1", DEADLINE_MARGIN_SECONDS="0.5")

    summary = run(deployment, remaining_ms=2_500)

    assert summary["not_started"], "some checks should not have started"
    assert sorted(summary["not_started"] + [c["destination_id"] for c in summary["checks"]]) == ids
    assert len(deployment.items()) == summary["checked"]


def test_a_failed_listing_falls_back_to_the_destinations_seen_before(account):
    run(account, minute=0)
    account.stripe.script_list([Fault("status", 500)], forever=True)

    summary = run(account, minute=1)

    assert summary["discovery_error"] == "listing destinations failed: HTTP 500"
    assert sorted(c["destination_id"] for c in summary["checks"]) == sorted(
        [WEBHOOK, PENDING_BRIDGE, DISABLED]
    )
    assert summary["removed"] == []


def test_health_goes_down_and_recovers_with_transitions_and_alerts(deployment, alerts, monkeypatch):
    deployment.stripe.add_destination(WEBHOOK)
    configure(monkeypatch, DESTINATION_IDS=WEBHOOK)
    run(deployment, minute=0)
    deployment.stripe.script(WEBHOOK, [Fault("status", 500, error_code="api_error")], forever=True)
    run(deployment, minute=1)
    run(deployment, minute=2)
    deployment.stripe.script(WEBHOOK, [])
    run(deployment, minute=3)
    run(deployment, minute=4)

    answer = deployment.invoke(api_event("GET", f"/destinations/{WEBHOOK}/transitions"))
    transitions = json.loads(answer["body"])["transitions"]
    assert [(t["from_health"], t["to_health"]) for t in transitions] == [
        ("down", "healthy"),
        ("degraded", "down"),
        ("healthy", "degraded"),
        (None, "healthy"),
    ]
    messages = alerts.messages()
    assert [m["Subject"] for m in messages] == [
        f"Stripe destination {WEBHOOK} is DEGRADED (was healthy)",
        f"Stripe destination {WEBHOOK} is DOWN (was degraded)",
        f"Stripe destination {WEBHOOK} is HEALTHY (was down)",
    ]
    down = messages[1]["Message"]
    assert "Last error: stripe_error: api_error" in down
    assert f"https://api.example/v1/destinations/{WEBHOOK}/pings" in down


def test_a_mute_keeps_checking_and_recording_but_sends_nothing(deployment, alerts, monkeypatch):
    deployment.stripe.add_destination(WEBHOOK)
    configure(monkeypatch, DESTINATION_IDS=WEBHOOK)
    until = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    muted = api_event("POST", f"/destinations/{WEBHOOK}/mute")
    muted["body"] = json.dumps({"until": until})

    assert deployment.invoke(muted)["statusCode"] == 200
    deployment.stripe.script(WEBHOOK, [Fault("status", 500)], forever=True)
    run(deployment, minute=0)
    run(deployment, minute=1)

    assert len(deployment.items()) == 2
    assert alerts.messages() == []
    [state] = json.loads(deployment.invoke(api_event("GET", "/destinations"))["body"])["destinations"]
    assert (state["health"], state["muted"]) == ("down", True)

    assert deployment.invoke(api_event("DELETE", f"/destinations/{WEBHOOK}/mute"))["statusCode"] == 200
    deployment.stripe.script(WEBHOOK, [])
    run(deployment, minute=2)
    run(deployment, minute=3)
    assert [m["Subject"].split(" is ")[1] for m in alerts.messages()] == ["HEALTHY (was down)"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("{}", "invalid_body"),
        ('{"until": "tomorrow"}', "invalid_body"),
        ('{"until": "2026-11-27T04:00:00"}', "invalid_body"),  # no time zone
        ('{"until": "2020-01-01T00:00:00Z"}', "invalid_until"),
        ('{"until": "2099-01-01T00:00:00Z"}', "invalid_until"),
        ("not json", "invalid_body"),
    ],
)
def test_an_invalid_mute_is_a_400(deployment, body, code):
    event = api_event("POST", f"/destinations/{WEBHOOK}/mute")
    event["body"] = body

    answer = deployment.invoke(event)

    assert (answer["statusCode"], json.loads(answer["body"])["error"]["code"]) == (400, code)


def test_an_api_ping_updates_health_and_links_alerts_to_the_stacks_api(deployment, alerts):
    deployment.stripe.script(WEBHOOK, [Fault("status", 500)], forever=True)
    deployment.stripe.add_destination(WEBHOOK)
    deployment.invoke(ping_event(WEBHOOK))
    deployment.invoke(ping_event(WEBHOOK))

    [degraded, down] = alerts.messages()
    assert "DOWN" in down["Subject"]
    assert f"{STACK_API_URL}/destinations/{WEBHOOK}/pings" in down["Message"]
    assert "DEGRADED" in degraded["Subject"]


def test_by_default_only_the_alarms_fleet_wide_metrics_are_emitted_and_each_check_is_logged(
    account, capsys, caplog
):
    capsys.readouterr()

    run(account)

    out = capsys.readouterr().out
    documents = emf_metrics(out)
    # Custom metrics are billed each: the checks emit one, fleet-wide, and nothing per destination.
    assert {name for _, values in documents for name in values} == {"CheckFailed"}
    assert {tuple(dims) for dims, _ in documents} == {("service",)}
    [run_metrics] = [values for _, values in documents]
    # A 1 or a 0 per check, the disabled one left out: FailingChecksAlarm sums them, NoSuccessfulCheckAlarm
    # takes their minimum (0: some check succeeded).
    assert sorted(run_metrics["CheckFailed"]) == [0, 0]
    # What the dashboard's per-destination views query instead.
    logged = {r.check["destination_id"]: r for r in caplog.records if r.getMessage() == "check recorded"}
    assert set(logged) == {WEBHOOK, PENDING_BRIDGE, DISABLED}
    assert (logged[WEBHOOK].health, logged[PENDING_BRIDGE].health) == ("healthy", "degraded")


def test_per_destination_metrics_are_emitted_when_asked_for(account, capsys, monkeypatch):
    configure(monkeypatch, PER_DESTINATION_METRICS="true")
    capsys.readouterr()

    run(account)

    documents = emf_metrics(capsys.readouterr().out)
    per = {dims["destination_id"]: values for dims, values in documents if "destination_id" in dims}
    assert per[DISABLED]["DestinationDisabled"] == [1]
    assert (per[WEBHOOK]["CheckSucceeded"], per[WEBHOOK]["DestinationDisabled"]) == ([1], [0])
    assert per[WEBHOOK]["DestinationHealth"] == [0]  # healthy
    assert per[PENDING_BRIDGE]["DestinationHealth"] == [1]  # degraded: the source is pending
    assert "PingLatency" in per[WEBHOOK] and "PingLatency" not in per[DISABLED]


def test_one_slow_destination_neither_stops_nor_holds_up_the_others(deployment, monkeypatch):
    slow, *others = [f"ed_test_61Isolation{n:010d}" for n in range(5)]
    for destination_id in (slow, *others):
        deployment.stripe.add_destination(destination_id)
    deployment.stripe.script(slow, [Fault("hang", seconds=3)], forever=True)
    configure(
        monkeypatch,
        DESTINATION_IDS=",".join((slow, *others)),
        CHECK_WORKERS="2",
        STRIPE_READ_TIMEOUT="0.3",
        STRIPE_MAX_RETRIES="1",
        STRIPE_REQUESTS_PER_SECOND="100",
    )

    summary = run(deployment)

    outcomes = {c["destination_id"]: c["outcome"] for c in summary["checks"]}
    assert outcomes == {slow: "timeout"} | dict.fromkeys(others, "ok")
    # While one worker waited on the slow destination, the other pinged every other one: all of their
    # pings reached Stripe before the slow destination's second (last) attempt.
    pings = [r.destination_id for r in deployment.stripe.requests if r.route == "ping"]
    last_slow_attempt = len(pings) - 1 - pings[::-1].index(slow)
    assert set(pings[:last_slow_attempt]) >= set(others)


def test_destinations_seen_enabled_are_pinged_while_the_list_is_on_its_way(deployment, monkeypatch):
    known, turned_off, newcomer, newcomer_off = (f"ed_test_61ListOverlap{n:09d}" for n in range(4))
    stripe = deployment.stripe
    for destination_id in (known, turned_off):
        stripe.add_destination(destination_id)
    configure(monkeypatch, DESTINATION_IDS=f"{known},{turned_off}", STRIPE_REQUESTS_PER_SECOND="100")
    run(deployment, minute=0)  # both checked and enabled: the table has seen them enabled
    stripe.add_destination(turned_off, status="disabled", disabled_reason="user")
    stripe.add_destination(newcomer)
    stripe.add_destination(newcomer_off, status="disabled", disabled_reason="user")
    stripe.script_list([Fault("hang", seconds=0.5)])
    configure(monkeypatch, DESTINATION_IDS=",".join((known, turned_off, newcomer, newcomer_off)))

    summary = run(deployment, minute=1)

    checks = {c["destination_id"]: c for c in summary["checks"]}
    [listing] = [r for r in stripe.requests if r.route == "list"][-1:]
    assert listing.ended is not None
    second_run = [r for r in stripe.requests if r.route == "ping" and r.started >= listing.started]
    started = {r.destination_id: r.started for r in second_run}
    # Seen enabled before: pinged at once, beside the list.
    assert started[known] < listing.ended and started[turned_off] < listing.ended
    assert checks[known]["outcome"] == "ok"
    # Disabled since it was last seen: pinged before the list said so, recorded as disabled all the same.
    assert (checks[turned_off]["outcome"], checks[turned_off]["attempts"]) == ("disabled", 1)
    assert checks[turned_off]["destination_status"] == "disabled"
    # Never seen: each waits for the list, and the disabled one is not pinged at all.
    assert started[newcomer] >= listing.ended and checks[newcomer]["outcome"] == "ok"
    assert newcomer_off not in started
    assert (checks[newcomer_off]["outcome"], checks[newcomer_off]["attempts"]) == ("disabled", 0)
    assert summary["disabled"] == 2


def test_each_check_is_stored_while_the_other_pings_are_still_on_their_way(deployment, monkeypatch):
    slow, *others = [f"ed_test_61StoredAtOnce{n:08d}" for n in range(4)]
    for destination_id in (slow, *others):
        deployment.stripe.add_destination(destination_id)
    deployment.stripe.script(slow, [Fault("hang", seconds=6)])  # answers after 6 s, within the timeout
    configure(
        monkeypatch, DESTINATION_IDS=",".join((slow, *others)), CHECK_WORKERS="4", STRIPE_READ_TIMEOUT="10"
    )
    summary: dict[str, Any] = {}
    running = threading.Thread(target=lambda: summary.update(run(deployment)))
    running.start()

    def stored() -> set[str]:
        return {i["destination_id"]["S"] for i in deployment.items()}

    wait_until(lambda: set(others) <= stored())
    slow_ping_open = [r.ended for r in deployment.stripe.requests if r.destination_id == slow] == [None]
    running.join(timeout=15)

    assert stored() == {slow, *others} and summary["checked"] == 4
    assert slow_ping_open, "the other checks were stored only after the slow ping came back"


def test_a_scheduled_run_after_a_key_rotation_re_reads_the_key_and_checks_every_destination(
    deployment, monkeypatch
):
    ids = [f"ed_test_61RotatedRun{n:010d}" for n in range(3)]
    for destination_id in ids:
        deployment.stripe.add_destination(destination_id)
    configure(monkeypatch, DESTINATION_IDS=",".join(ids), STRIPE_REQUESTS_PER_SECOND="100")
    run(deployment, minute=0)  # the environment caches the key and has seen every destination enabled
    deployment.aws.put_secret(deployment.secret_id, ROTATED_STRIPE_KEY)
    deployment.stripe.api_key = ROTATED_STRIPE_KEY  # Stripe now only accepts the rotated key

    summary = run(deployment, minute=1)

    assert summary["discovery_error"] is None
    assert {c["destination_id"]: c["outcome"] for c in summary["checks"]} == dict.fromkeys(ids, "ok")
