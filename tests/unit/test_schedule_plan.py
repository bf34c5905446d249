"""Planning a scheduled run: plain functions, no moto and no sockets."""

from collections.abc import Mapping
from typing import Any

import pytest

from stripe_monitor.logic import schedule_plan as plan
from stripe_monitor.model.check import CheckRecord, Outcome, Trigger
from stripe_monitor.model.destination import DestinationState
from stripe_monitor.stripe.models import EventDestination

A, B, C = "ed_test_1", "ed_test_2", "ed_test_3"


def checked(destination_id: str, outcome: Outcome = Outcome.OK, **state: Any) -> DestinationState:
    record = CheckRecord(
        destination_id=destination_id, pinged_at="2026-11-27T04:00:00.000Z", outcome=outcome,
        trigger=Trigger.SCHEDULE, http_status=200, attempts=1, latency_ms=10, event_id=None,
        event_created=None, livemode=False, stripe_request_id=None, idempotency_key="k", error_code=None,
        error_message=None, expires_at=0,
    )  # fmt: skip
    return DestinationState(destination_id, last_check=record, **state)


def listed(destination_id: str, status: str = "enabled") -> EventDestination:
    return EventDestination.model_validate(
        {
            "id": destination_id,
            "object": "v2.core.event_destination",
            "created": "2026-11-01T00:00:00.000Z",
            "livemode": False,
            "status": status,
            "type": "webhook_endpoint",
        }
    )


def never() -> Any:
    raise AssertionError("asked although not needed")


def test_configured_destinations_are_the_run_and_neither_read_is_waited_for():
    assert plan.run_targets([B, A], never, never) == [B, A]


def test_without_configured_ids_every_listed_destination_is_checked_in_order():
    assert plan.run_targets([], lambda: {C: None, A: None}, never) == [A, C]


def test_when_the_list_failed_the_destinations_seen_before_and_not_removed_are_checked():
    states: Mapping[str, DestinationState] = {
        B: checked(B),
        A: checked(A),
        C: checked(C, removed_at="2026-11-01T00:00:00.000Z"),
    }

    assert plan.run_targets([], lambda: None, lambda: states) == [A, B]


def test_a_redelivered_run_pings_only_what_is_not_recorded_yet():
    assert plan.not_recorded([A, B, C], {B}) == [A, C]


def test_the_idempotency_key_derives_from_the_scheduled_time_and_the_destination():
    assert plan.check_key("2026-11-27T04:00:00.000Z", A) == f"schedule-2026-11-27T04:00:00.000Z-{A}"


@pytest.mark.parametrize(
    ("state", "early"),
    [
        (None, False),
        (DestinationState(A), False),
        (checked(A, Outcome.DISABLED), False),
        (checked(A, Outcome.OK), True),
        (checked(A, Outcome.STRIPE_ERROR), True),  # enabled, however it answered
    ],
)
def test_only_a_destination_last_seen_enabled_is_pinged_before_the_list(state, early):
    assert plan.pinged_before_the_list(state) is early


def test_without_a_key_nothing_is_sent_and_the_list_is_not_waited_for():
    assert plan.first_step(has_key=False, seen_enabled=False, listed_as=never) is plan.Step.CONFIG_ERROR


def test_a_destination_seen_enabled_is_pinged_without_waiting_for_the_list():
    assert plan.first_step(has_key=True, seen_enabled=True, listed_as=never) is plan.Step.PING


@pytest.mark.parametrize(
    ("listing", "step"),
    [
        (listed(A, "disabled"), plan.Step.SKIP_DISABLED),
        (listed(A, "enabled"), plan.Step.PING),
        (None, plan.Step.PING),  # not listed (or the list failed): Stripe answers for it
    ],
)
def test_a_destination_not_seen_enabled_waits_for_the_list_and_is_skipped_when_disabled(listing, step):
    assert plan.first_step(has_key=True, seen_enabled=False, listed_as=lambda: listing) is step


def test_removed_are_the_checked_destinations_gone_from_the_list_and_reported_once():
    states = {
        A: checked(A),  # still listed
        B: checked(B),  # gone: reported
        C: checked(C, removed_at="2026-11-01T00:00:00.000Z"),  # gone, reported before
        "ed_test_4": DestinationState("ed_test_4"),  # never checked (a receipt only)
    }

    assert [s.destination_id for s in plan.removed(states, {A})] == [B]
