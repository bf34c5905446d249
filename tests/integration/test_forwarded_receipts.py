"""Forwarded receipts end to end, and the verdicts that rest on receipts.

The user's application (a small HTTP server) gets the ping event that Stripe's stand-in signs with the
destination's secret, and forwards it unchanged to the stack's public webhook route on a local API Gateway,
in front of the real ReceiptFunction handler; the monitor verifies it with the secrets the signing-secret
map lists for that destination. Also: which destinations count as monitored, a receipt that finds an old
check, and a receipt after its ping was declared lost.
"""

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stripe_monitor.stripe.signature import sign
from stripe_monitor.wiring import ping_services
from tests.conftest import Deployment, emf_metrics, reset_caches
from tests.forwarding import (
    APPLICATION,
    APPLICATION_SECRET,
    NEIGHBOUR,
    NEIGHBOUR_SECRET,
    PROBE,
    SHARED_SECRET,
    Delivery,
    ForwardingStack,
    forwarding_stack,
    secret_map,
)
from tests.support import api_event, schedule_event
from tools.standins.aws_faults import PUT_ITEM, AwsFault, AwsFaultProxy


@pytest.fixture
def stack(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Iterator[ForwardingStack]:
    with forwarding_stack(deployment, monkeypatch) as built:
        yield built


def state_of(stack: ForwardingStack, destination_id: str) -> dict[str, Any]:
    """The destination as ``GET /destinations`` lists it."""
    answer = stack.deployment.invoke(api_event("GET", "/destinations"))
    states: list[dict[str, Any]] = json.loads(answer["body"])["destinations"]
    [state] = [s for s in states if s["destination_id"] == destination_id]
    return state


def resigned(delivery: Delivery, secret: str, at: int | None = None) -> str:
    """The delivery's body signed again, as somebody holding ``secret`` could sign it."""
    return sign(delivery.body, secret, int(time.time()) if at is None else at)


def delivery_latencies(stdout: str, destination_id: str) -> list[Any]:
    return [
        value
        for dimensions, values in emf_metrics(stdout)
        if dimensions.get("destination_id") == destination_id
        for value in values.get("DeliveryLatency", [])
    ]


def without_count(check: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in check.items() if name != "deliveries"}


def lost_pings(stdout: str) -> float:
    """The fleet-wide LostPings sum (what the LostPingsAlarm adds up)."""
    return sum(
        sum(values["LostPings"])
        for dimensions, values in emf_metrics(stdout)
        if "destination_id" not in dimensions and "LostPings" in values
    )


# -- forwarded receipts ---------------------------------------------------------------------------------


def test_a_forwarded_ping_verified_with_its_destinations_secret_is_delivered_by_the_application(
    stack, capsys
):
    record, delivery = stack.ping_and_capture()
    assert record["delivery_status"] == "pending"  # the signing-secret map alone makes it monitored

    answer = stack.forward(delivery.body, delivery.signature)

    assert answer.status == 200
    assert answer.json()["status"] == "matched"
    check = stack.check(APPLICATION, record["pinged_at"])
    assert (check["delivery_status"], check["delivery_channel"]) == ("delivered", "application")
    assert check["deliveries"] == 1
    assert 0 <= check["delivery_latency_ms"] < 120_000
    assert delivery_latencies(capsys.readouterr().out, APPLICATION) == [check["delivery_latency_ms"]]
    state = state_of(stack, APPLICATION)
    assert (state["receipt_channel"], state["last_receipt_at"]) == ("application", check["delivered_at"])


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("whsec_FAKEnobodysSigningSecret0000000001", id="a secret nobody configured"),
        pytest.param(NEIGHBOUR_SECRET, id="another destination's secret"),
        pytest.param(SHARED_SECRET, id="the shared probe secret"),
    ],
)
def test_a_forwarded_ping_signed_with_any_secret_but_its_destinations_own_is_refused(stack, secret):
    record, delivery = stack.ping_and_capture()

    answer = stack.forward(delivery.body, resigned(delivery, secret))

    assert answer.status == 400
    assert answer.json()["error"]["message"] == "no valid signature for this payload"
    assert stack.check(APPLICATION, record["pinged_at"])["delivery_status"] == "pending"
    assert stack.receipt_item(APPLICATION, record["event_id"]).get("received_at") is None


def test_a_ping_forwarded_after_the_signatures_tolerance_is_refused_as_too_old(stack, monkeypatch):
    monkeypatch.setenv("WEBHOOK_TOLERANCE_SECONDS", "1")
    reset_caches()
    record, delivery = stack.ping_and_capture()
    signed_at = int(delivery.signature.split(",")[0].removeprefix("t="))
    time.sleep(max(0.0, signed_at + 1.05 - time.time()))  # Stripe's signature is now older than allowed

    answer = stack.forward(delivery.body, delivery.signature)

    assert answer.status == 400
    assert answer.json()["error"]["message"] == "timestamp outside the tolerance (too old)"
    assert stack.check(APPLICATION, record["pinged_at"])["delivery_status"] == "pending"


def test_a_replayed_forward_only_counts_deliveries(stack):
    record, delivery = stack.ping_and_capture()
    assert stack.forward(delivery.body, delivery.signature).status == 200
    first = stack.check(APPLICATION, record["pinged_at"])
    health = state_of(stack, APPLICATION)["health"]

    replayed = stack.forward(delivery.body, delivery.signature)

    assert replayed.status == 200
    again = stack.check(APPLICATION, record["pinged_at"])
    assert again["deliveries"] == 2
    assert without_count(again) == without_count(first)  # the first arrival's time, channel and latency
    assert state_of(stack, APPLICATION)["health"] == health


def test_a_replayed_forward_reports_the_delivery_latency_once(stack, capsys):
    record, delivery = stack.ping_and_capture()
    assert stack.forward(delivery.body, delivery.signature).status == 200

    assert stack.forward(delivery.body, delivery.signature).status == 200

    latency = stack.check(APPLICATION, record["pinged_at"])["delivery_latency_ms"]
    assert delivery_latencies(capsys.readouterr().out, APPLICATION) == [latency]


def test_while_a_secret_is_rolled_pings_signed_with_either_of_the_destinations_two_secrets_are_delivered(
    stack,
):
    old, new = APPLICATION_SECRET, "whsec_FAKEforwardingApplicationSecret002"
    stack.put_signing_secrets(secret_map(**{APPLICATION: [new, old]}))
    reset_caches()
    checks = []
    for secret in (old, new):  # Stripe signs with the old secret until the roll ends, then with the new
        stack.deployment.stripe.add_destination(APPLICATION, url=stack.application.url, signing_secret=secret)
        record, delivery = stack.ping_and_capture()
        assert stack.forward(delivery.body, delivery.signature).status == 200
        checks.append(stack.check(APPLICATION, record["pinged_at"]))

    assert [(c["delivery_status"], c["delivery_channel"]) for c in checks] == [
        ("delivered", "application")
    ] * 2


def test_a_secret_rolled_while_the_map_is_cached_is_read_again(stack):
    new = "whsec_FAKEforwardingApplicationSecret003"
    record, delivery = stack.ping_and_capture()
    assert stack.forward(delivery.body, delivery.signature).status == 200  # the map is cached now
    stack.put_signing_secrets(secret_map(**{APPLICATION: [new]}))
    stack.deployment.stripe.add_destination(APPLICATION, url=stack.application.url, signing_secret=new)

    record, delivery = stack.ping_and_capture()
    answer = stack.forward(delivery.body, delivery.signature)

    assert answer.status == 200
    assert stack.check(APPLICATION, record["pinged_at"])["delivery_status"] == "delivered"


def test_an_unreadable_signing_secret_map_is_a_500_and_its_destinations_count_as_unconfigured(stack):
    record, delivery = stack.ping_and_capture()
    unreadable = json.dumps({"not_a_destination": [APPLICATION_SECRET]})
    stack.put_signing_secrets(unreadable)
    reset_caches()

    answer = stack.forward(delivery.body, delivery.signature)

    assert (answer.status, answer.json()["error"]["code"]) == (500, "config_error")
    assert stack.check(APPLICATION, record["pinged_at"])["delivery_status"] == "pending"
    assert stack.ping()["delivery_status"] == "unmonitored"


# -- which destinations are monitored --------------------------------------------------------------------

RULED = "ed_test_61MonitoredRuleCheck0001"


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        pytest.param("WEBHOOK_SECRET_ID", "map", "pending", id="in the signing-secret map"),
        pytest.param("RECEIPT_DESTINATION_IDS", RULED, "pending", id="in ReceiptDestinationIds"),
        pytest.param(
            "RECEIPT_EVENT_BUS_NAMES", f"aws.partner/stripe.com/{RULED}", "pending", id="its bus named"
        ),
        pytest.param(None, None, "unmonitored", id="configured nowhere"),
    ],
)
def test_a_destination_is_monitored_when_the_configuration_names_it(
    stack, monkeypatch, setting, value, expected
):
    stack.deployment.stripe.add_destination(RULED)
    if setting == "WEBHOOK_SECRET_ID":
        stack.put_signing_secrets(secret_map(**{RULED: [APPLICATION_SECRET]}))
    elif setting is not None:
        monkeypatch.setenv(setting, value)
    reset_caches()

    assert stack.ping(RULED)["delivery_status"] == expected


def test_a_destination_taken_out_of_the_configuration_is_no_longer_expected_to_deliver(stack):
    record, delivery = stack.ping_and_capture()
    assert record["delivery_status"] == "pending"
    assert stack.forward(delivery.body, delivery.signature).json()["status"] == "matched"
    assert state_of(stack, APPLICATION)["receipt_channel"] == "application"
    stack.put_signing_secrets(json.dumps({NEIGHBOUR: [NEIGHBOUR_SECRET]}))
    reset_caches()

    # Its forwarded pings no longer verify without its secret: expecting them would turn each one lost.
    assert stack.ping()["delivery_status"] == "unmonitored"
    assert state_of(stack, APPLICATION)["receipt_channel"] == "unmonitored"  # the view says the same


def stored_last_receipt(destination_id: str) -> str:
    """The destination's ``last_receipt_at`` as its state item holds it, once a receipt has noted it."""
    give_up = time.monotonic() + 10
    while (noted := ping_services().deliveries.table.states.get(destination_id).last_receipt_at) is None:
        assert time.monotonic() < give_up, "no receipt was noted"
        time.sleep(0.02)
    return noted


def test_a_destination_configured_nowhere_stays_monitored_for_three_lost_after_periods_after_its_receipt(
    stack, monkeypatch
):
    monkeypatch.setenv("LOST_AFTER_SECONDS", "2")  # the learned window: 6 s after the last receipt
    reset_caches()
    probe = {"id": PROBE, "url": stack.webhook_url, "signing_secret": SHARED_SECRET}
    stack.deployment.stripe.put_destination(probe)
    stack.deployment.invoke(schedule_event())  # its scheduled check joins its event: the receipt is for it
    received_at = stored_last_receipt(PROBE)
    stack.deployment.stripe.put_destination(probe | {"delivery": "drop"})  # no receipt extends the window
    reset_caches()  # the next checks in another execution environment, which reads the state as stored

    within = stack.ping(PROBE)
    window_ends = datetime.fromisoformat(received_at) + timedelta(seconds=6)
    time.sleep(max(0.0, (window_ends - datetime.now(UTC)).total_seconds() + 0.05))
    after = stack.ping(PROBE)

    assert within["delivery_status"] == "pending"  # a receipt came within the window: one is expected
    assert after["delivery_status"] == "unmonitored"  # the window passed: nothing is expected any more


def test_a_dashboard_ping_never_makes_a_destination_monitored(stack):
    probe = {"id": PROBE, "url": stack.webhook_url, "signing_secret": SHARED_SECRET}
    stack.deployment.stripe.put_destination(probe | {"delivery": "drop"})  # the monitor's own pings: lost
    assert stack.ping(PROBE)["delivery_status"] == "unmonitored"  # PROBE is configured nowhere
    dashboard_ping = {
        "id": "evt_test_FromTheStripeDashboard001",
        "object": "v2.core.event",
        "type": "v2.core.event_destination.ping",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "livemode": False,
        "context": None,
        "related_object": {"id": PROBE, "type": "v2.core.event_destination", "url": f"/v2/x/{PROBE}"},
    }
    stack.deployment.stripe.put_destination(probe)
    stack.deployment.stripe.deliver_event(PROBE, dashboard_ping)
    give_up = time.monotonic() + 10
    while not stack.receipt_item(PROBE, dashboard_ping["id"]) and time.monotonic() < give_up:
        time.sleep(0.02)
    assert stack.receipt_item(PROBE, dashboard_ping["id"]) is not None  # verified and kept, unsolicited
    stack.deployment.stripe.put_destination(probe | {"delivery": "drop"})
    reset_caches()  # the next check in another execution environment, which reads the state as stored

    assert stack.ping(PROBE)["delivery_status"] == "unmonitored"
    assert state_of(stack, PROBE)["last_receipt_at"] is None


def test_a_receipt_for_one_of_the_stacks_own_pings_makes_an_unconfigured_destination_monitored(stack):
    # Configured nowhere; Stripe delivers its pings to the stack's webhook route, once the check is stored.
    stack.deployment.stripe.put_destination(
        {"id": PROBE, "url": stack.webhook_url, "signing_secret": SHARED_SECRET, "delivery_delay": 0.3}
    )
    # A scheduled check (an API ping of an unmonitored destination spares that write): it joins its event,
    # so the receipt can tell it was the monitor's own ping.
    summary = stack.deployment.invoke(schedule_event())
    [first] = [c for c in summary["checks"] if c["destination_id"] == PROBE]
    assert first["delivery_status"] == "unmonitored"
    stored_last_receipt(PROBE)  # the receipt arrived and settled the check
    reset_caches()  # the next check in another execution environment, which reads the state as stored

    assert stack.ping(PROBE)["delivery_status"] == "pending"


def test_a_receipt_that_arrives_before_its_check_is_stored_still_counts_as_the_destinations_last_receipt(
    stack, monkeypatch
):
    with AwsFaultProxy(stack.deployment.aws.endpoint_url) as proxy:
        for name, value in proxy.environment.items():
            monkeypatch.setenv(name, value)
        reset_caches()
        stack.ping()  # the destination has a state; its first check was stored as usual
        proxy.inject(AwsFault(PUT_ITEM, kind="hold", match=f'"destination_id":{{"S":"{APPLICATION}"}}'))
        with ThreadPoolExecutor(max_workers=1) as pinging:
            ping = pinging.submit(stack.ping)  # Stripe answers, then the check's write waits
            assert proxy.wait_for_hold()
            delivery = stack.application.wait_for(2)[-1]  # the held check's ping, delivered meanwhile
            assert stack.forward(delivery.body, delivery.signature).json()["status"] == "unmatched"
            proxy.release()
            stored = ping.result(timeout=10)

        check = stack.check(APPLICATION, stored["pinged_at"])
        assert (check["delivery_status"], check["delivery_channel"]) == ("delivered", "application")
        state = state_of(stack, APPLICATION)
        assert (state["receipt_channel"], state["last_receipt_at"]) == ("application", check["delivered_at"])


# -- receipts meet their checks ---------------------------------------------------------------------------


def test_a_receipt_finds_its_check_behind_more_than_fifty_newer_checks(stack):
    oldest, delivery = stack.ping_and_capture()
    stack.deployment.stripe.put_destination({"id": APPLICATION, "delivery": "drop"})
    newer = [stack.ping() for _ in range(55)]

    answer = stack.forward(delivery.body, delivery.signature)

    assert answer.status == 200
    assert stack.check(APPLICATION, oldest["pinged_at"])["delivery_status"] == "delivered"
    assert stack.check(APPLICATION, newer[-1]["pinged_at"])["delivery_status"] == "pending"


def test_a_receipt_after_its_ping_was_declared_lost_turns_it_late_and_health_recovers_by_the_usual_rule(
    stack, monkeypatch, capsys
):
    monkeypatch.setenv("LOST_AFTER_SECONDS", "1")
    monkeypatch.setenv("DELIVERY_SLA_SECONDS", "1")
    monkeypatch.setenv("DESTINATION_IDS", NEIGHBOUR)  # the run pings another destination
    reset_caches()
    pinged = [stack.ping_and_capture() for _ in range(2)]  # delivered to the application, not forwarded yet
    time.sleep(1.1)
    capsys.readouterr()

    summary = stack.deployment.invoke(schedule_event())

    assert sorted(summary["lost"]) == sorted(f"{APPLICATION}@{r['pinged_at']}" for r, _ in pinged)
    healths = [state_of(stack, APPLICATION)["health"]]
    for _, delivery in pinged:  # Stripe retried, or the application forwarded late
        assert stack.forward(delivery.body, delivery.signature).status == 200
        healths.append(state_of(stack, APPLICATION)["health"])
    stack.ping()
    healths.append(state_of(stack, APPLICATION)["health"])
    replayed = stack.forward(pinged[0][1].body, pinged[0][1].signature)

    checks = [stack.check(APPLICATION, record["pinged_at"]) for record, _ in pinged]
    assert [(c["delivery_status"], c["delivery_channel"], c["deliveries"]) for c in checks] == [
        ("late", "application", 2),
        ("late", "application", 1),
    ]
    assert all(c["delivery_latency_ms"] > 1000 for c in checks)
    # Two lost pings take it down; two late ones are soft, so down -> degraded; a good check -> healthy.
    assert healths == ["down", "down", "degraded", "healthy"]
    assert replayed.status == 200
    assert lost_pings(capsys.readouterr().out) == 2  # counted at the sweep, never again
