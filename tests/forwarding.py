"""Forwarded receipts, end to end: the stack's webhook route on a local API Gateway, the user's application
as a small HTTP server that Stripe's stand-in delivers to, and the signing-secret map that names the
application's destination. Shared by tests/integration/test_forwarded_receipts.py and tests/snippets/.
"""

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import urllib3

from stripe_monitor.wiring import ping_services
from tests.conftest import Deployment, reset_caches
from tests.support import ping_event, receipt_app
from tools.standins.api_gateway import LocalApiGateway, Route
from tools.standins.service import LoopbackHttpServer

# The user's application: a webhook destination whose ping events it forwards to the stack.
APPLICATION = "ed_test_61ForwardingApplication1"
APPLICATION_SECRET = "whsec_FAKEforwardingApplicationSecret001"
# Another destination forwarded by another application, with its own secret.
NEIGHBOUR = "ed_test_61ForwardingNeighbour001"
NEIGHBOUR_SECRET = "whsec_FAKEforwardingNeighbourSecret0001"
# A probe destination pointed straight at the stack, verified with the shared secrets.
PROBE = "ed_test_61ForwardingProbe0000001"
SHARED_SECRET = "whsec_FAKEsharedProbeSigningSecret00001"


def secret_map(**overrides: list[str]) -> str:
    """The WebhookSigningSecretId secret: the two applications' destinations by id, and the shared secrets."""
    document: dict[str, list[str]] = {
        APPLICATION: [APPLICATION_SECRET],
        NEIGHBOUR: [NEIGHBOUR_SECRET],
        "signing_secrets": [SHARED_SECRET],
    }
    return json.dumps(document | overrides)


@dataclass(frozen=True)
class Delivery:
    """One request as a web framework hands it to the handler: the raw body and the headers."""

    body: bytes
    headers: dict[str, str]

    @property
    def signature(self) -> str:
        return next(v for k, v in self.headers.items() if k.lower() == "stripe-signature")

    @property
    def event_id(self) -> str:
        event_id: str = json.loads(self.body)["id"]
        return event_id


class CaptureServer(LoopbackHttpServer):
    """An HTTP server on 127.0.0.1 that keeps each request it gets and answers ``status``: the user's
    application (Stripe's stand-in delivers to it), or a monitor that a snippet forwards to."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[Delivery] = []
        self._arrived = threading.Condition()
        capture = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with capture._arrived:
                    capture.received.append(Delivery(body, dict(self.headers.items())))
                    capture._arrived.notify_all()
                self.send_response(capture.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(Handler, name="capture")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stripe/webhook"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Delivery]:
        """The requests received, once there are ``count`` of them (waits, bounded)."""
        give_up = time.monotonic() + timeout
        with self._arrived:
            while len(self.received) < count:
                if not self._arrived.wait(give_up - time.monotonic()):
                    raise AssertionError(f"{len(self.received)} requests arrived, not {count}")
            return list(self.received)

    def delivery_of(self, event_id: str, timeout: float = 10.0) -> Delivery:
        """The delivery of that event (waits for it, bounded)."""
        give_up = time.monotonic() + timeout
        with self._arrived:
            while True:
                found = [d for d in self.received if d.event_id == event_id]
                if found:
                    return found[0]
                if not self._arrived.wait(give_up - time.monotonic()):
                    raise AssertionError(f"no delivery of {event_id} reached the application")


@dataclass
class ForwardingStack:
    deployment: Deployment
    gateway: LocalApiGateway
    application: CaptureServer

    @property
    def webhook_url(self) -> str:
        """What the user sets as MONITOR_WEBHOOK_URL: the stack's ApiUrl and /webhooks/stripe."""
        return f"{self.gateway.url}/webhooks/stripe"

    def put_signing_secrets(self, value: str) -> None:
        """A new value of the secret named by WebhookSigningSecretId (the functions' caches keep the old)."""
        self.deployment.aws.put_secret(signing_secret_id(self.deployment), value)

    def ping(self, destination_id: str = APPLICATION) -> dict[str, Any]:
        """An API ping; the check as the API answers it."""
        answer = self.deployment.invoke(ping_event(destination_id))
        assert answer["statusCode"] == 200, answer["body"]
        record: dict[str, Any] = json.loads(answer["body"])
        return record

    def ping_and_capture(self, destination_id: str = APPLICATION) -> tuple[dict[str, Any], Delivery]:
        """An API ping, and its signed delivery as the user's application got it from Stripe."""
        record = self.ping(destination_id)
        return record, self.application.delivery_of(record["event_id"])

    def forward(self, body: bytes, signature: str | None) -> urllib3.BaseHTTPResponse:
        """What the snippets do: the raw body, unchanged, and the Stripe-Signature header to the stack."""
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["Stripe-Signature"] = signature
        return urllib3.request("POST", self.webhook_url, body=body, headers=headers, retries=False)

    def check(self, destination_id: str, pinged_at: str) -> dict[str, Any]:
        """The check as stored now."""
        record = ping_services().deliveries.table.checks.get(destination_id, pinged_at)
        assert record is not None, f"no check of {destination_id} at {pinged_at}"
        return record.to_dict()

    def receipt_item(self, destination_id: str, event_id: str) -> dict[str, Any] | None:
        client = self.deployment.aws.client("dynamodb")
        key = {"destination_id": {"S": f"#receipt#{destination_id}"}, "pinged_at": {"S": event_id}}
        item: dict[str, Any] | None = client.get_item(
            TableName=self.deployment.table_name, Key=key, ConsistentRead=True
        ).get("Item")
        return item


def signing_secret_id(deployment: Deployment) -> str:
    return f"{deployment.secret_id}/webhook"


@contextmanager
def forwarding_stack(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Iterator[ForwardingStack]:
    """The stack with the signing-secret map as its only receipt configuration (no ReceiptDestinationIds),
    its API on 127.0.0.1, and the user's application as the APPLICATION destination's URL in Stripe."""
    import app

    receipt_handler = receipt_app().lambda_handler
    deployment.aws.put_secret(signing_secret_id(deployment), secret_map())
    monkeypatch.setenv("WEBHOOK_SECRET_ID", signing_secret_id(deployment))
    # The tests count each delivery in the per-destination metrics (off by default: they cost).
    monkeypatch.setenv("PER_DESTINATION_METRICS", "true")
    monkeypatch.delenv("RECEIPT_DESTINATION_IDS", raising=False)
    monkeypatch.delenv("RECEIPT_EVENT_BUS_NAMES", raising=False)
    reset_caches()
    routes = [
        Route("POST", "/destinations/{destination_id}/ping", app.lambda_handler),
        Route("POST", "/webhooks/stripe", receipt_handler, iam=False),
    ]
    with LocalApiGateway(routes) as gateway, CaptureServer() as application:
        stripe = deployment.stripe
        stripe.add_destination(APPLICATION, url=application.url, signing_secret=APPLICATION_SECRET)
        stripe.add_destination(NEIGHBOUR, url=application.url, signing_secret=NEIGHBOUR_SECRET)
        stripe.add_destination(PROBE, url=f"{gateway.url}/webhooks/stripe", signing_secret=SHARED_SECRET)
        yield ForwardingStack(deployment, gateway, application)
    reset_caches()
