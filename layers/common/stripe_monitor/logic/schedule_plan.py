"""What a scheduled run does, decided by plain functions (no I/O): which destinations it checks, which
are pinged at once and which wait for Stripe's list of destinations, which are skipped as disabled, and
which are reported removed."""

from collections.abc import Callable, Collection, Iterable, Mapping
from enum import StrEnum

from stripe_monitor.model.check import Outcome
from stripe_monitor.model.destination import DestinationState
from stripe_monitor.stripe.models import EventDestination


class Step(StrEnum):
    """What a run does for one destination before it records a check."""

    CONFIG_ERROR = "config_error"  # no usable Stripe key: nothing is sent
    SKIP_DISABLED = "skip_disabled"  # Stripe lists it disabled: not pinged, recorded as disabled
    PING = "ping"


def run_targets(
    configured: Collection[str],
    listed: Callable[[], Collection[str] | None],
    stored_states: Callable[[], Mapping[str, DestinationState]],
) -> list[str]:
    """The configured destinations; else every one Stripe listed; else, when the list failed, every one
    seen before and not removed. ``listed`` and ``stored_states`` wait for reads that may still be on their
    way: each is only asked when needed."""
    if configured:
        return list(configured)
    if (listed_ids := listed()) is not None:
        return sorted(listed_ids)
    return sorted(d for d, state in stored_states().items() if not state.removed_at)


def not_recorded(targets: Iterable[str], recorded: Collection[str]) -> list[str]:
    """A redelivered run pings nothing twice: only destinations without a check at this time."""
    return [d for d in targets if d not in recorded]


def check_key(scheduled_time: str, destination_id: str) -> str:
    """The Stripe idempotency key of a scheduled ping: the same for every delivery of the same run."""
    return f"schedule-{scheduled_time}-{destination_id}"


def pinged_before_the_list(state: DestinationState | None) -> bool:
    """A destination last seen enabled is pinged at once, beside Stripe's list; any other waits for it."""
    return bool(state and state.last_check and state.last_check.outcome is not Outcome.DISABLED)


def first_step(
    *, has_key: bool, seen_enabled: bool, listed_as: Callable[[], EventDestination | None]
) -> Step:
    """``listed_as`` waits for Stripe's list: it is asked only for a destination not seen enabled."""
    if not has_key:
        return Step.CONFIG_ERROR
    if not seen_enabled and is_disabled(listed_as()):
        return Step.SKIP_DISABLED
    return Step.PING


def is_disabled(destination: EventDestination | None) -> bool:
    """Stripe lists it disabled. (An unlisted destination is pinged: Stripe then answers for it.)"""
    return destination is not None and destination.status == "disabled"


def removed(states: Mapping[str, DestinationState], listed: Collection[str]) -> list[DestinationState]:
    """Destinations checked before, no longer in the account, and not yet reported removed."""
    return [
        state
        for destination_id, state in states.items()
        if destination_id not in listed and not state.removed_at and state.last_check is not None
    ]
