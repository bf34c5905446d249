"""Verification of Stripe's ``Stripe-Signature`` header (the same scheme for v1 and v2 thin events).

``Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...][,v0=...]``; each ``v1`` is
HMAC-SHA256(signing secret, ``"{t}.{raw body}"``). Any ``v1`` made with any current secret passes, so
secrets can be rolled; comparisons are constant-time. Written here rather than taken from the stripe SDK,
which would add a large dependency (and cold-start cost) to the layer for these few lines.
"""

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass

from stripe_monitor.errors import SignatureError
from stripe_monitor.model.untrusted import parse_int

DEFAULT_TOLERANCE_SECONDS = 300
MAX_SIGNATURES = 8  # several while a secret is rolled; more only costs HMACs


MAX_HEADER_LENGTH = 4096
_V1 = re.compile(r"[0-9a-f]{64}")  # a hex HMAC-SHA256; anything else cannot match and is not compared


@dataclass(frozen=True)
class SignatureHeader:
    timestamp: int
    signatures: tuple[str, ...]


def parse_header(
    header: str | None, *, now: float, tolerance: int = DEFAULT_TOLERANCE_SECONDS
) -> SignatureHeader:
    """The header's timestamp and ``v1`` signatures, if it is well-formed and within the tolerance."""
    if not header:
        raise SignatureError("missing Stripe-Signature header")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header[:MAX_HEADER_LENGTH].split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = parse_int(value, low=0, high=10**11)
        elif key == "v1" and _V1.fullmatch(value):
            signatures.append(value)
    if timestamp is None or not signatures:
        raise SignatureError("malformed Stripe-Signature header (needs t= and v1=)")
    if timestamp < now - tolerance:
        raise SignatureError("timestamp outside the tolerance (too old)")
    if timestamp > now + tolerance:
        raise SignatureError("timestamp outside the tolerance (in the future)")
    return SignatureHeader(timestamp, tuple(signatures[:MAX_SIGNATURES]))


def signed_with(payload: bytes, header: SignatureHeader, secrets: Sequence[str]) -> bool:
    """Whether any ``v1`` of the header was made with any of the secrets over this payload."""
    signed = f"{header.timestamp}.".encode() + payload
    found = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        # Every candidate is compared, so timing says nothing about which part matched.
        for candidate in header.signatures:
            found |= hmac.compare_digest(expected, candidate)
    return found


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """A header value as Stripe would send it (for stand-ins and tests)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
