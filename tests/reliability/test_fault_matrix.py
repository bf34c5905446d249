"""The fault matrix: every row names one fault and what must come of it, through the real handler, moto's
server (behind a fault-injecting proxy where AWS misbehaves) and the Stripe stand-in.

For every row: no exception escapes the handler unless the design wants Lambda to retry (and then a retry
is safe), the check is recorded whenever storage works, the number of attempts is bounded, and one
idempotency key is used for every attempt of a check.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stripe_monitor.config import PingSettings
from stripe_monitor.model.destination import Verdict
from stripe_monitor.stripe.client import StripeClient
from stripe_monitor.wiring import build_ping_services
from tests.conftest import Deployment, wait_until
from tests.reliability.support import body, configure, logged, stored_checks, without_none
from tests.support import api_event, ping_event, run_time, run_time_ms
from tools.standins.aws import free_port
from tools.standins.aws_faults import (
    BATCH_GET_ITEM,
    GET_SECRET_VALUE,
    PUT_ITEM,
    QUERY,
    AwsFault,
    AwsFaultProxy,
)
from tools.standins.stripe import Fault, StripeStandIn

DESTINATION = "ed_test_61FaultMatrix000000001"
GET_ITEM = "DynamoDB_20120810.GetItem"
UPDATE_ITEM = "DynamoDB_20120810.UpdateItem"
KEY = "fault-matrix-key-0001"
MAX_ATTEMPTS = 4  # 1 + STRIPE_MAX_RETRIES (3, the default)
# The check store's botocore config says max_attempts 4, which botocore counts as retries: 5 in all.
BOTO_ATTEMPTS = 5
SCHEDULED = run_time()
FLEET = [f"ed_test_61FaultFleet{n:010d}" for n in range(6)]


def check_put(destination_id: str = DESTINATION) -> str:
    """Text that only the PutItem of this destination's check contains (not a state or transition write)."""
    return f'"destination_id":{{"S":"{destination_id}"}}'


FLEET_CHECK_PUT = check_put("ed_test_61FaultFleet")[:-2]  # the PutItem of any fleet destination's check


# ------------------------------------------------------------------------------------------ Stripe


@dataclass(frozen=True)
class StripeRow:
    fault: str
    script: tuple[Fault, ...]
    outcome: str
    status: int
    attempts: int | tuple[int, int]  # exact, or an inclusive range where timing decides
    forever: bool = True
    error_code: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    remaining_ms: int = 20_000
    reachable: bool = True
    # Seconds at least between the first two attempts (Retry-After).
    min_gap: float = 0.0


STRIPE_ROWS = [
    StripeRow("400", (Fault("status", 400, error_code="invalid_fields"),), "stripe_error", 502, 1,
              error_code="invalid_fields"),
    StripeRow("401", (Fault("status", 401, error_code="api_key_invalid"),), "unauthorized", 502, 1),
    StripeRow("403", (Fault("status", 403, error_code="permission_denied"),), "unauthorized", 502, 1),
    StripeRow("404", (Fault("status", 404, error_code="not_found"),), "not_found", 404, 1),
    StripeRow("409 forever", (Fault("status", 409, error_code="idempotency_error"),), "stripe_error", 502,
              MAX_ATTEMPTS),
    StripeRow("429 forever", (Fault("status", 429, error_code="rate_limit"),), "rate_limited", 502,
              MAX_ATTEMPTS),
    StripeRow("429 Retry-After 1 then ok", (Fault("status", 429, headers={"Retry-After": "1"}),), "ok", 200,
              2, forever=False, min_gap=0.95),
    StripeRow("429 Retry-After longer than the time left",
              (Fault("status", 429, headers={"Retry-After": "5"}),), "rate_limited", 502, 1,
              remaining_ms=5_000),
    StripeRow("500 once then ok", (Fault("status", 500),), "ok", 200, 2, forever=False),
    StripeRow("500 forever", (Fault("status", 500),), "stripe_error", 502, MAX_ATTEMPTS,
              error_code="api_error"),
    StripeRow("502 with an HTML body", (Fault("html_502"),), "stripe_error", 502, MAX_ATTEMPTS,
              error_code="http_502"),
    StripeRow("503 forever", (Fault("status", 503),), "stripe_error", 502, MAX_ATTEMPTS),
    StripeRow("503 with Stripe-Should-Retry false",
              (Fault("status", 503, headers={"Stripe-Should-Retry": "false"}),), "stripe_error", 502, 1),
    StripeRow("slow answer past the read timeout", (Fault("hang", seconds=3),), "timeout", 504, MAX_ATTEMPTS,
              error_code="timeout", env={"STRIPE_READ_TIMEOUT": "0.3"}),
    StripeRow("connection refused", (), "network_error", 502, MAX_ATTEMPTS, error_code="network_error",
              reachable=False),
    StripeRow("connection reset mid-body", (Fault("reset"),), "network_error", 502, MAX_ATTEMPTS,
              error_code="network_error"),
    StripeRow("truncated JSON", (Fault("truncated_json"),), "invalid_response", 502, 1,
              error_code="invalid_response"),
    StripeRow("text that is not JSON", (Fault("non_json"),), "invalid_response", 502, 1),
    StripeRow("JSON of the wrong shape", (Fault("wrong_shape"),), "invalid_response", 502, 1),
    StripeRow("an event of another type", (Fault("wrong_event_type"),), "invalid_response", 502, 1),
    StripeRow("a ping event for another destination", (Fault("other_destination"),), "invalid_response", 502,
              1),
    StripeRow("a huge body", (Fault("huge_body", size=5_000_000),), "invalid_response", 502, 1),
]  # fmt: skip


@pytest.mark.parametrize("row", STRIPE_ROWS, ids=lambda row: row.fault)
def test_a_stripe_fault_is_recorded_with_its_outcome_status_and_bounded_attempts(
    deployment, monkeypatch, row
):
    stripe = deployment.stripe
    stripe.add_destination(DESTINATION)
    stripe.add_destination("ed_test_61FaultMatrixOther00001")  # the "other destination" of a wrong ping
    stripe.script(DESTINATION, list(row.script), forever=row.forever)
    env = dict(row.env)
    if not row.reachable:
        env["STRIPE_API_BASE"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    configure(monkeypatch, **env)

    response = deployment.invoke(ping_event(DESTINATION, KEY), remaining_ms=row.remaining_ms)

    record = body(response)
    assert (response["statusCode"], record["outcome"]) == (row.status, row.outcome)
    low, high = row.attempts if isinstance(row.attempts, tuple) else (row.attempts, row.attempts)
    assert low <= record["attempts"] <= high
    if row.error_code:
        assert record["error_code"] == row.error_code
    assert record["idempotency_key"] == KEY
    assert stored_checks(deployment) == [without_none(record)]  # recorded, exactly as answered
    pings = [r for r in stripe.requests if r.route == "ping"]
    assert len(pings) == (record["attempts"] if row.reachable else 0)
    assert {r.idempotency_key for r in pings} <= {KEY}  # one key for every attempt
    assert stripe.event_count(DESTINATION) <= 1
    if row.min_gap:
        assert pings[1].started - pings[0].started >= row.min_gap


# ------------------------------------------------------------------------------------------ AWS


@dataclass(frozen=True)
class AwsRow:
    fault: str
    outcome: str
    status: int
    stored: bool
    faults: tuple[AwsFault, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    secret: str | None = None
    # Requests the proxy saw, per operation (a bound on AWS-side attempts).
    calls: dict[str, int] = field(default_factory=dict)
    calls_matching: tuple[str, str, int] | None = None  # (operation, body text, count)
    pinged: bool = True
    error_part: str | None = None


AWS_ROWS = [
    AwsRow("secret missing", "config_error", 500, stored=True, pinged=False,
           env={"STRIPE_SECRET_ID": "stripe-monitor/does-not-exist"}, error_part="ResourceNotFoundException"),
    AwsRow("secret malformed", "config_error", 500, stored=True, pinged=False, secret="not-a-stripe-key",
           error_part="does not hold a Stripe secret key"),
    AwsRow("secret JSON without api_key", "config_error", 500, stored=True, pinged=False,
           secret='{"apiKey": "sk_test_x"}', error_part="api_key"),
    AwsRow("access denied on the secret", "config_error", 500, stored=True, pinged=False,
           faults=(AwsFault.access_denied(GET_SECRET_VALUE),), calls={GET_SECRET_VALUE: 1},
           error_part="AccessDeniedException"),
    AwsRow("secret throttled twice", "ok", 200, stored=True,
           faults=(AwsFault.throttle(GET_SECRET_VALUE, times=2),), calls={GET_SECRET_VALUE: 3}),
    AwsRow("table missing", "storage_error", 500, stored=False, env={"TABLE_NAME": "checks-does-not-exist"}),
    AwsRow("PutItem throttled twice", "ok", 200, stored=True,
           faults=(AwsFault.throttle(PUT_ITEM, times=2, match=check_put()),),
           calls_matching=(PUT_ITEM, check_put(), 3)),
    AwsRow("PutItem throttled forever", "storage_error", 500, stored=False,
           faults=(AwsFault.throttle(PUT_ITEM, times=None, match=check_put()),),
           calls_matching=(PUT_ITEM, check_put(), BOTO_ATTEMPTS)),
    AwsRow("PutItem access denied", "storage_error", 500, stored=False,
           faults=(AwsFault.access_denied(PUT_ITEM),), calls_matching=(PUT_ITEM, check_put(), 1)),
    AwsRow("PutItem connection dropped once", "ok", 200, stored=True,
           faults=(AwsFault(PUT_ITEM, kind="drop", match=check_put()),),
           calls_matching=(PUT_ITEM, check_put(), 2)),
    AwsRow("PutItem answer lost after the write", "ok", 200, stored=True,
           faults=(AwsFault(PUT_ITEM, kind="lose_answer", match=check_put()),)),
    AwsRow("health state write throttled forever", "ok", 200, stored=True,
           faults=(AwsFault.throttle(UPDATE_ITEM, times=None),)),
    AwsRow("health state read throttled forever", "ok", 200, stored=True,
           faults=(AwsFault.throttle(GET_ITEM, times=None),)),
    AwsRow("early receipts read throttled forever", "ok", 200, stored=True,
           faults=(AwsFault.throttle(BATCH_GET_ITEM, times=None),)),
]  # fmt: skip


@pytest.mark.parametrize("row", AWS_ROWS, ids=lambda row: row.fault)
def test_an_aws_fault_on_an_api_ping_is_recorded_or_answered_with_the_check(
    deployment, proxy, monkeypatch, caplog, row
):
    deployment.stripe.add_destination(DESTINATION)
    if row.secret is not None:
        deployment.aws.put_secret(deployment.secret_id, row.secret)
    configure(monkeypatch, **row.env)
    proxy.inject(*row.faults)

    response = deployment.invoke(ping_event(DESTINATION, KEY))

    answer = body(response)
    assert response["statusCode"] == row.status
    check = answer["check"] if row.outcome == "storage_error" else answer
    if row.outcome == "storage_error":
        assert answer["error"]["code"] == "storage_error"
        # The check was made; the caller gets it, and the log has it in full.
        assert check["outcome"] == "ok"
        not_stored = logged(caplog, "check not stored")
        assert [line["check"]["idempotency_key"] for line in not_stored] == [KEY]
    else:
        assert check["outcome"] == row.outcome
    assert check["idempotency_key"] == KEY
    if row.error_part:
        assert row.error_part in check["error_message"]
    assert stored_checks(deployment) == ([without_none(check)] if row.stored else [])
    pings = [r for r in deployment.stripe.requests if r.route == "ping"]
    assert len(pings) == (1 if row.pinged else 0)
    assert deployment.stripe.event_count(DESTINATION) == (1 if row.pinged else 0)
    for operation, count in row.calls.items():
        assert proxy.calls[operation] == count, operation
    if row.calls_matching:
        operation, text, count = row.calls_matching
        assert sum(1 for r in proxy.requests_for(operation) if text in r.compact()) == count


# ------------------------------------------------------------------------------------------ scheduled runs


def scheduled(deployment: Deployment, when: datetime = SCHEDULED, remaining_ms: int = 20_000) -> Any:
    return deployment.invoke({"scheduled_time": when.isoformat()}, remaining_ms)


@pytest.fixture
def fleet(deployment, monkeypatch):
    for destination_id in FLEET:
        deployment.stripe.add_destination(destination_id)
    configure(monkeypatch, DESTINATION_IDS=",".join(FLEET), STRIPE_REQUESTS_PER_SECOND="100")
    return deployment


def scheduled_keys(stripe: StripeStandIn, destination_id: str) -> set[str | None]:
    return {
        r.idempotency_key for r in stripe.requests if r.route == "ping" and r.destination_id == destination_id
    }


def assert_one_record_per_destination(deployment: Deployment, when: datetime = SCHEDULED) -> None:
    checks = stored_checks(deployment)
    assert sorted(c["destination_id"] for c in checks) == sorted(FLEET)
    assert {c["pinged_at"] for c in checks} == {
        when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    }
    for check in checks:
        # The record holds the one event Stripe created, however many runs and attempts it took.
        assert deployment.stripe.event_count(check["destination_id"]) == 1
        assert deployment.stripe.event(check["event_id"]) is not None
        assert scheduled_keys(deployment.stripe, check["destination_id"]) == {check["idempotency_key"]}


def fleet_check_puts(proxy: AwsFaultProxy) -> int:
    return sum(1 for r in proxy.requests_for(PUT_ITEM) if FLEET_CHECK_PUT in r.compact())


@pytest.mark.parametrize(
    ("fault", "writes"),
    [
        (AwsFault.throttle(PUT_ITEM, times=None, match=FLEET_CHECK_PUT), BOTO_ATTEMPTS),
        (AwsFault.access_denied(PUT_ITEM, match=FLEET_CHECK_PUT), 1),
        (AwsFault(PUT_ITEM, kind="drop", times=None, match=FLEET_CHECK_PUT), BOTO_ATTEMPTS),
    ],
    ids=["PutItem throttled forever", "PutItem access denied", "PutItem dropped forever"],
)
def test_a_scheduled_run_that_cannot_store_reports_logs_and_raises_and_its_retry_records_each_once(
    fleet, proxy, caplog, fault, writes
):
    proxy.inject(fault)

    with pytest.raises(RuntimeError, match="could not be stored"):
        scheduled(fleet)

    [finished] = logged(caplog, "scheduled run finished")
    assert finished["summary"]["not_stored"] == sorted(FLEET)  # reported in the run's result
    assert sorted(line["check"]["destination_id"] for line in logged(caplog, "check not stored")) == sorted(
        FLEET
    )
    assert fleet_check_puts(proxy) == writes * len(FLEET)  # bounded
    assert stored_checks(fleet) == []

    proxy.clear()
    retried = scheduled(fleet)  # Lambda's retry of the same event

    assert retried["checked"] == len(FLEET) and retried["not_stored"] == []
    assert_one_record_per_destination(fleet)


def test_throttled_check_writes_are_retried_and_every_check_is_recorded(fleet, proxy):
    proxy.inject(AwsFault.throttle(PUT_ITEM, times=2, match=FLEET_CHECK_PUT))

    summary = scheduled(fleet)

    assert (summary["checked"], summary["not_stored"]) == (len(FLEET), [])
    assert fleet_check_puts(proxy) == len(FLEET) + 2
    assert_one_record_per_destination(fleet)


def test_a_check_that_cannot_be_stored_is_reported_and_the_retry_records_only_it(fleet, proxy, caplog):
    stuck = FLEET[2]
    proxy.inject(AwsFault.throttle(PUT_ITEM, times=None, match=check_put(stuck)))

    with pytest.raises(RuntimeError, match="1 checks could not be stored"):
        scheduled(fleet)

    assert [line["check"]["destination_id"] for line in logged(caplog, "check not stored")] == [stuck]
    assert sum(1 for r in proxy.requests_for(PUT_ITEM) if check_put(stuck) in r.compact()) == BOTO_ATTEMPTS
    assert sorted(c["destination_id"] for c in stored_checks(fleet)) == sorted(set(FLEET) - {stuck})

    proxy.clear()
    pings_before = sum(1 for r in fleet.stripe.requests if r.route == "ping")
    retried = scheduled(fleet)

    assert [c["destination_id"] for c in retried["checks"]] == [stuck]
    assert retried["already_recorded"] == sorted(set(FLEET) - {stuck})
    assert sum(1 for r in fleet.stripe.requests if r.route == "ping") == pings_before + 1
    assert_one_record_per_destination(fleet)


def test_a_failed_read_of_existing_checks_raises_before_anything_is_pinged(fleet, proxy):
    proxy.inject(AwsFault.throttle(BATCH_GET_ITEM, times=None))

    with pytest.raises(Exception, match="ProvisionedThroughputExceeded"):
        scheduled(fleet)

    assert [r for r in fleet.stripe.requests if r.route == "ping"] == []
    assert proxy.calls[BATCH_GET_ITEM] == BOTO_ATTEMPTS
    proxy.clear()
    assert scheduled(fleet)["checked"] == len(FLEET)
    assert_one_record_per_destination(fleet)


def test_two_runs_racing_for_the_same_scheduled_time_leave_one_record_per_destination(fleet, proxy):
    # Run A reads (nothing recorded yet), pings, and is held just before it writes its checks; run B, a
    # redelivery of the same scheduled time, runs from start to end meanwhile; then A writes.
    proxy.inject(AwsFault(PUT_ITEM, kind="hold", times=len(FLEET), match=FLEET_CHECK_PUT))
    first: dict[str, Any] = {}
    run_a = threading.Thread(target=lambda: first.update(scheduled(fleet)))
    run_a.start()
    assert proxy.wait_for_hold(count=len(FLEET), timeout=10), "run A never reached its writes"

    second = scheduled(fleet)
    proxy.release()
    run_a.join(timeout=10)

    assert not run_a.is_alive()
    for summary in (first, second):
        accounted = [c["destination_id"] for c in summary["checks"]] + summary["already_recorded"]
        assert sorted(accounted) == sorted(FLEET)
        assert summary["not_stored"] == [] and summary["errors"] == {}
    assert_one_record_per_destination(fleet)  # both runs pinged; Stripe made one event per destination
    # The destinations' health moved once: run A's state writes met run B's and read again.
    for destination_id in FLEET:
        transitions = body(fleet.invoke(api_event("GET", f"/destinations/{destination_id}/transitions")))
        assert [(t["from_health"], t["to_health"]) for t in transitions["transitions"]] == [(None, "healthy")]
    states = body(fleet.invoke(api_event("GET", "/destinations")))["destinations"]
    assert {s["last_check"]["pinged_at"] for s in states} == {run_time_ms()}


def test_a_client_retrying_an_api_ping_after_a_storage_error_gets_one_record_and_one_stripe_event(
    deployment, proxy
):
    deployment.stripe.add_destination(DESTINATION)
    proxy.inject(AwsFault.access_denied(PUT_ITEM, times=1))  # the first PutItem fails (not retryable)

    failed = deployment.invoke(ping_event(DESTINATION, KEY))
    retried = deployment.invoke(ping_event(DESTINATION, KEY))  # the caller retries with its key

    assert failed["statusCode"] == 500 and body(failed)["error"]["code"] == "storage_error"
    assert retried["statusCode"] == 200
    first, second = body(failed)["check"], body(retried)
    assert second["event_id"] == first["event_id"]  # Stripe replayed the first answer to the same key
    assert deployment.stripe.event_count(DESTINATION) == 1
    assert [c["event_id"] for c in stored_checks(deployment)] == [first["event_id"]]


def test_a_runs_state_writes_go_out_together_not_one_after_another(fleet, proxy):
    proxy.inject(AwsFault(UPDATE_ITEM, kind="hold", times=None))
    summary: dict[str, Any] = {}
    run = threading.Thread(target=lambda: summary.update(scheduled(fleet)))
    run.start()

    overlapping = proxy.wait_for_hold(count=len(FLEET), timeout=10)
    proxy.release()
    run.join(timeout=10)

    assert overlapping, "the destinations' state writes were not in flight at the same time"
    assert summary["checked"] == len(FLEET) and summary["errors"] == {}
    states = body(fleet.invoke(api_event("GET", "/destinations")))["destinations"]
    assert {s["health"] for s in states} == {"healthy"}


def test_a_warm_api_ping_of_a_known_destination_reads_no_state_and_claims_no_receipt(deployment, proxy):
    deployment.stripe.add_destination(DESTINATION)
    deployment.invoke(ping_event(DESTINATION))
    before = proxy.calls

    deployment.invoke(ping_event(DESTINATION))

    # The check, and the state (a conditional write): no GetItem, no receipt look-up, the key cached.
    assert dict(proxy.calls - before) == {PUT_ITEM: 1, UPDATE_ITEM: 1}


def test_a_state_written_elsewhere_meanwhile_is_read_again_and_its_mute_respected(deployment, proxy):
    deployment.stripe.add_destination(DESTINATION)
    deployment.invoke(ping_event(DESTINATION))  # healthy; this environment now holds the state
    # Another execution environment mutes the destination and counts a lost ping into its health.
    elsewhere = build_ping_services(PingSettings.from_env())
    elsewhere.queries.mute(DESTINATION, datetime.now(UTC) + timedelta(hours=1))
    elsewhere.deliveries.health.observe(DESTINATION, Verdict.FAIL, "lost", "2026-12-01T00:00:00.000Z")
    deployment.stripe.script(DESTINATION, [Fault("status", 500)], forever=True)
    before = proxy.calls

    deployment.invoke(ping_event(DESTINATION))  # the 2nd failure of the last 3: down

    calls = proxy.calls - before
    assert calls[UPDATE_ITEM] == 2  # a conflict on the stale version, then the write
    assert calls[GET_ITEM] == 1  # the fresh read between them
    [down] = [
        t
        for t in body(deployment.invoke(api_event("GET", f"/destinations/{DESTINATION}/transitions")))[
            "transitions"
        ]
        if t["to_health"] == "down"
    ]
    assert down["muted"] is True  # the mute set elsewhere holds: no notification


def test_a_secret_that_cannot_be_read_records_a_config_error_per_destination(fleet, proxy):
    proxy.inject(AwsFault.access_denied(GET_SECRET_VALUE))

    summary = scheduled(fleet)

    assert (summary["checked"], summary["failed"]) == (len(FLEET), len(FLEET))
    assert {c["outcome"] for c in stored_checks(fleet)} == {"config_error"}
    assert fleet.stripe.requests == []


# ------------------------------------------------------------------------------------------ Lambda


@pytest.mark.parametrize(
    ("fault", "outcome", "status"),
    [(Fault("status", 503), "stripe_error", 502), (Fault("hang", seconds=5), "timeout", 504)],
    ids=["503 forever", "no answer"],
)
def test_too_little_remaining_time_cuts_the_retries_but_the_check_is_recorded(
    deployment, fault, outcome, status
):
    deployment.stripe.add_destination(DESTINATION)
    deployment.stripe.script(DESTINATION, [fault], forever=True)

    # 2.6 s left, 2 s kept back to record the result: room for one attempt of at most 0.6 s, no retry.
    response = deployment.invoke(ping_event(DESTINATION, KEY), remaining_ms=2_600)

    record = body(response)
    assert (response["statusCode"], record["outcome"], record["attempts"]) == (status, outcome, 1)
    assert stored_checks(deployment) == [without_none(record)]


def test_an_exception_inside_one_destination_is_reported_and_the_others_are_recorded(
    fleet, monkeypatch, caplog
):
    broken = FLEET[3]
    original: Callable[..., Any] = StripeClient.ping

    def ping(self: StripeClient, destination_id: str, **kwargs: Any) -> Any:
        if destination_id == broken:
            raise RuntimeError("a bug in one check")
        return original(self, destination_id, **kwargs)

    monkeypatch.setattr(StripeClient, "ping", ping)

    summary = scheduled(fleet)  # no exception escapes: Lambda would retry every destination for one bug

    assert summary["errors"] == {broken: "RuntimeError: a bug in one check"}
    assert sorted(c["destination_id"] for c in stored_checks(fleet)) == sorted(set(FLEET) - {broken})
    [failure] = logged(caplog, "check failed unexpectedly")
    assert failure["destination_id"] == broken
    monkeypatch.setattr(StripeClient, "ping", original)
    later = scheduled(fleet, SCHEDULED + timedelta(minutes=10))  # the next run checks it again
    assert later["checked"] == len(FLEET)


def test_a_warm_environment_pings_what_it_saw_enabled_without_waiting_for_the_table_or_the_list(fleet, proxy):
    scheduled(fleet)  # this environment has seen every destination enabled
    proxy.inject(AwsFault(QUERY, kind="hold"))  # the run's read of the stored states
    fleet.stripe.script_list([Fault("hang", seconds=1)])
    later = SCHEDULED + timedelta(minutes=10)
    summary: dict[str, Any] = {}
    run = threading.Thread(target=lambda: summary.update(scheduled(fleet, later)))
    run.start()

    held = proxy.wait_for_hold(timeout=10)
    pinged = wait_until(lambda: scheduled_keys_at(fleet.stripe, later) == set(FLEET), timeout=5)
    listing_open = [r.ended for r in fleet.stripe.requests if r.route == "list"][-1] is None
    proxy.release()
    run.join(timeout=10)

    assert held and pinged, "the pings waited for the stored states"
    assert listing_open, "the pings waited for the destination list"
    assert summary["checked"] == len(FLEET) and summary["not_stored"] == []
    later_iso = later.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert sorted(c["destination_id"] for c in stored_checks(fleet) if c["pinged_at"] == later_iso) == FLEET


def test_a_failed_read_of_the_stored_states_loses_no_check_and_the_run_raises_for_a_retry(fleet, proxy):
    proxy.inject(AwsFault.throttle(QUERY, times=None))

    with pytest.raises(Exception, match="ProvisionedThroughputExceeded"):
        scheduled(fleet)

    assert_one_record_per_destination(fleet)  # every check made is stored
    proxy.clear()
    retried = scheduled(fleet)  # Lambda's retry: nothing pinged twice
    assert retried["already_recorded"] == sorted(FLEET) and retried["checked"] == 0
    assert_one_record_per_destination(fleet)


def scheduled_keys_at(stripe: StripeStandIn, when: datetime) -> set[str | None]:
    prefix = f"schedule-{when.isoformat(timespec='milliseconds').replace('+00:00', 'Z')}-"
    return {
        r.destination_id
        for r in stripe.requests
        if r.route == "ping" and r.idempotency_key and r.idempotency_key.startswith(prefix)
    }
