"""``make cost`` (bench/cost.py): the bill's arithmetic on fixed counts, the counters on fixed inputs, and
the metric counter against what the real handler emits. No timing is asserted: costs are measured by
``python -m bench.cost``, not here."""

import dataclasses
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bench.cost_model import PRICES, MonthlyUsage, PriceList, bill, table, total_line
from bench.dynamodb_replay import Replayer, Units
from bench.usage import (
    Arrival,
    Metric,
    cold_starts,
    distinct_metrics,
    hourly_share,
    item_size,
    log_events,
    read_units,
    sampled_traces,
    write_units,
)
from tests.conftest import Deployment, emf_metrics, reset_caches
from tests.support import schedule_event
from tools.standins.aws import AwsStandIn

# ------------------------------------------------------------------------------------------------ bill


@pytest.fixture
def round_prices(tmp_path: Path) -> PriceList:
    """The real price list's items at round prices, so that the expected dollars are easy to check."""
    raw = json.loads(PRICES.read_text())
    prices = {
        "lambda_requests": ("0.20", 1_000_000),
        "lambda_gb_second_arm64": ("0.00001", 1),
        "lambda_gb_second_x86_64": ("0.00002", 1),
        "cloudwatch_custom_metrics": ("0.30", 1),
        "cloudwatch_alarms_standard": ("0.10", 1),
        "cloudwatch_dashboards": ("3.00", 1),
        "logs_ingestion": ("0.50", 1),
        "secrets_manager_secrets": ("0.40", 1),
        "secrets_manager_api_calls": ("0.05", 10_000),
        "dynamodb_write_request_units": ("0.625", 1_000_000),
    }
    for key, item in raw["items"].items():
        item["price"], item["per"] = prices.get(key, ("0", 1))
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(raw))
    return PriceList.load(path)


def test_fixed_counts_make_exact_dollars(round_prices):
    usage = MonthlyUsage(
        architecture="arm64",
        lambda_requests=Decimal(1_500_000),  # $0.30
        lambda_gb_seconds=Decimal(25_000),  # $0.25 at the arm64 price, not x86_64's $0.50
        custom_metrics=Decimal(119),  # $35.70
        alarms=Decimal(9),  # $0.90
        dashboards=Decimal(1),  # $3.00
        logs_ingested_gb=Decimal("0.5"),  # $0.25
        secrets=Decimal(2),  # $0.80
        secrets_api_calls=Decimal(20_000),  # $0.10
        dynamodb_write_units=Decimal(1_600_000),  # $1.00
        sns_publishes=Decimal(10**9),  # priced 0 here
    )

    monthly = bill(usage, round_prices)

    assert monthly.total == Decimal("42.30")
    assert monthly.by_service()["CloudWatch"] == Decimal("39.60")
    assert monthly.by_service()["Lambda"] == Decimal("0.55")
    assert total_line(monthly.total) == "total: $42.30 per month"
    assert sum(monthly.by_service().values()) == monthly.total
    assert "free tier shown, not subtracted" in table(monthly)


def test_the_total_line_rounds_half_up_to_the_cent():
    assert total_line(Decimal("1.005")) == "total: $1.01 per month"
    assert total_line(Decimal("1.00499")) == "total: $1.00 per month"
    assert total_line(Decimal(0)) == "total: $0.00 per month"


def test_the_price_list_is_dated_sourced_and_prices_every_billed_item():
    prices = PriceList.load()
    assert date.fromisoformat(prices.as_of)
    assert prices.region == "us-east-1"
    assert all(p.source.startswith("https://aws.amazon.com/") and p.free_tier for p in prices.items.values())
    # Every line the bill makes has a price: a month of one unit of everything bills without a KeyError.
    ones: dict[str, Any] = {f.name: Decimal(1) for f in dataclasses.fields(MonthlyUsage)}
    one = MonthlyUsage(**(ones | {"architecture": "arm64"}))
    assert len(bill(one, prices).lines) == len(dataclasses.fields(MonthlyUsage)) - 1


# --------------------------------------------------------------------------------------- custom metrics


def emf(namespace: str, dimension_sets: list[list[str]], values: dict[str, object]) -> str:
    names = [k for k, v in values.items() if isinstance(v, int | float)]
    directive = {
        "Namespace": namespace,
        "Dimensions": dimension_sets,
        "Metrics": [{"Name": n} for n in names],
    }
    return json.dumps({"_aws": {"Timestamp": 0, "CloudWatchMetrics": [directive]}, **values})


def test_each_dimension_set_is_a_metric_of_its_own_and_repeats_are_one():
    both = [["service"], ["service", "destination_id"]]
    per_destination = [["service", "destination_id"]]
    text = "\n".join(
        [
            '{"level":"INFO","message":"not a metric"}',
            emf("NS", both, {"service": "s", "destination_id": "ed_0", "A": 1}),
            emf("NS", per_destination, {"service": "s", "destination_id": "ed_1", "A": 2}),
            emf("NS", per_destination, {"service": "s", "destination_id": "ed_1", "A": 3}),
            emf("NS", per_destination, {"service": "s", "destination_id": "ed_2", "A": 2, "B": 1}),
            emf("Other", [[]], {"A": 1}),
            emf("NS", [["service", "missing"]], {"service": "s", "C": 1}),  # CloudWatch rejects it
            "START RequestId: 1 Version: $LATEST",
        ]
    )

    assert distinct_metrics(text) == {
        Metric("NS", "A", (("service", "s"),)),
        Metric("NS", "A", (("destination_id", "ed_0"), ("service", "s"))),
        Metric("NS", "A", (("destination_id", "ed_1"), ("service", "s"))),
        Metric("NS", "A", (("destination_id", "ed_2"), ("service", "s"))),
        Metric("NS", "B", (("destination_id", "ed_2"), ("service", "s"))),
        Metric("Other", "A", ()),
    }


@pytest.mark.integration
def test_the_metric_counter_counts_what_a_scheduled_run_emits(
    deployment: Deployment, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PER_DESTINATION_METRICS", "true")  # the most the handlers can emit
    reset_caches()
    destinations = [f"ed_test_61CostMetric{n:04d}" for n in range(3)]
    for destination_id in destinations:
        deployment.stripe.add_destination(destination_id)
    capsys.readouterr()

    deployment.invoke(schedule_event())

    out = capsys.readouterr().out
    counted = distinct_metrics(out)
    emitted = {(name, tuple(sorted(dims.items()))) for dims, values in emf_metrics(out) for name in values}
    assert {(m.name, m.dimensions) for m in counted} == emitted
    assert {m.namespace for m in counted} == {"StripeDestinationMonitorTests"}
    per_destination = {dict(m.dimensions).get("destination_id") for m in counted}
    assert set(destinations) <= per_destination  # not vacuous: every destination has its metrics


# --------------------------------------------------------------------------------------------- DynamoDB


def test_item_sizes_follow_dynamodbs_rules():
    item = {
        "destination_id": {"S": "ed_1"},  # 14 + 4
        "n": {"N": "12300"},  # 1 + (3 significant digits -> 2) + 1
        "ok": {"BOOL": True},  # 2 + 1
        "m": {"M": {"a": {"S": "xy"}, "b": {"NULL": True}}},  # 1 + 3 + (1 + 2 + 1) + (1 + 1 + 1)
        "l": {"L": [{"S": "é"}]},  # 1 + 3 + (2 + 1)
        "ss": {"SS": ["ab", "c"]},  # 2 + 3
    }
    assert item_size(item) == 18 + 4 + 3 + 11 + 7 + 5
    assert item_size(None) == 0


def test_request_units_round_up_per_item_and_halve_for_eventual_reads():
    assert write_units(0, 1024) == 1
    assert write_units(1025, 10) == 2  # the larger of before and after
    assert write_units(0, 0) == 1  # at least one
    assert write_units(100, 100, transactional=True) == 2
    assert read_units(4096, consistent=True) == 1
    assert read_units(4097, consistent=True) == 2
    assert read_units(4097, consistent=False) == 1
    assert read_units(0, consistent=False) == Decimal("0.5")  # an item not found costs the minimum


@pytest.mark.integration
def test_replayed_requests_cost_the_whole_items_they_touch(aws: AwsStandIn):
    table = "cost-replay"
    aws.create_results_table(table)
    replayer = Replayer(aws.endpoint_url, ["destination_id", "pinged_at"])
    big = "x" * 1500

    def put(sort: str, condition: bool = False) -> Units:
        body = {"TableName": table, "Item": {"destination_id": {"S": "ed_r"}, "pinged_at": {"S": sort},
                                             "blob": {"S": big}}}  # fmt: skip
        if condition:
            body["ConditionExpression"] = "attribute_not_exists(pinged_at)"
        return replayer.replay("PutItem", json.dumps(body).encode())

    assert [put(s) for s in ("a", "b", "c")] == [Units(write=2)] * 3  # about 1.5 KB each
    assert put("a", condition=True) == Units(write=2)  # refused, but it consumes the item's size

    def key(sort: str) -> dict[str, object]:
        return {"destination_id": {"S": "ed_r"}, "pinged_at": {"S": sort}}

    update = {
        "TableName": table,
        "Key": key("a"),
        "UpdateExpression": "SET flag = :f",
        "ExpressionAttributeValues": {":f": {"BOOL": True}},
    }
    assert replayer.replay("UpdateItem", json.dumps(update).encode()) == Units(write=2)  # the whole item
    query = {
        "TableName": table,
        "KeyConditionExpression": "destination_id = :d",
        "ProjectionExpression": "pinged_at",
        "ExpressionAttributeValues": {":d": {"S": "ed_r"}},
    }
    # Three whole items of ~1.5 KB, however little is projected: two 4 KB units, halved (eventual).
    assert replayer.replay("Query", json.dumps(query).encode()) == Units(read=Decimal(1))
    batch = {"RequestItems": {table: {"Keys": [key("a"), key("zz")], "ConsistentRead": True}}}
    # Item by item: the 1.5 KB item one unit, the missing one the minimum.
    assert replayer.replay("BatchGetItem", json.dumps(batch).encode()) == Units(read=Decimal(2))
    size = replayer.table_size(table)
    assert size.items == 3 and size.bytes > 3 * 1500 + 300


# ------------------------------------------------------------------------------------ logs, traces, ...


def test_log_events_are_lines_and_bill_26_bytes_more_each():
    volume = log_events('{"a":1}\n\n{"é":2}\n')
    assert (volume.events, volume.bytes, volume.billed_bytes) == (2, 7 + 8, 15 + 2 * 26)


def test_the_default_sampling_rule_keeps_one_trace_a_second_and_five_percent_more():
    assert sampled_traces([0.1, 0.2, 0.3, 1.5]) == Decimal("2.10")
    assert sampled_traces([]) == 0


def test_a_burst_during_a_cold_start_starts_more_environments():
    burst = [Arrival(t, warm_s=0.05, cold_s=0.5) for t in (0.0, 0.1, 0.2, 1.0)]
    assert cold_starts(burst) == (3, 3)  # the last one finds an environment idle
    assert cold_starts(burst, warm_environments=3) == (0, 3)
    assert cold_starts([Arrival(t, warm_s=0.05, cold_s=0.5) for t in (0.0, 0.6, 1.2)]) == (1, 1)


def test_a_metric_is_billed_for_every_hour_one_of_its_cycles_emits_it():
    assert hourly_share(Decimal(1), 6) == 1
    assert hourly_share(Decimal(0), 6) == 0
    assert hourly_share(Decimal("0.5"), 6) == Decimal(63) / 64


# ------------------------------------------------------------------------------- the measurement itself


@pytest.mark.integration
def test_a_sampled_month_counts_every_invocation_receipt_and_metric(tmp_path: Path) -> None:
    from bench.cost import measure, parse_args
    from bench.cost_cycle import ColdProfile, cycle_metrics
    from bench.cost_month import month
    from bench.cost_reference import Reference

    reference = Reference.load()
    settings = parse_args(
        ["--destinations", "2", "--cycles", "1", "--step", "0", "--out", str(tmp_path / "c.json")]
    )

    sample = measure(reference, settings, 2)
    measured = month(sample, reference, settings, ColdProfile.of([sample], reference))

    runs = Decimal(30 * 24 * 60) / reference.schedule_minutes
    usage = measured.usage
    assert [len(c.invocations) for c in sample.cycles] == [3, 3]  # a scheduled run and two receipts each
    assert usage.scheduler_invocations == runs
    assert usage.api_requests == 2 * runs  # the two webhooks, forwarded through the API
    assert usage.lambda_requests == 3 * runs
    assert usage.secrets == 2  # the Stripe key and the signing secrets
    assert usage.dynamodb_write_units > 0 and usage.dynamodb_read_units > 0 and usage.logs_ingested_gb > 0
    # What the functions' own processes printed is what is counted (whatever metrics the handlers emit).
    for cycle in sample.cycles:
        metrics = cycle_metrics(cycle, reference)
        names = [
            {m.name for m in metrics if dict(m.dimensions).get("destination_id") == d}
            for d in ("ed_test_61Cost0000Destination", "ed_test_61Cost0001Destination")
        ]
        assert names[0] == names[1]
    # Every metric is emitted by every cycle, every cycle cold: each is billed for the whole month.
    assert usage.custom_metrics == len(measured.metrics) == len(cycle_metrics(sample.cycles[0], reference))


FAKE_HANDLER = """
import json, logging, sys
from datetime import datetime, timedelta
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS, ExpirableValue

logger = Logger(service="fake")
print("printed at import")


class Cached:
    store = {"key": ExpirableValue("value", datetime.now() + timedelta(seconds=300))}


DEFAULT_PROVIDERS["secrets"] = Cached()


def handler(event, context):
    logger.info("a Powertools log line")
    print(json.dumps({"_aws": {"Timestamp": 0, "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [[]],
          "Metrics": [{"Name": "M"}]}]}, "M": 1}))
    sys.stderr.write("written to stderr\\n")
    logging.getLogger("botocore.credentials").info("Found credentials in environment variables.")
    return {"cached": Cached.store["key"].ttl >= datetime.now(), "request": context.aws_request_id}
"""


def test_a_worker_hands_back_everything_its_handler_writes_and_ages_its_caches(tmp_path: Path) -> None:
    from bench.cost_reference import FunctionSpec
    from bench.cost_worker import Worker

    (tmp_path / "fake.py").write_text(FAKE_HANDLER)
    spec = FunctionSpec("Fake", tmp_path, "fake", "handler", 512, 10, "arm64", True, {})
    worker = Worker(
        spec, {"PYTHONPATH": str(tmp_path), "AWS_LAMBDA_LOG_LEVEL": "INFO", "PATH": "/usr/bin:/bin"}
    )
    try:
        first = worker.invoke({}, "request-1", "Root=1-0-0;Sampled=1")
        aged = worker.advance(600)
        second = worker.invoke({}, "request-2", "Root=1-0-1;Sampled=1")
    finally:
        worker.stop()

    assert "printed at import" in worker.init_log and worker.init_ms > 0
    lines = first["log"].splitlines()
    assert any('"a Powertools log line"' in line for line in lines)
    assert distinct_metrics(first["log"]) == {Metric("N", "M", ())}
    assert "written to stderr" in lines
    found = [json.loads(line) for line in lines if "Found credentials" in line]
    assert found == [found[0] | {"level": "INFO", "logger": "botocore.credentials", "requestId": "request-1"}]
    assert first["answer"] == {"cached": True, "request": "request-1"}
    assert aged == 1 and second["answer"] == {"cached": False, "request": "request-2"}  # 10 minutes later
