"""Forward Stripe's ping events to the destination monitor: the proof that they reached this application.

Python 3.10+, standard library only. Call ``forward_ping_receipt(raw_body, stripe_signature)`` in your
Stripe webhook handler with the request's raw body (the bytes as received, not re-serialized JSON) and its
``Stripe-Signature`` header. A ``v2.core.event_destination.ping`` event goes, unchanged, to
MONITOR_WEBHOOK_URL (the stack's ApiUrl followed by /webhooks/stripe), which verifies Stripe's signature;
any other event is left alone. No AWS credentials and no secret needed. A failure is logged, never
raised: the monitor cannot break your handler.

    @app.post("/stripe/webhook")  # Flask
    def stripe_webhook():
        body, signature = request.get_data(), request.headers.get("Stripe-Signature", "")
        ...  # verify and handle the event as you do today
        forward_ping_receipt(body, signature)
        return "", 200
"""

import json
import logging
import os
import urllib.request

PING = "v2.core.event_destination.ping"


def forward_ping_receipt(raw_body: bytes, stripe_signature: str, url: str | None = None) -> bool:
    """True when the monitor accepted the ping; False for any other event, or when forwarding failed."""
    url = url or os.environ.get("MONITOR_WEBHOOK_URL")
    try:
        if not url or json.loads(raw_body).get("type") != PING:
            return False
        headers = {"Content-Type": "application/json", "Stripe-Signature": stripe_signature}
        request = urllib.request.Request(url, raw_body, headers, method="POST")  # noqa: S310 (your URL)
        with urllib.request.urlopen(request, timeout=5):  # noqa: S310 (any status but 2xx raises)
            return True
    except Exception as exc:  # whatever happens to the monitor, your handler goes on
        logging.getLogger(__name__).warning("ping receipt not forwarded: %s", exc)
        return False
