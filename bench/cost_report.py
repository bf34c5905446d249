"""``make cost``: the report: the bill's table and what a cycle uses, the cost of one more destination and of
a month in warm environments, as text and as the JSON of every figure."""

from decimal import Decimal
from typing import Any

from bench.cost_cycle import ColdProfile
from bench.cost_model import Bill, PriceList, bill, dollars, table, total_line
from bench.cost_month import Month, month
from bench.cost_reference import Reference, Settings
from bench.cost_sample import Cycle, Sample


def metric_groups(metrics: dict[str, Decimal]) -> list[str]:
    """``7 names x 16 values of {destination_id,service}``: the metrics grouped by their dimension names."""
    groups: dict[tuple[str, ...], tuple[set[str], set[str]]] = {}
    for text in metrics:
        namespace_name, _, dims = text.partition("{")
        pairs = [p.split("=", 1) for p in dims.rstrip("}").split(",") if p]
        key = tuple(name for name, _ in pairs)
        names, values = groups.setdefault(key, (set(), set()))
        names.add(namespace_name.rpartition("/")[2])
        values.add(",".join(value for _, value in pairs))
    return [
        f"{len(names) * len(values)} with {{{','.join(key)}}} ({len(names)} names x {len(values)} values:"
        f" {', '.join(sorted(names))})"
        for key, (names, values) in sorted(groups.items(), key=lambda g: -len(g[1][0]) * len(g[1][1]))
    ]


def report(
    reference: Reference, settings: Settings, profile: ColdProfile, main: tuple[Sample, Month],
    main_bill: Bill, extra: tuple[Sample, Month, Bill] | None, seconds: float,
) -> tuple[str, dict[str, Any]]:  # fmt: skip
    sample, measured = main
    usage, per_cycle = measured.usage, measured.per_cycle
    lines = [
        f"Reference deployment: template.yaml defaults, {sample.destinations} destinations, "
        f"rate({reference.schedule_minutes} minutes) = {measured.cycles_per_month:,.0f} runs in a "
        f"{settings.days}-day month, Stripe answering in {settings.latency_ms:.0f} ms, a receipt for every "
        f"ping ({'forwarded webhooks through the API' if sample.channel == 'webhook' else 'EventBridge'}).",
        f"Sample: {len(sample.cycles)} cycles run for real ({settings.cycles} from cold environments, "
        f"{settings.cycles} warm) after a first one (not counted); {settings.cold_share:.0%} of the month's"
        " cycles taken as cold starts.",
        "",
        table(main_bill),
        "",
    ]
    functions = ", ".join(
        f"{name} {per_cycle.get(f'requests:{name}', 0):.0f} invocations "
        f"({per_cycle.get(f'cold_starts:{name}', 0):.1f} cold, init {measured.init_ms.get(name, 0):.0f} ms), "
        f"{per_cycle.get(f'gb_seconds:{name}', 0) * 1024 / spec.memory_mb:.2f} s billed"
        for name, spec in reference.functions.items()
    )
    operations = ", ".join(
        f"{k.removeprefix('op:')} {v:.1f}" for k, v in sorted(per_cycle.items()) if k.startswith("op:") and v
    )
    lines += [
        f"A cycle: {functions}.",
        f"  AWS requests {per_cycle['aws_requests']:.1f} ({operations}); Stripe requests "
        f"{per_cycle['stripe_requests']:.0f}; DynamoDB {per_cycle['dynamodb_write_units']:.1f} WRU, "
        f"{per_cycle['dynamodb_read_units']:.1f} RRU.",
        "  logs: "
        + ", ".join(
            f"{name} {per_cycle.get(f'log_events:{name}', 0):.0f} events, "
            f"{per_cycle.get(f'log_bytes:{name}', 0) / 1024:.1f} KiB"
            for name in [*reference.functions, "api"]
        )
        + f"; stored compressed to {measured.logs_ratio:.0%} (gzip of the lines).",
        f"Custom metrics: {usage.custom_metrics:.1f} metric-months: "
        + "; ".join(metric_groups(measured.metrics)),
    ]
    if usage.api_detailed_metrics:
        lines.append(
            f"  and API Gateway's detailed metrics (MetricsEnabled): {usage.api_detailed_metrics:.1f}: "
            + "; ".join(metric_groups(measured.api_metrics))
        )
    services = sorted(main_bill.by_service().items(), key=lambda item: -item[1])
    top_lines = sorted(main_bill.lines, key=lambda line: -line.cost)[:3]
    lines.append(
        "What dominates: "
        + ", ".join(
            f"{line.service} {line.item} {dollars(line.cost)} ({line.cost / main_bill.total:.0%})"
            for line in top_lines
        )
        + "; by service: "
        + ", ".join(f"{name} {dollars(cost)}" for name, cost in services)
        + "."
    )
    data: dict[str, Any] = {
        "settings": {k: str(v) for k, v in settings.__dict__.items()},
        "reference": {
            "schedule_minutes": reference.schedule_minutes,
            "functions": {
                name: {
                    "memory_mb": spec.memory_mb,
                    "architecture": spec.architecture,
                    "timeout_s": spec.timeout_s,
                }
                for name, spec in reference.functions.items()
            },
            "alarms": reference.alarms,
            "dashboards": reference.dashboards,
            "log_retention_days": reference.log_retention_days,
            "result_retention_days": reference.result_retention_days,
            "parameters": reference.parameters,
        },
        "month": _month_dict(measured),
        "bill": main_bill.to_dict(),
        "warm_up": _cycle_dict(sample.warm_up),
        "cycles": [_cycle_dict(c) for c in sample.cycles],
    }
    if extra is not None:
        extra_sample, extra_month, extra_bill = extra
        step = Decimal(extra_sample.destinations - sample.destinations)
        difference = (extra_bill.total - main_bill.total) / step
        by_service = {
            name: (cost - main_bill.by_service().get(name, Decimal(0))) / step
            for name, cost in extra_bill.by_service().items()
        }
        measured_as = (
            f"{extra_sample.destinations} destinations minus {sample.destinations}"
            if step == 1
            else f"({extra_sample.destinations} destinations minus {sample.destinations}) / {step}"
        )
        lines.append(
            f"Cost per extra destination: {dollars(difference, 4)} a month (measured: {measured_as}; "
            + ", ".join(
                f"{name} {dollars(cost, 4)}" for name, cost in by_service.items() if abs(cost) >= 0.00005
            )
            + ")."
        )
        data["extra_destination"] = {
            "destinations": extra_sample.destinations,
            "total": str(extra_bill.total),
            "difference": str(difference),
            "by_service": {name: str(cost) for name, cost in by_service.items()},
            "month": _month_dict(extra_month),
            "bill": extra_bill.to_dict(),
        }
    warm_share = Settings(**{**settings.__dict__, "cold_share": Decimal(0)})
    warm_total = bill(
        month(sample, reference, warm_share, profile).usage, PriceList.load(settings.prices)
    ).total
    lines.append(f"With every cycle in a warm environment instead: {total_line(warm_total)}.")
    data["total_if_all_warm"] = str(warm_total)
    data["total"] = str(main_bill.total)
    data["duration_s"] = round(seconds, 1)
    return "\n".join(lines), data


def _month_dict(measured: Month) -> dict[str, Any]:
    return {
        "usage": measured.usage.to_dict(),
        "cycles_per_month": str(measured.cycles_per_month),
        "per_cycle": {k: str(v) for k, v in measured.per_cycle.items()},
        "per_cycle_cold": {k: str(v) for k, v in measured.per_cycle_cold.items()},
        "per_cycle_warm": {k: str(v) for k, v in measured.per_cycle_warm.items()},
        "metrics": {k: str(v) for k, v in sorted(measured.metrics.items())},
        "api_metrics": {k: str(v) for k, v in sorted(measured.api_metrics.items())},
        "dynamodb_stored_bytes": str(measured.stored_bytes),
        "logs_compression_ratio": str(measured.logs_ratio),
        "init_ms": measured.init_ms,
    }


def _cycle_dict(cycle: Cycle) -> dict[str, Any]:
    return {
        "index": cycle.index,
        "cold": cycle.cold,
        "scheduled_time": cycle.scheduled_time,
        "checked": cycle.checked,
        "ok": cycle.ok,
        "aws_requests": cycle.aws[1] - cycle.aws[0],
        "stripe_requests": cycle.stripe_requests,
        "api_requests": len(cycle.api_requests),
        "partner_events": cycle.partner_events,
        "dynamodb": {"write_units": cycle.units.write, "read_units": str(cycle.units.read)},
        "table_after": {"items": cycle.table.items, "bytes": cycle.table.bytes},
        "invocations": [
            {
                "function": i.function,
                "cold": i.cold,
                "init_ms": round(i.init_ms, 1),
                "duration_ms": round(i.duration_ms, 1),
                "cpu_ms": round(i.cpu_ms, 1),
                "billed_ms": i.billed_ms,
                "offset_s": round(i.offset_s, 3),
                "log_bytes": len(i.log.encode()),
                "platform_bytes": len(i.platform.encode()),
                "aws_requests": i.aws[1] - i.aws[0],
            }
            for i in cycle.invocations
        ],
    }
