"""What the monitor counts: one log line per check and per delivery, which the per-destination views query
(CloudWatch Logs Insights), and the two custom metrics (EMF) the alarms need, fleet-wide: CheckFailed and
LostPings.
Per-destination metrics cost $0.30 a month each, seven per destination: they are opt-in
(``PerDestinationMetrics``, docs/cost.md). Called on the invocation's thread only: Powertools Metrics is
not thread-safe."""

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from stripe_monitor.model.check import CheckRecord, Outcome
from stripe_monitor.model.destination import Health
from stripe_monitor.observability import logger, metrics

_HEALTH_LEVEL = {Health.HEALTHY: 0, Health.DEGRADED: 1, Health.DOWN: 2}


def report_check(record: CheckRecord, health: Health | None, *, per_destination: bool) -> None:
    logger.info("check recorded", check=record.to_dict(), health=health)
    succeeded = record.outcome is Outcome.OK
    failed = record.outcome not in (Outcome.OK, Outcome.DISABLED)
    if record.outcome is not Outcome.DISABLED:
        # A 1 or a 0 per check, so one metric serves both alarms: FailingChecksAlarm sums the failures,
        # NoSuccessfulCheckAlarm's minimum is 0 while any check succeeds (a disabled one is neither).
        metrics.add_metric(name="CheckFailed", unit=MetricUnit.Count, value=int(failed))
    if not per_destination:
        return
    destination = _per_destination(record.destination_id)
    destination.add_metric(name="CheckSucceeded", unit=MetricUnit.Count, value=int(succeeded))
    destination.add_metric(name="CheckFailed", unit=MetricUnit.Count, value=int(failed))
    destination.add_metric(
        name="DestinationDisabled", unit=MetricUnit.Count, value=int(record.outcome is Outcome.DISABLED)
    )
    if record.http_status is not None:
        destination.add_metric(name="PingLatency", unit=MetricUnit.Milliseconds, value=record.latency_ms)
    if health is not None:
        destination.add_metric(name="DestinationHealth", unit=MetricUnit.Count, value=_HEALTH_LEVEL[health])
    destination.flush_metrics()


def report_delivery(
    destination_id: str, *, latency_ms: int | None, lost: bool, per_destination: bool
) -> None:
    """A ping that arrived (``latency_ms``) or was declared lost: LostPingsAlarm sums ``LostPings``."""
    metrics.add_metric(name="LostPings", unit=MetricUnit.Count, value=int(lost))
    if not per_destination:
        return
    destination = _per_destination(destination_id)
    destination.add_metric(name="LostPings", unit=MetricUnit.Count, value=int(lost))
    if latency_ms is not None:
        destination.add_metric(name="DeliveryLatency", unit=MetricUnit.Milliseconds, value=latency_ms)
    destination.flush_metrics()


def _per_destination(destination_id: str) -> EphemeralMetrics:
    destination = EphemeralMetrics()
    destination.add_dimension(name="destination_id", value=destination_id)
    return destination
