"""How a destination's pings fared on their way over a period: the share delivered and the delivery
latency's p50 and p95 (nearest rank), from its checks."""

import math
from collections.abc import Sequence
from typing import Any

from stripe_monitor.model.check import CheckRecord, DeliveryStatus

_ARRIVED = (DeliveryStatus.DELIVERED, DeliveryStatus.LATE)
_EXPECTED = (*_ARRIVED, DeliveryStatus.LOST, DeliveryStatus.PENDING)


def delivery_stats(checks: Sequence[CheckRecord]) -> dict[str, Any]:
    """Over the checks whose ping event was expected to arrive (monitored, and accepted by Stripe)."""
    expected = [c for c in checks if c.delivery_status in _EXPECTED]
    arrived = sorted(c.delivery_latency_ms or 0 for c in expected if c.delivery_status in _ARRIVED)
    settled = [c for c in expected if c.delivery_status is not DeliveryStatus.PENDING]
    return {
        "pings": len(expected),
        "delivered": len(arrived),
        "lost": sum(1 for c in expected if c.delivery_status is DeliveryStatus.LOST),
        "pending": len(expected) - len(settled),
        # Of the pings that are settled (a pending one may still arrive).
        "delivered_share": round(len(arrived) / len(settled), 4) if settled else None,
        "latency_p50_ms": _percentile(arrived, 50),
        "latency_p95_ms": _percentile(arrived, 95),
    }


def _percentile(ordered: Sequence[int], percent: int) -> int | None:
    if not ordered:
        return None
    return ordered[max(math.ceil(percent / 100 * len(ordered)) - 1, 0)]
