"""The health rule, table-driven: what each run of checks makes of a destination."""

from datetime import UTC, datetime, timedelta

import pytest

from stripe_monitor.logic.health_rule import advance, judge, next_health
from stripe_monitor.model.check import CheckRecord, Outcome, Trigger
from stripe_monitor.model.destination import DestinationState, Health, Verdict

P, S, F, D = Verdict.PASS, Verdict.SOFT, Verdict.FAIL, Verdict.DISABLED
HEALTHY, DEGRADED, DOWN = Health.HEALTHY, Health.DEGRADED, Health.DOWN


def record(outcome: Outcome = Outcome.OK, at: int = 0, **values: object) -> CheckRecord:
    fields: dict[str, object] = {
        "destination_id": "ed_test_1",
        "pinged_at": (datetime(2026, 11, 27, tzinfo=UTC) + timedelta(minutes=at)).isoformat(
            timespec="milliseconds"
        ),
        "outcome": outcome,
        "trigger": Trigger.SCHEDULE,
        "http_status": 200,
        "attempts": 1,
        "latency_ms": 100,
        "event_id": None,
        "event_created": None,
        "livemode": False,
        "stripe_request_id": None,
        "idempotency_key": "k",
        "error_code": None,
        "error_message": None,
        "expires_at": 0,
    }
    return CheckRecord(**(fields | values))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("current", "recent_newest_first", "expected"),
    [
        (None, [P], HEALTHY),
        (None, [F], DEGRADED),
        (None, [S], DEGRADED),
        (None, [D], DOWN),
        (HEALTHY, [F, P, P], DEGRADED),  # one failure degrades
        (DEGRADED, [F, F, P], DOWN),  # two in a row take it down
        (DEGRADED, [F, P, F], DOWN),  # two of the last three
        (DOWN, [P, F, F], DOWN),  # one success is not enough
        (DOWN, [P, P, F], HEALTHY),  # two consecutive successes bring it back
        (DOWN, [S, P, F], DEGRADED),  # back, but still rate limited or slow
        (DOWN, [P, D], DOWN),  # re-enabled: still needs two good checks
        (HEALTHY, [D, P, P], DOWN),  # disabled in Stripe
        (DEGRADED, [P, F, P], HEALTHY),
        (HEALTHY, [S, P, P], DEGRADED),
    ],
)
def test_the_health_rule(current, recent_newest_first, expected):
    assert next_health(current, recent_newest_first) is expected


def test_alternating_failures_do_not_flap():
    state = DestinationState("ed_test_1")
    healths = []
    for minute, outcome in enumerate([Outcome.OK, Outcome.TIMEOUT] * 4):
        state, _ = advance(state, record(outcome, at=minute), slow_ping_ms=5000, now=datetime.now(UTC))
        healths.append(state.health)

    assert healths[3:] == [DOWN] * 5  # once down, one success between failures never brings it back


@pytest.mark.parametrize(
    ("check", "verdict", "reason_part"),
    [
        (record(), P, "ping ok"),
        (record(latency_ms=9000), S, "slow ping"),
        (record(Outcome.RATE_LIMITED, http_status=429), S, "rate limited"),
        (record(event_source_status="pending"), S, "EventBridge event source is pending"),
        (
            record(Outcome.DISABLED, disabled_reason="no_aws_event_source_exists"),
            D,
            "no_aws_event_source_exists",
        ),
        (record(Outcome.NOT_FOUND, http_status=404, error_message="gone"), F, "not_found: gone"),
    ],
)
def test_each_check_gets_a_verdict_and_a_reason(check, verdict, reason_part):
    got, reason = judge(check, slow_ping_ms=5000)

    assert got is verdict
    assert reason_part in reason


def test_a_change_of_health_is_a_transition_with_the_last_error():
    state = DestinationState("ed_test_1", health=HEALTHY, recent=(P, P))
    failing = record(Outcome.STRIPE_ERROR, http_status=500, error_code="api_error", error_message="boom")

    state, first = advance(state, failing, slow_ping_ms=5000, now=datetime.now(UTC))
    state, second = advance(
        state, record(Outcome.STRIPE_ERROR, at=1), slow_ping_ms=5000, now=datetime.now(UTC)
    )
    _, none = advance(state, record(Outcome.STRIPE_ERROR, at=2), slow_ping_ms=5000, now=datetime.now(UTC))

    assert first is not None and (first.from_health, first.to_health) == (HEALTHY, DEGRADED)
    assert first.last_error == "stripe_error: api_error boom"
    assert second is not None and second.to_health == DOWN
    assert none is None  # staying down is not news


def test_a_muted_destination_marks_its_transitions_muted():
    now = datetime.now(UTC)
    state = DestinationState("ed_test_1", health=HEALTHY, muted_until=(now + timedelta(hours=1)).isoformat())

    _, transition = advance(state, record(Outcome.TIMEOUT, http_status=None), slow_ping_ms=5000, now=now)

    assert transition is not None and transition.muted
