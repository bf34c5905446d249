"""``make cost``: a month: the sample's cold and warm cycles mixed as the month is, scaled to its runs, with
what a month keeps (DynamoDB's items for their retention, the logs compressed) and its metrics prorated."""

import gzip
from dataclasses import dataclass
from decimal import Decimal

from bench.cost_cycle import (
    ColdProfile,
    access_log_line,
    api_metrics,
    cycle_metrics,
    cycle_quantities,
    mean_quantities,
)
from bench.cost_model import GIB, MonthlyUsage
from bench.cost_reference import Reference, Settings
from bench.cost_sample import Sample
from bench.usage import LOG_EVENT_OVERHEAD_BYTES, Metric, hourly_share


@dataclass
class Month:
    usage: MonthlyUsage
    cycles_per_month: Decimal
    per_cycle: dict[str, Decimal]  # mixed cold / warm, as the month is
    per_cycle_cold: dict[str, Decimal]
    per_cycle_warm: dict[str, Decimal]
    metrics: dict[str, Decimal]  # metric -> its share of the month (prorated by the hour)
    api_metrics: dict[str, Decimal]
    stored_bytes: Decimal
    logs_ratio: Decimal
    init_ms: dict[str, float]


def _presence(
    cold: list[set[Metric]], warm: list[set[Metric]], share: Decimal, per_hour: Decimal
) -> dict[str, Decimal]:
    """Each metric's billed share of the month: the chance that an hour has at least one data point, from
    how often the cold and the warm cycles emitted it (metrics are prorated by the hour)."""
    found: dict[str, Decimal] = {}
    for metric in set().union(*cold, *warm):
        in_cold = Decimal(sum(metric in s for s in cold)) / len(cold)
        in_warm = Decimal(sum(metric in s for s in warm)) / len(warm)
        per_cycle = share * in_cold + (1 - share) * in_warm
        found[str(metric)] = hourly_share(per_cycle, int(per_hour))
    return found


def month(sample: Sample, reference: Reference, settings: Settings, profile: ColdProfile) -> Month:
    cycles_per_month = Decimal(settings.days * 24 * 60) / reference.schedule_minutes
    per_hour = Decimal(60) / reference.schedule_minutes
    share = settings.cold_share
    cold = [c for c in sample.cycles if c.cold]
    warm = [c for c in sample.cycles if not c.cold]
    cold_q = mean_quantities([cycle_quantities(c, sample, reference, profile) for c in cold])
    warm_q = mean_quantities([cycle_quantities(c, sample, reference, profile) for c in warm])
    per_cycle = {
        k: share * cold_q.get(k, Decimal(0)) + (1 - share) * warm_q.get(k, Decimal(0))
        for k in sorted(set(cold_q) | set(warm_q))
    }

    def monthly(key: str) -> Decimal:
        return per_cycle.get(key, Decimal(0)) * cycles_per_month

    def by_prefix(prefix: str) -> Decimal:
        return sum((monthly(k) for k in per_cycle if k.startswith(prefix)), Decimal(0))

    metrics = _presence(
        [cycle_metrics(c, reference) for c in cold],
        [cycle_metrics(c, reference) for c in warm],
        share,
        per_hour,
    )
    detailed = _presence(
        [api_metrics(c, reference) for c in cold], [api_metrics(c, reference) for c in warm], share, per_hour
    )
    # DynamoDB storage: what a cycle adds stays for the results' retention (TTL), the rest stays.
    sizes = [Decimal(c.table.bytes) for c in sample.cycles]
    growth = (sizes[-1] - sizes[0]) / (len(sizes) - 1)
    cycles_kept = Decimal(reference.result_retention_days * 24 * 60) / reference.schedule_minutes
    stored_bytes = sizes[0] - growth + growth * cycles_kept
    # CloudWatch Logs: billed bytes (message + 26 bytes an event); stored compressed for the retention.
    ingested = by_prefix("log_bytes:") + by_prefix("log_events:") * LOG_EVENT_OVERHEAD_BYTES
    text = "".join(
        [i.log + i.platform for c in sample.cycles for i in c.invocations]
        + [
            access_log_line(reference.access_log_format, r) + "\n"
            for c in sample.cycles
            for r in c.api_requests
        ]
    ).encode()
    ratio = Decimal(len(gzip.compress(text))) / Decimal(max(len(text), 1))
    # Logs kept for ever (no retention) grow by a month's every month: the first month's is shown.
    retention = Decimal(reference.log_retention_days or settings.days)
    usage = MonthlyUsage(
        architecture=next(iter(reference.functions.values())).architecture,
        lambda_requests=by_prefix("requests:"),
        lambda_gb_seconds=by_prefix("gb_seconds:"),
        scheduler_invocations=monthly("scheduler_invocations"),
        eventbridge_partner_events=monthly("partner_events"),
        dynamodb_write_units=monthly("dynamodb_write_units"),
        dynamodb_read_units=monthly("dynamodb_read_units"),
        dynamodb_stored_gb=stored_bytes / GIB,
        dynamodb_pitr_gb=stored_bytes / GIB if reference.pitr else Decimal(0),
        api_requests=monthly("api_requests"),
        custom_metrics=sum(metrics.values(), Decimal(0)),
        api_detailed_metrics=sum(detailed.values(), Decimal(0)),
        alarms=Decimal(reference.alarms),
        dashboards=Decimal(reference.dashboards),
        logs_ingested_gb=ingested / GIB,
        logs_stored_gb=ingested / GIB * retention / settings.days * ratio,
        secrets=Decimal(len(sample.secret_ids)),
        secrets_api_calls=monthly("secrets_api_calls"),
        sns_publishes=monthly("sns_publishes"),
        sns_email_deliveries=Decimal(0),
        xray_traces=monthly("xray_traces"),
        ssm_parameters=Decimal(reference.ssm_parameters),
    )
    return Month(
        usage=usage,
        cycles_per_month=cycles_per_month,
        per_cycle=per_cycle,
        per_cycle_cold=cold_q,
        per_cycle_warm=warm_q,
        metrics=metrics,
        api_metrics=detailed,
        stored_bytes=stored_bytes,
        logs_ratio=ratio,
        init_ms=profile.init_ms,
    )
