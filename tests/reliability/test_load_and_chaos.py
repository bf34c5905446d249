"""Load and chaos: many concurrent pings and redelivered runs, and stand-ins killed in the middle of a run.

Counts, never clocks: every figure asserted here is a number of records, requests, events or log lines.
Concurrency is real: the load tests run the handler in 16 (or 8) execution environments, each its own
process (see ``execution_environment``), against moto's server and the Stripe stand-in over sockets.
"""

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from tests.conftest import FAKE_STRIPE_KEY, Deployment, assert_no_test_secrets, wait_until
from tests.reliability.execution_environment import environment_logs, execution_environments, invoke
from tests.reliability.support import body, configure, logged, moto_in_its_own_process, stored_checks
from tests.support import ping_event, run_time
from tools.standins.aws import AwsStandIn
from tools.standins.aws_faults import (
    DYNAMODB_WRITES,
    PUT_ITEM,
    AwsFaultProxy,
    shorten_sdk_backoff,
)
from tools.standins.stripe import StripeStandIn

pytestmark = pytest.mark.load

PINGS = 2_000
ENVIRONMENTS = 16
LOAD_DESTINATIONS = [f"ed_test_61LoadPing{n:012d}" for n in range(16)]
FLEET = [f"ed_test_61LoadFleet{n:011d}" for n in range(16)]
SCHEDULED_TIMES = [run_time(10 * n) for n in range(10)]
DELIVERIES = 3  # each scheduled time is delivered three times, the copies at the same moment


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class LoadTarget:
    deployment: Deployment
    aws: AwsFaultProxy  # counts every AWS call


@pytest.fixture
def load_target(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Iterator[LoadTarget]:
    """The deployment on a moto server in its own process, reached through a proxy that hands it one write
    at a time: DynamoDB applies each conditional write atomically, moto's server threads do not."""
    with (
        moto_in_its_own_process() as aws,
        AwsFaultProxy(aws.endpoint_url, serialize=DYNAMODB_WRITES) as proxy,
    ):
        aws.create_results_table(deployment.table_name)
        aws.put_secret(deployment.secret_id, FAKE_STRIPE_KEY)
        configure(monkeypatch, **proxy.environment)
        yield LoadTarget(
            Deployment(aws, deployment.stripe, deployment.table_name, deployment.secret_id), proxy
        )


def test_2000_concurrent_api_pings_leave_exactly_2000_records(load_target, tmp_path):
    deployment = load_target.deployment
    for destination_id in LOAD_DESTINATIONS:  # 125 pings each, a few in the same millisecond
        deployment.stripe.add_destination(destination_id)
    keys = [f"load-ping-{n:05d}" for n in range(PINGS)]
    events = [ping_event(LOAD_DESTINATIONS[n % len(LOAD_DESTINATIONS)], key) for n, key in enumerate(keys)]

    with execution_environments(ENVIRONMENTS, _environment(), tmp_path) as environments:
        answers = list(environments.map(invoke, events, chunksize=5))

    assert Counter(a.get("statusCode") for a in answers) == {200: PINGS}
    records = [body(a) for a in answers]
    assert sorted(r["idempotency_key"] for r in records) == keys  # each request answered with its own check
    answered = {(r["destination_id"], r["pinged_at"]): r for r in records}
    assert len(answered) == PINGS  # no two checks share a key
    stored = {(c["destination_id"], c["pinged_at"]): c for c in stored_checks(deployment)}
    assert len(stored) == PINGS  # none lost, none duplicated
    assert set(stored) == set(answered)
    assert all(stored[k]["idempotency_key"] == answered[k]["idempotency_key"] for k in stored)
    assert all(stored[k]["event_id"] == answered[k]["event_id"] for k in stored)
    stripe = deployment.stripe
    assert sum(stripe.event_count(d) for d in LOAD_DESTINATIONS) == PINGS
    assert sum(1 for r in stripe.requests if r.route == "ping") == PINGS
    logs = environment_logs(tmp_path)
    assert logs.count('"message":"check recorded"') == PINGS
    assert_no_test_secrets(logs, "the execution environments' logs")
    check_puts = [
        r
        for r in load_target.aws.requests_for(PUT_ITEM)
        if r.json()["Item"]["destination_id"]["S"] in LOAD_DESTINATIONS
    ]
    collisions = sum(1 for r in check_puts if r.error_code == "ConditionalCheckFailedException")
    assert len(check_puts) == PINGS + collisions  # a same-millisecond collision moves a check on by 1 ms
    print(
        f"{PINGS} pings from {ENVIRONMENTS} environments: {len(stored)} records, "
        f"{collisions} same-millisecond collisions resolved; AWS calls {dict(load_target.aws.calls)}"
    )


def test_redelivered_scheduled_runs_leave_one_record_per_destination_and_time(
    load_target, tmp_path, monkeypatch
):
    deployment = load_target.deployment
    for destination_id in FLEET:
        deployment.stripe.add_destination(destination_id)
    configure(monkeypatch, STRIPE_REQUESTS_PER_SECOND="100")  # every destination of the account, discovered
    runs = [{"scheduled_time": t.isoformat()} for t in SCHEDULED_TIMES for _ in range(DELIVERIES)]

    with execution_environments(8, _environment(), tmp_path) as environments:
        summaries = list(environments.map(invoke, runs))

    assert [s for s in summaries if "raised" in s or "error" in s] == []
    for summary in summaries:  # every run accounts for every destination
        accounted = [c["destination_id"] for c in summary["checks"]] + summary["already_recorded"]
        assert sorted(accounted) == FLEET
        assert (summary["not_stored"], summary["errors"], summary["not_started"]) == ([], {}, [])
    stored = Counter((c["destination_id"], c["pinged_at"]) for c in stored_checks(deployment))
    assert stored == {(d, iso(t)): 1 for d in FLEET for t in SCHEDULED_TIMES}
    stripe = deployment.stripe
    assert {d: stripe.event_count(d) for d in FLEET} == {d: len(SCHEDULED_TIMES) for d in FLEET}
    pings = [r for r in stripe.requests if r.route == "ping"]
    assert len({r.idempotency_key for r in pings}) == len(FLEET) * len(SCHEDULED_TIMES)
    skipped = sum(len(s["already_recorded"]) for s in summaries)
    assert len(pings) + skipped == len(runs) * len(FLEET)  # each run pinged or skipped each destination
    assert_no_test_secrets(environment_logs(tmp_path), "the execution environments' logs")
    print(
        f"{len(runs)} runs: {len(pings)} pings for {len(stored)} records; {skipped} skipped as recorded; "
        f"{len(pings) - len(stored)} duplicate pings absorbed by the idempotency key; "
        f"{load_target.aws.calls[PUT_ITEM]} PutItem calls"
    )


def _environment() -> dict[str, str]:
    return dict(os.environ)  # the deployment's settings, as the test configured them


# ------------------------------------------------------------------------------------------ chaos


class Background:
    """The handler running in a thread, so that the test can pull the plug while it runs."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.answer: Any = None
        self.raised: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self.answer = call()
        except Exception as exc:
            self.raised = exc

    def join(self, timeout: float = 60) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the run did not finish"


def ping_requests(stripe: StripeStandIn) -> int:
    return sum(1 for r in stripe.requests if r.route == "ping")


def run_at(deployment: Deployment, moment: datetime) -> Any:
    return deployment.invoke({"scheduled_time": moment.isoformat()})


def test_killing_stripe_mid_run_records_every_check_and_the_next_run_recovers(
    deployment, monkeypatch, caplog
):
    ids = [f"ed_test_61ChaosStripe{n:09d}" for n in range(16)]
    destinations = [{"id": i} for i in ids]
    first, second = SCHEDULED_TIMES[0], SCHEDULED_TIMES[1]
    stripe = StripeStandIn(api_key=FAKE_STRIPE_KEY, destinations=destinations).start()
    stripe.set_latency(0.5)  # keeps four checks in flight at any moment
    port = stripe.port
    configure(monkeypatch, STRIPE_API_BASE=stripe.url, CHECK_WORKERS="4", STRIPE_REQUESTS_PER_SECOND="100")
    try:
        run = Background(lambda: run_at(deployment, first))
        # The first checks are answered, others in flight.
        assert wait_until(lambda: ping_requests(stripe) >= 6, timeout=15), "the run never got going"
        stripe.stop()
        run.join()
    finally:
        stripe.stop()

    assert run.raised is None  # every check could be recorded, so nothing for Lambda to retry
    summary = run.answer
    outcomes = Counter(c["outcome"] for c in summary["checks"])
    assert summary["checked"] == len(ids) and summary["not_stored"] == []
    assert outcomes["ok"] >= 2 and outcomes["network_error"] >= 1  # answered before the kill, and after
    assert outcomes["ok"] + outcomes["network_error"] == len(ids)
    assert sorted(c["destination_id"] for c in stored_checks(deployment)) == ids
    assert sorted(r["check"]["destination_id"] for r in logged(caplog, "check recorded")) == ids

    revived = StripeStandIn(api_key=FAKE_STRIPE_KEY, destinations=destinations, port=port).start()
    try:
        again = run_at(deployment, first)  # a redelivery: everything is recorded already
        later = run_at(deployment, second)  # the next scheduled run, without anyone doing anything
    finally:
        revived.stop()

    assert (again["checked"], again["already_recorded"]) == (0, ids)
    assert (later["checked"], later["ok"]) == (len(ids), len(ids))
    counts = {str(outcome): n for outcome, n in outcomes.items()}
    print(f"Stripe killed mid-run: {counts}; next run {later['ok']}/{len(ids)} ok")


def test_killing_moto_mid_run_reports_what_was_not_stored_and_the_retry_recovers(
    deployment, monkeypatch, caplog
):
    ids = [f"ed_test_61ChaosMoto{n:011d}" for n in range(16)]
    for destination_id in ids:
        deployment.stripe.add_destination(destination_id)
    deployment.stripe.set_latency(0.5)  # four waves of four checks: the kill comes during the second
    first = SCHEDULED_TIMES[0]
    aws = AwsStandIn().start()  # its own moto server, on its own port (moto's data is shared in-process)
    port = aws.port
    configure(monkeypatch, **aws.environment, CHECK_WORKERS="4", STRIPE_REQUESTS_PER_SECOND="100")
    shorten_sdk_backoff(monkeypatch)
    try:
        run = Background(lambda: run_at(deployment, first))
        assert wait_until(lambda: ping_requests(deployment.stripe) >= 6, timeout=15), (
            "the run never got going"
        )
        aws.stop()
        run.join()
        during = deployment.invoke(ping_event("ed_test_61ChaosMotoNotInStripe01", "ping-during-the-outage"))
    finally:
        aws.stop()

    assert isinstance(run.raised, RuntimeError)  # Lambda retries the run
    [finished] = logged(caplog, "scheduled run finished")
    not_stored = finished["summary"]["not_stored"]
    # Each check is written as soon as it is made: those of the first wave made it before the kill (or
    # while it happened); those made after it could not be stored.
    assert len(not_stored) >= len(ids) - 6
    lost = {
        r["check"]["destination_id"]: r["check"]
        for r in logged(caplog, "check not stored")
        if r["check"]["trigger"] == "schedule"
    }
    assert sorted(lost) == not_stored  # ... and every check not stored is in the log, in full
    assert during["statusCode"] == 500 and body(during)["error"]["code"] == "storage_error"
    assert body(during)["check"]["outcome"] == "not_found"  # the answer holds the check all the same

    revived = AwsStandIn(port=port).start()
    try:
        stored_before = sorted(c["destination_id"] for c in stored_checks(deployment))
        retried = run_at(deployment, first)  # Lambda's retry of the same event
    finally:
        revived.stop()

    assert sorted(stored_before + not_stored) == ids  # every check: stored during the run, or reported
    assert retried["already_recorded"] == stored_before
    assert retried["checked"] == len(not_stored) and retried["not_stored"] == []
    stored = {c["destination_id"]: c for c in stored_checks(deployment)}
    assert sorted(stored) == ids
    for destination_id in not_stored:  # the retry pinged with the same key: Stripe made no second event
        assert deployment.stripe.event_count(destination_id) == 1
        assert stored[destination_id]["event_id"] == lost[destination_id]["event_id"]
    print(
        f"moto killed mid-run: {len(not_stored)} checks logged, not stored; retry stored {retried['checked']}"
    )
