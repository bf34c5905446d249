"""Is a request to the public webhook route a delivery Stripe signed? Checked with the signing secrets of
the destination the event names, whether Stripe sent it or the user's application forwarded it unchanged.

A forged request must cost nothing: a malformed or stale header is refused before any secret is read, the
secrets are cached, and after a signature that matches none of them they are read again (a secret may have
been rolled) at most once per ``refresh_seconds``. A failed re-read keeps the secrets known before; a
forged request is always a 400, never a 5xx.
"""

import time
from collections.abc import Callable

from stripe_monitor.errors import ConfigError, SignatureError
from stripe_monitor.model.receipt import Channel, SigningSecrets
from stripe_monitor.observability import logger
from stripe_monitor.stripe.signature import SignatureHeader, parse_header, signed_with

SecretsReader = Callable[..., SigningSecrets]  # (secret_id, *, force_fetch=False) -> secrets
REFRESH_SECONDS = 60.0


class WebhookVerifier:
    def __init__(
        self,
        secret_id: str,
        read: SecretsReader,
        *,
        tolerance: int,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secret_id = secret_id
        self._read = read
        self.tolerance = tolerance
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._known: SigningSecrets | None = None
        self._refreshed_at = float("-inf")

    def verify(self, payload: bytes, header: str | None, destination_id: str | None) -> Channel:
        """The channel that delivered ``payload`` when ``header`` signs it: ``application`` when the secret is
        the destination's own (listed by id: the user's application forwarded it), ``webhook`` when it is a
        shared one (a probe destination pointed at the stack). ``SignatureError`` (a 400) otherwise."""
        parsed = parse_header(header, now=self._clock(), tolerance=self.tolerance)
        if channel := _signed_by(payload, parsed, self._secrets(), destination_id):
            return channel
        now = time.monotonic()
        if now - self._refreshed_at >= self.refresh_seconds:
            self._refreshed_at = now
            if channel := _signed_by(payload, parsed, self._secrets(force_fetch=True), destination_id):
                return channel
        raise SignatureError("no valid signature for this payload")

    def _secrets(self, *, force_fetch: bool = False) -> SigningSecrets:
        """The secrets as cached (Powertools Parameters), or as last read when a read fails; ``ConfigError``
        only when they were never readable."""
        try:
            self._known = self._read(self.secret_id, force_fetch=force_fetch)
        except ConfigError:
            if self._known is None:
                raise
            logger.warning("signing secrets not read again; the ones read before are used")
        return self._known


def _signed_by(
    payload: bytes, header: SignatureHeader, secrets: SigningSecrets, destination_id: str | None
) -> Channel | None:
    if not signed_with(payload, header, secrets.for_destination(destination_id)):
        return None
    return Channel.APPLICATION if destination_id in secrets.by_destination else Channel.WEBHOOK
