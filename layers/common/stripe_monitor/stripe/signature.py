"""Verification of Stripe's ``Stripe-Signature`` header (the same scheme for v1 and v2 thin events).

``Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...][,v0=...]``; each ``v1`` is
HMAC-SHA256(signing secret, ``"{t}.{raw body}"``). Any ``v1`` made with any current secret passes, so
secrets can be rolled; comparisons are constant-time. Written here rather than taken from the stripe SDK,
which would add a large dependency (and cold-start cost) to the layer for these few lines.
"""

import hashlib
import hmac
from collections.abc import Sequence

from stripe_monitor.errors import SignatureError

DEFAULT_TOLERANCE_SECONDS = 300


def verify_signature(
    payload: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    now: float,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> None:
    if not header:
        raise SignatureError("missing Stripe-Signature header")
    timestamp, signatures = _parse_header(header)
    if timestamp < now - tolerance:
        raise SignatureError("timestamp outside the tolerance (too old)")
    if timestamp > now + tolerance:
        raise SignatureError("timestamp outside the tolerance (in the future)")
    signed = f"{timestamp}.".encode() + payload
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        # Every candidate is compared, so timing says nothing about which part matched.
        if any(hmac.compare_digest(expected, candidate) for candidate in signatures):
            return
    raise SignatureError("no valid signature for this payload")


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """A header value as Stripe would send it (for stand-ins and tests)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _parse_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise SignatureError("malformed Stripe-Signature header (needs t= and v1=)")
    return timestamp, signatures
