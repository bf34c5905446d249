"""Sends one ping with the current Stripe key; after a 401 the key is read again, once, so a rotated key
works without a redeploy."""

from collections.abc import Callable
from dataclasses import replace

from stripe_monitor.errors import ConfigError
from stripe_monitor.model.check import Outcome, PingResult
from stripe_monitor.observability import logger
from stripe_monitor.redaction import clean_message
from stripe_monitor.stripe.classify import ping_destination
from stripe_monitor.stripe.client import StripeClient, StripeClientConfig
from stripe_monitor.stripe.rate_limit import RateLimiter

ApiKeyProvider = Callable[..., str]  # (secret_id, *, force_fetch=False) -> key; raises ConfigError


class Pinger:
    def __init__(
        self, get_api_key: ApiKeyProvider, secret_id: str, client_config: StripeClientConfig
    ) -> None:
        self._get_api_key = get_api_key
        self.secret_id = secret_id
        self.client_config = client_config

    def api_key(self) -> str:
        """The key as cached (raises ``ConfigError`` when the secret cannot give one)."""
        return self._get_api_key(self.secret_id)

    def client(self, api_key: str, rate_limiter: RateLimiter | None = None) -> StripeClient:
        return StripeClient(api_key, self.client_config, rate_limiter=rate_limiter)

    def ping(
        self, destination_id: str, key: str, deadline: float, limiter: RateLimiter | None = None
    ) -> PingResult:
        """Ping and classify; a ``config_error`` result (nothing sent) when there is no usable key."""
        try:
            api_key = self.api_key()
        except ConfigError as exc:
            return config_error(destination_id, key, exc)
        result = ping_destination(
            self.client(api_key, limiter), destination_id, idempotency_key=key, deadline=deadline
        )
        if result.http_status != 401:
            return result
        fresh_key = self.fresh_key_after_401(api_key)
        if fresh_key is None:
            return result
        retried = ping_destination(
            self.client(fresh_key, limiter), destination_id, idempotency_key=key, deadline=deadline
        )
        return replace(retried, attempts=result.attempts + retried.attempts)

    def fresh_key_after_401(self, rejected_key: str) -> str | None:
        """The key may have been rotated since it was cached: read it again, once. None if unchanged."""
        try:
            fresh_key = self._get_api_key(self.secret_id, force_fetch=True)
        except ConfigError:
            return None
        if fresh_key == rejected_key:
            return None
        logger.info("Stripe answered 401: using the re-read key")
        return fresh_key


def config_error(destination_id: str, key: str, exc: ConfigError) -> PingResult:
    return PingResult(
        destination_id=destination_id,
        outcome=Outcome.CONFIG_ERROR,
        idempotency_key=key,
        attempts=0,
        latency_ms=0,
        error_code="config_error",
        error_message=clean_message(str(exc)),
    )
