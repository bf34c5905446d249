"""The monthly bill: monthly quantities (``MonthlyUsage``) times the dated price list
(``bench/prices-us-east-1.json``). Pure arithmetic in ``Decimal``; no I/O but reading the price list.

``bench/cost.py`` measures the quantities; ``tests/test_cost_model.py`` checks the arithmetic.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

PRICES = Path(__file__).resolve().parent / "prices-us-east-1.json"
GIB = Decimal(2**30)  # AWS bills data and memory in binary gigabytes


@dataclass(frozen=True)
class Price:
    key: str
    service: str
    price: Decimal  # dollars per ``per`` units
    per: Decimal
    unit: str
    free_tier: str
    source: str

    def cost(self, quantity: Decimal) -> Decimal:
        return quantity * self.price / self.per

    @property
    def label(self) -> str:
        """``$0.20 / 1M``, ``$0.30 / 1``, ``$0.05 / 10k``."""
        per = int(self.per)
        scaled = (
            f"{per // 1_000_000}M"
            if per >= 1_000_000 and not per % 1_000_000
            else f"{per // 1000}k"
            if per >= 1000 and not per % 1000
            else str(per)
        )
        return f"${self.price.normalize():f} / {scaled}"


@dataclass(frozen=True)
class PriceList:
    as_of: str
    region: str
    items: dict[str, Price]

    def __getitem__(self, key: str) -> Price:
        return self.items[key]

    @classmethod
    def load(cls, path: Path = PRICES) -> "PriceList":
        raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        items = {
            key: Price(
                key=key,
                service=str(item["service"]),
                price=Decimal(str(item["price"])),
                per=Decimal(str(item["per"])),
                unit=str(item["unit"]),
                free_tier=str(item["free_tier"]),
                source=str(item["source"]),
            )
            for key, item in raw["items"].items()
        }
        return cls(as_of=str(raw["as_of"]), region=str(raw["region"]), items=items)


def _zero() -> Decimal:
    return Decimal(0)


@dataclass(frozen=True)
class MonthlyUsage:
    """What one month of the deployment uses, in the units AWS bills."""

    architecture: str = "arm64"  # which Lambda GB-second price applies
    lambda_requests: Decimal = field(default_factory=_zero)
    lambda_gb_seconds: Decimal = field(default_factory=_zero)
    scheduler_invocations: Decimal = field(default_factory=_zero)
    eventbridge_partner_events: Decimal = field(default_factory=_zero)
    dynamodb_write_units: Decimal = field(default_factory=_zero)
    dynamodb_read_units: Decimal = field(default_factory=_zero)
    dynamodb_stored_gb: Decimal = field(default_factory=_zero)
    dynamodb_pitr_gb: Decimal = field(default_factory=_zero)
    api_requests: Decimal = field(default_factory=_zero)
    custom_metrics: Decimal = field(default_factory=_zero)  # metric-months, from the functions' EMF
    api_detailed_metrics: Decimal = field(default_factory=_zero)  # metric-months, API Gateway's
    alarms: Decimal = field(default_factory=_zero)
    dashboards: Decimal = field(default_factory=_zero)
    logs_ingested_gb: Decimal = field(default_factory=_zero)
    logs_stored_gb: Decimal = field(default_factory=_zero)
    secrets: Decimal = field(default_factory=_zero)
    secrets_api_calls: Decimal = field(default_factory=_zero)
    sns_publishes: Decimal = field(default_factory=_zero)
    sns_email_deliveries: Decimal = field(default_factory=_zero)
    xray_traces: Decimal = field(default_factory=_zero)
    ssm_parameters: Decimal = field(default_factory=_zero)

    def to_dict(self) -> dict[str, str]:
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class Line:
    item: str
    quantity: Decimal
    price: Price

    @property
    def service(self) -> str:
        return self.price.service

    @property
    def cost(self) -> Decimal:
        return self.price.cost(self.quantity)


@dataclass(frozen=True)
class Bill:
    lines: tuple[Line, ...]
    as_of: str
    region: str

    @property
    def total(self) -> Decimal:
        return sum((line.cost for line in self.lines), Decimal(0))

    def services(self) -> Iterator[tuple[str, list[Line]]]:
        """Each service's lines, in the order the services first appear."""
        order: dict[str, list[Line]] = {}
        for line in self.lines:
            order.setdefault(line.service, []).append(line)
        yield from order.items()

    def by_service(self) -> dict[str, Decimal]:
        return {name: sum((line.cost for line in lines), Decimal(0)) for name, lines in self.services()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of,
            "region": self.region,
            "lines": [
                {
                    "service": line.service,
                    "item": line.item,
                    "quantity": str(line.quantity),
                    "unit": line.price.unit,
                    "price": line.price.label,
                    "cost": str(line.cost),
                    "free_tier": line.price.free_tier,
                    "source": line.price.source,
                }
                for line in self.lines
            ],
            "by_service": {name: str(cost) for name, cost in self.by_service().items()},
            "total": str(self.total),
        }


def bill(usage: MonthlyUsage, prices: PriceList) -> Bill:
    """Every billed item of the month, at list price (no free tier subtracted)."""
    compute = f"lambda_gb_second_{usage.architecture}"
    lines = (
        Line("requests", usage.lambda_requests, prices["lambda_requests"]),
        Line(f"compute ({usage.architecture})", usage.lambda_gb_seconds, prices[compute]),
        Line("Scheduler invocations", usage.scheduler_invocations, prices["scheduler_invocations"]),
        Line("partner events", usage.eventbridge_partner_events, prices["eventbridge_partner_events"]),
        Line("write request units", usage.dynamodb_write_units, prices["dynamodb_write_request_units"]),
        Line("read request units", usage.dynamodb_read_units, prices["dynamodb_read_request_units"]),
        Line("storage", usage.dynamodb_stored_gb, prices["dynamodb_storage"]),
        Line("point-in-time recovery", usage.dynamodb_pitr_gb, prices["dynamodb_pitr"]),
        Line("REST requests", usage.api_requests, prices["api_gateway_rest_requests"]),
        Line("custom metrics (EMF)", usage.custom_metrics, prices["cloudwatch_custom_metrics"]),
        Line("API detailed metrics", usage.api_detailed_metrics, prices["cloudwatch_custom_metrics"]),
        Line("alarms", usage.alarms, prices["cloudwatch_alarms_standard"]),
        Line("dashboards", usage.dashboards, prices["cloudwatch_dashboards"]),
        Line("ingestion (GB)", usage.logs_ingested_gb, prices["logs_ingestion"]),
        Line("storage (GB)", usage.logs_stored_gb, prices["logs_storage"]),
        Line("secrets", usage.secrets, prices["secrets_manager_secrets"]),
        Line("API calls", usage.secrets_api_calls, prices["secrets_manager_api_calls"]),
        Line("publishes", usage.sns_publishes, prices["sns_publishes"]),
        Line("e-mail deliveries", usage.sns_email_deliveries, prices["sns_email_deliveries"]),
        Line("traces recorded", usage.xray_traces, prices["xray_traces_recorded"]),
        Line("parameters", usage.ssm_parameters, prices["ssm_standard_parameters"]),
    )
    return Bill(lines=lines, as_of=prices.as_of, region=prices.region)


def dollars(amount: Decimal, places: int = 2) -> str:
    quantum = Decimal(1).scaleb(-places)
    return f"${amount.quantize(quantum, rounding=ROUND_HALF_UP)}"


def total_line(total: Decimal) -> str:
    """The last line ``make cost`` prints."""
    return f"total: {dollars(total)} per month"


def _quantity(value: Decimal) -> str:
    if value == value.to_integral_value():
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:,.4f}".rstrip("0").rstrip(".")


def table(bill: Bill) -> str:
    """One table per service: quantity, unit price, monthly cost and the free tier (never subtracted)."""
    out = [f"Prices: {bill.region}, list prices as of {bill.as_of}; free tier shown, not subtracted."]
    width = 24
    for service, lines in bill.services():
        subtotal = sum((line.cost for line in lines), Decimal(0))
        out.append("")
        out.append(f"{service:<{width}}{'quantity':>16}  {'unit price':<18}{'per month':>11}  free tier")
        for line in lines:
            out.append(
                f"  {line.item:<{width - 2}}{_quantity(line.quantity):>16}  {line.price.label:<18}"
                f"{dollars(line.cost, 4):>11}  {line.price.free_tier}"
            )
        out.append(f"  {'subtotal':<{width - 2}}{'':>16}  {'':<18}{dollars(subtotal, 4):>11}")
    return "\n".join(out)
