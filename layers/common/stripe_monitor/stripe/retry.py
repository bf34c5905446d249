"""urllib3's ``Retry`` with Stripe's published client rules, a deadline, and the client-side rate limit.

Connection errors, read timeouts, 409, 429 and 5xx are retried with exponential backoff and jitter;
``Stripe-Should-Retry`` overrides the status rule; ``Retry-After`` is honoured up to a cap; and no attempt is
started that could not finish before the caller's deadline.
"""

import random
import time
from types import TracebackType
from typing import Any, Self

from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    ProtocolError,
    ReadTimeoutError,
    ResponseError,
    SSLError,
)
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from stripe_monitor.stripe.rate_limit import RateLimiter


class StripeRetry(Retry):
    """urllib3's ``Retry`` with Stripe's rules, a deadline and an attempt log shared by its copies."""

    def __init__(
        self,
        *args: Any,
        deadline: float = float("inf"),
        attempt_budget: float = 0.0,
        backoff_base: float = 0.5,
        retry_after_cap: float = 10.0,
        attempt_log: list[str] | None = None,
        rate_limiter: RateLimiter | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = deadline
        self.attempt_budget = attempt_budget
        self.backoff_base = backoff_base
        self.retry_after_cap = retry_after_cap
        # Shared (not copied) by every Retry that ``new`` derives, so the caller can count attempts.
        self.attempt_log = attempt_log if attempt_log is not None else []
        self.rate_limiter = rate_limiter
        self.planned_delay = 0.0

    def new(self, **kw: Any) -> Self:
        extras = {
            "deadline": self.deadline,
            "attempt_budget": self.attempt_budget,
            "backoff_base": self.backoff_base,
            "retry_after_cap": self.retry_after_cap,
            "attempt_log": self.attempt_log,
            "rate_limiter": self.rate_limiter,
        }
        return super().new(**extras, **kw)

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        # Every error status goes to ``increment``, which sees the headers and makes the real decision; but a
        # 409, whose body must be read first, comes back to the client (``StripeClient._send``).
        return status_code >= 400 and status_code != 409

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        delay = self._delay_before_next_attempt(response)
        retry_allowed = self._stripe_allows_retry(response, error)
        fits = time.monotonic() + delay + self.attempt_budget <= self.deadline
        if not (retry_allowed and fits):
            # With raise_on_status=False urllib3 hands back the response; errors surface as MaxRetryError.
            reason = error or ResponseError(f"not retried (HTTP {response.status if response else '?'})")
            raise MaxRetryError(_pool, url or "", reason) from reason  # type: ignore[arg-type]
        new_retry = super().increment(method, url, response, error, _pool, _stacktrace)
        new_retry.planned_delay = delay
        self.attempt_log.append(f"HTTP {response.status}" if response else type(error).__name__)
        return new_retry

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        if self.planned_delay > 0:
            time.sleep(self.planned_delay)
        if self.rate_limiter:  # every attempt counts against the rate limit, retries included
            self.rate_limiter.acquire(self.deadline)

    @staticmethod
    def _stripe_allows_retry(response: BaseHTTPResponse | None, error: Exception | None) -> bool:
        if response is None:
            # TLS failures will not heal by retrying; connection and read failures may.
            return not isinstance(error, SSLError) and isinstance(
                error, ConnectTimeoutError | ReadTimeoutError | ProtocolError
            )
        should_retry = (response.headers.get("Stripe-Should-Retry") or "").lower()
        if should_retry in ("true", "false"):
            return should_retry == "true"
        return response.status in (409, 429) or response.status >= 500

    def _delay_before_next_attempt(self, response: BaseHTTPResponse | None) -> float:
        retry_number = len(self.history) + 1
        backoff = min(self.backoff_base * 2.0 ** (retry_number - 1), self.backoff_max)
        # Jitter, and never less than the base (0.5 s by default), as Stripe's own clients do.
        backoff = max(backoff * random.uniform(0.5, 1.0), self.backoff_base)
        retry_after = None
        if response is not None and self.respect_retry_after_header:
            try:
                retry_after = self.get_retry_after(response)
            except HTTPError:  # an unparseable Retry-After is ignored, not fatal
                retry_after = None
        if retry_after is not None:
            return max(backoff, min(retry_after, self.retry_after_cap))
        return backoff
