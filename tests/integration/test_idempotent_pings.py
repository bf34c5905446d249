"""A retried API ping (the same Idempotency-Key) answers with the first check, as Stripe answers a repeated
key; and a receipt settles every check that carries its event, so no retry can leave a false "lost"."""

import json
import time

import pytest

from stripe_monitor.store.idempotency import IdempotencyItems
from tests.conftest import reset_caches
from tests.integration.test_receipts import (  # the receipt channels' fixture, shared
    APPLICATION,
    check_of,
    items_of,
    receipt_function_call,
    receipts,  # noqa: F401
)
from tests.support import ping_event, schedule_event

pytestmark = pytest.mark.usefixtures("receipts")

KEY = "client-retry-key-0001"


def test_a_retried_api_ping_answers_with_the_first_check_and_stores_nothing_new(deployment):
    first = deployment.invoke(ping_event(APPLICATION, KEY))
    again = deployment.invoke(ping_event(APPLICATION, KEY))

    assert again["statusCode"] == first["statusCode"] == 200
    assert json.loads(again["body"]) == json.loads(first["body"])
    assert again["multiValueHeaders"]["Idempotent-Replayed"] == ["true"]
    assert "Idempotent-Replayed" not in first["multiValueHeaders"]
    assert len(items_of(deployment, APPLICATION)) == 1
    assert deployment.stripe.ping_count(APPLICATION) == 1


def test_the_same_key_for_another_destination_is_another_ping(deployment):
    other = "ed_test_61IdempotencyOther0001"
    deployment.stripe.add_destination(other)

    deployment.invoke(ping_event(APPLICATION, KEY))
    deployment.invoke(ping_event(other, KEY))

    assert len(items_of(deployment, APPLICATION)) == len(items_of(deployment, other)) == 1


def test_a_receipt_settles_every_check_of_its_event_so_none_is_declared_lost(deployment, monkeypatch):
    # Two requests with one key that both pinged (they raced, or the key could not be looked up): Stripe
    # gave them one event.
    monkeypatch.setattr(IdempotencyItems, "check_of", lambda *_: None)
    records = [json.loads(deployment.invoke(ping_event(APPLICATION, KEY))["body"]) for _ in range(2)]
    assert len({r["pinged_at"] for r in records}) == 2
    [event_id] = {r["event_id"] for r in records}

    body = json.dumps({"event_id": event_id, "destination_id": APPLICATION})
    answer = json.loads(receipt_function_call("/receipts", body)["body"])
    monkeypatch.setenv("LOST_AFTER_SECONDS", "1")
    reset_caches()
    time.sleep(1.1)
    summary = deployment.invoke(schedule_event())

    assert answer["checks"] == sorted(r["pinged_at"] for r in records)
    assert summary["lost"] == []
    statuses = sorted(i["delivery_status"]["S"] for i in items_of(deployment, APPLICATION))
    assert statuses[:2] == ["delivered", "delivered"]
    assert check_of(deployment, APPLICATION)["delivery_status"] in ("pending", "delivered")
