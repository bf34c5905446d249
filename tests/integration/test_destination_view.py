"""GET /destinations tells, per destination, how its receipts arrive (or how to add them) and how its
pings fared in the last 24 hours."""

import json
from typing import Any

import pytest

from tests.integration.test_receipts import (  # noqa: F401 (fixture)
    APPLICATION,
    BRIDGE,
    PROBE,
    check_of,
    receipts,
)
from tests.support import api_event, ping_event

pytestmark = pytest.mark.usefixtures("receipts")
UNWATCHED = "ed_test_61ViewUnmonitored00001"


def destinations(deployment) -> dict[str, dict[str, Any]]:
    answer = deployment.invoke(api_event("GET", "/destinations"))
    return {d["destination_id"]: d for d in json.loads(answer["body"])["destinations"]}


def test_a_listed_destination_without_a_receipt_yet_shows_its_channel_as_configured(deployment):
    deployment.stripe.add_destination(APPLICATION)  # in ReceiptDestinationIds: POST /receipts or a probe
    deployment.invoke(ping_event(APPLICATION))

    view = destinations(deployment)[APPLICATION]

    assert (view["receipt_channel"], view["receipt_hint"]) == ("configured", None)
    assert view["last_check"]["delivery_status"] == "pending"


def test_each_destination_shows_its_receipt_channel_share_and_latency(deployment):
    deployment.stripe.add_destination(UNWATCHED)
    for _ in range(2):
        deployment.invoke(ping_event(PROBE))
        check_of(deployment, PROBE, until="delivered")
    deployment.invoke(ping_event(BRIDGE))
    check_of(deployment, BRIDGE, until="delivered")
    deployment.invoke(ping_event(UNWATCHED))

    view = destinations(deployment)

    probe = view[PROBE]
    assert probe["receipt_channel"] == "webhook"  # as its receipts came, recently
    assert probe["receipt_hint"] is None
    assert probe["delivery_24h"]["pings"] == probe["delivery_24h"]["delivered"] == 2
    assert probe["delivery_24h"]["delivered_share"] == 1.0
    assert probe["last_check"]["delivery_status"] == "delivered"  # as the receipt left it, not as stored
    assert 0 <= probe["delivery_24h"]["latency_p50_ms"] <= probe["delivery_24h"]["latency_p95_ms"]
    assert view[BRIDGE]["receipt_channel"] == "eventbridge"
    unwatched = view[UNWATCHED]
    assert unwatched["receipt_channel"] == "unmonitored"
    assert "WebhookSigningSecretId" in unwatched["receipt_hint"]
    assert unwatched["delivery_24h"]["pings"] == 0
