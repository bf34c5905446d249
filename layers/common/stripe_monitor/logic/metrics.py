"""What the monitor counts: one log line per check, and the CloudWatch metrics (EMF) that the alarms and
the dashboard read. Called on the invocation's thread only: Powertools Metrics is not thread-safe."""

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from stripe_monitor.model.check import CheckRecord, Outcome
from stripe_monitor.model.destination import Health
from stripe_monitor.observability import logger, metrics

_HEALTH_LEVEL = {Health.HEALTHY: 0, Health.DEGRADED: 1, Health.DOWN: 2}


def report_check(record: CheckRecord, health: Health | None) -> None:
    """One log line per check; fleet-wide metrics (for alarms) and per-destination metrics (dashboard)."""
    logger.info("check recorded", check=record.to_dict())
    succeeded = record.outcome is Outcome.OK
    failed = record.outcome not in (Outcome.OK, Outcome.DISABLED)
    metrics.add_metric(name="CheckSucceeded", unit=MetricUnit.Count, value=int(succeeded))
    metrics.add_metric(name="CheckFailed", unit=MetricUnit.Count, value=int(failed))
    per_destination = EphemeralMetrics()
    per_destination.add_dimension(name="destination_id", value=record.destination_id)
    per_destination.add_metric(name="CheckSucceeded", unit=MetricUnit.Count, value=int(succeeded))
    per_destination.add_metric(name="CheckFailed", unit=MetricUnit.Count, value=int(failed))
    per_destination.add_metric(
        name="DestinationDisabled", unit=MetricUnit.Count, value=int(record.outcome is Outcome.DISABLED)
    )
    if record.http_status is not None:
        metrics.add_metric(name="PingLatency", unit=MetricUnit.Milliseconds, value=record.latency_ms)
        per_destination.add_metric(name="PingLatency", unit=MetricUnit.Milliseconds, value=record.latency_ms)
    if health is not None:
        per_destination.add_metric(
            name="DestinationHealth", unit=MetricUnit.Count, value=_HEALTH_LEVEL[health]
        )
    per_destination.flush_metrics()


def report_delivery(destination_id: str, *, latency_ms: int | None, lost: bool) -> None:
    """Fleet-wide (for the alarm) and per destination (for the dashboard)."""
    per_destination = EphemeralMetrics()
    per_destination.add_dimension(name="destination_id", value=destination_id)
    for sink in (metrics, per_destination):
        sink.add_metric(name="LostPings", unit=MetricUnit.Count, value=int(lost))
        if latency_ms is not None:
            sink.add_metric(name="DeliveryLatency", unit=MetricUnit.Milliseconds, value=latency_ms)
    per_destination.flush_metrics()


def report_not_started(count: int) -> None:
    metrics.add_metric(name="ChecksNotStarted", unit=MetricUnit.Count, value=count)
