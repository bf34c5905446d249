"""How a destination's pings fared: the share delivered and p50/p95 latency (nearest rank)."""

from typing import Any

from stripe_monitor.logic.delivery_stats import delivery_stats
from stripe_monitor.model.check import CheckRecord, DeliveryStatus, Outcome, Trigger


def check(status: DeliveryStatus | None, latency_ms: int | None = None, n: int = 0) -> CheckRecord:
    values: dict[str, Any] = {
        "destination_id": "ed_test_1", "pinged_at": f"2026-11-27T04:{n:02d}:00.000Z", "outcome": Outcome.OK,
        "trigger": Trigger.SCHEDULE, "http_status": 200, "attempts": 1, "latency_ms": 100,
        "event_id": "evt_1", "event_created": None, "livemode": False, "stripe_request_id": None,
        "idempotency_key": "k", "error_code": None, "error_message": None, "expires_at": 0,
        "delivery_status": status, "delivery_latency_ms": latency_ms,
    }  # fmt: skip
    return CheckRecord(**values)


def test_the_share_counts_settled_pings_and_latency_takes_nearest_ranks():
    delivered = [check(DeliveryStatus.DELIVERED, ms, n) for n, ms in enumerate(range(100, 1900, 100))]
    checks = [
        *delivered,  # 18 delivered: 100 .. 1800 ms
        check(DeliveryStatus.LATE, 200_000, 40),
        check(DeliveryStatus.LOST, n=41),
        check(DeliveryStatus.PENDING, n=42),  # may still arrive: not in the share yet
        check(DeliveryStatus.UNMONITORED, n=43),  # nothing was expected
        check(None, n=44),  # the ping failed: nothing was sent
    ]

    stats = delivery_stats(checks)

    assert stats == {
        "pings": 21,
        "delivered": 19,
        "lost": 1,
        "pending": 1,
        "delivered_share": 0.95,
        "latency_p50_ms": 1000,
        "latency_p95_ms": 200_000,
    }


def test_without_expected_pings_there_is_no_share_and_no_latency():
    stats = delivery_stats([check(DeliveryStatus.UNMONITORED), check(None)])

    assert (stats["pings"], stats["delivered_share"], stats["latency_p50_ms"]) == (0, None, None)
