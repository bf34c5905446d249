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
from tests.conftest import Deployment, emf_metrics
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
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
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
