"""Destination health from recent checks: a documented rule with hysteresis, so it does not flap.

Each check gets a verdict:
- ``fail``: the ping went wrong (any outcome but ``ok``, ``rate_limited`` and ``disabled``);
- ``soft``: it worked, but not well: rate limited by Stripe, slower than the slow-ping threshold, or an
  EventBridge destination whose partner event source is not ``active``;
- ``disabled``: Stripe reports the destination disabled;
- ``pass``: anything else.

The health after a check, from the verdicts of the last checks (newest first):
1. the newest is ``disabled``                     -> ``down``
2. currently ``down``: it stays ``down`` until the last 2 checks are ``pass`` or ``soft``;
3. 2 of the last 3 checks are ``fail``              -> ``down``
4. the newest is ``fail`` or ``soft``                 -> ``degraded``
5. otherwise                                         -> ``healthy``
So one failure degrades, two of three take a destination down, and only two good checks in a row bring
it back: an alternating fail/pass destination stays ``down`` instead of flapping.
"""

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from stripe_monitor.model.check import CheckRecord, Outcome
from stripe_monitor.model.destination import REMOVED, DestinationState, Health, Transition, Verdict

RECENT_VERDICTS_KEPT = 5


def judge(record: CheckRecord, *, slow_ping_ms: int) -> tuple[Verdict, str]:
    """The verdict on one check and a short human reason."""
    if record.outcome is Outcome.DISABLED:
        return Verdict.DISABLED, f"disabled in Stripe ({record.disabled_reason or 'no reason given'})"
    if record.outcome is Outcome.RATE_LIMITED:
        return Verdict.SOFT, "rate limited by Stripe"
    if record.outcome is not Outcome.OK:
        detail = f": {record.error_message}" if record.error_message else ""
        return Verdict.FAIL, f"{record.outcome}{detail}"
    if record.event_source_status not in (None, "active"):
        return Verdict.SOFT, f"EventBridge event source is {record.event_source_status}"
    if record.latency_ms > slow_ping_ms:
        return Verdict.SOFT, f"slow ping ({record.latency_ms} ms > {slow_ping_ms} ms)"
    return Verdict.PASS, "ping ok"


def next_health(current: Health | None, recent: Sequence[Verdict]) -> Health:
    """Apply the rule above; ``recent`` holds the newest verdict first (the check just made)."""
    newest = recent[0]
    last_three = list(recent[:3])
    if newest is Verdict.DISABLED:
        return Health.DOWN
    recovered = len(recent) >= 2 and all(v in (Verdict.PASS, Verdict.SOFT) for v in recent[:2])
    if current is Health.DOWN and not recovered:
        return Health.DOWN
    if last_three.count(Verdict.FAIL) >= 2:
        return Health.DOWN
    if newest in (Verdict.FAIL, Verdict.SOFT):
        return Health.DEGRADED
    return Health.HEALTHY


def advance(
    state: DestinationState, record: CheckRecord, *, slow_ping_ms: int, now: datetime
) -> tuple[DestinationState, Transition | None]:
    """The state after ``record``, and the transition it caused (None when health did not change)."""
    verdict, reason = judge(record, slow_ping_ms=slow_ping_ms)
    # A destination that is checked is not removed.
    moved = replace(state, last_check=record, removed_at=None)
    return observe(moved, verdict, reason, at=record.pinged_at, last_error=_error_of(record), now=now)


def observe(
    state: DestinationState, verdict: Verdict, reason: str, *, at: str, last_error: str | None, now: datetime
) -> tuple[DestinationState, Transition | None]:
    """Count one more verdict: a check's, or a delivery's (a lost ping fails, a late one is soft)."""
    recent = (verdict, *state.recent)[:RECENT_VERDICTS_KEPT]
    health = next_health(state.health, recent)
    changed = health is not state.health
    new_state = replace(
        state,
        health=health,
        health_since=at if changed else state.health_since,
        health_reason=reason if changed else state.health_reason,
        recent=recent,
    )
    if not changed:
        return new_state, None
    transition = Transition(
        destination_id=state.destination_id,
        at=at,
        from_health=state.health,
        to_health=health,
        reason=reason,
        last_error=last_error,
        muted=state.is_muted(now),
    )
    return new_state, transition


def removal(state: DestinationState, *, at: str, now: datetime) -> tuple[DestinationState, Transition]:
    """A destination no longer in the Stripe account: reported once."""
    return replace(state, removed_at=at), Transition(
        destination_id=state.destination_id,
        at=at,
        from_health=state.health,
        to_health=REMOVED,
        reason="the destination is no longer in the Stripe account",
        last_error=None,
        muted=state.is_muted(now),
    )


def _error_of(record: CheckRecord) -> str | None:
    if record.error_code is None and record.error_message is None:
        return None
    return f"{record.outcome}: {record.error_code or ''} {record.error_message or ''}".strip()
