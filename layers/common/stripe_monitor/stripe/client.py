"""The only module that talks HTTP: a small urllib3 client for the Stripe API v2 endpoints the monitor uses.

Retries are done by urllib3 itself, with Stripe's rules (``retry.py``). One logical request keeps one
``Idempotency-Key`` across all of its attempts.
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urljoin

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.response import BaseHTTPResponse

from stripe_monitor.config import DEFAULT_API_BASE, DEFAULT_API_VERSION
from stripe_monitor.model.untrusted import loads_json
from stripe_monitor.stripe.deadline import DeadlineGuard, guarded_pool_manager
from stripe_monitor.stripe.models import ErrorBody, EventDestination, EventDestinationPage
from stripe_monitor.stripe.rate_limit import RateLimiter
from stripe_monitor.stripe.retry import StripeRetry

USER_AGENT = "stripe-destination-monitor/0.1 (+https://github.com/stripe-destination-monitor)"

# One pool per execution environment: keep-alive connections survive across warm invocations.
# TLS certificates are verified (urllib3 2.x default, stated here so nobody turns it off by accident).
HTTP_POOL = guarded_pool_manager(num_pools=4, maxsize=32, cert_reqs="CERT_REQUIRED", retries=False)
MAX_LIST_PAGES = 100  # 10,000 destinations at 100 a page: far more than an account has

TransportErrorKind = Literal["timeout", "network_error"]


@dataclass(frozen=True)
class StripeClientConfig:
    api_base: str = DEFAULT_API_BASE
    api_version: str = DEFAULT_API_VERSION
    connect_timeout: float = 3.0
    read_timeout: float = 8.0
    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 5.0
    retry_after_max: float = 10.0
    max_body_bytes: int = 1_000_000


@dataclass(frozen=True)
class StripeResponse:
    """Stripe's final answer to one logical request, after retries."""

    status: int
    body: bytes
    request_id: str | None
    attempts: int
    elapsed_ms: int
    body_too_large: bool = False


class StripeTransportError(Exception):
    """No HTTP answer could be had (timeout, refused, reset, DNS, TLS) within the retries and deadline.

    The message never contains request headers, so never the API key.
    """

    def __init__(self, kind: TransportErrorKind, message: str, *, attempts: int, elapsed_ms: int) -> None:
        super().__init__(message)
        self.kind = kind
        self.attempts = attempts
        self.elapsed_ms = elapsed_ms


class StripePaginationError(Exception):
    """The list's pages cannot be followed to their end."""


class StripeApiError(Exception):
    """A non-2xx answer to a read (list/retrieve) request."""

    def __init__(self, response: StripeResponse) -> None:
        super().__init__(f"Stripe answered HTTP {response.status} (request {response.request_id})")
        self.response = response


@dataclass
class StripeClient:
    """Calls Stripe with one API key. Cheap to create; the connection pool is module-level."""

    api_key: str = field(repr=False)
    config: StripeClientConfig = field(default_factory=StripeClientConfig)
    pool: urllib3.PoolManager = field(default=HTTP_POOL, repr=False)
    rate_limiter: RateLimiter | None = field(default=None, repr=False)

    def ping(self, destination_id: str, *, idempotency_key: str, deadline: float) -> StripeResponse:
        """``POST /v2/core/event_destinations/{id}/ping``; the id must already be validated."""
        return self._request(
            "POST",
            f"/v2/core/event_destinations/{destination_id}/ping",
            deadline=deadline,
            idempotency_key=idempotency_key,
        )

    def list_destinations(self, *, deadline: float, page_size: int = 100) -> Iterator[EventDestination]:
        """Every destination of the account: follows ``next_page_url`` until it is null. A page that
        points back at one already read, or more than ``MAX_LIST_PAGES``, is an error, not a loop."""
        path: str | None = f"/v2/core/event_destinations?limit={page_size}"
        seen: set[str] = set()
        while path is not None:
            if path in seen or len(seen) >= MAX_LIST_PAGES:
                raise StripePaginationError(f"next_page_url repeats or passes {MAX_LIST_PAGES} pages")
            seen.add(path)
            response = self._request("GET", path, deadline=deadline)
            if not 200 <= response.status < 300:
                raise StripeApiError(response)
            if response.body_too_large:
                raise StripePaginationError("a page of the list is larger than the monitor accepts")
            page = EventDestinationPage.model_validate(loads_json(response.body))
            yield from page.data
            path = page.next_page_url

    def _request(
        self, method: str, path: str, *, deadline: float, idempotency_key: str | None = None
    ) -> StripeResponse:
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Stripe-Version": self.config.api_version,
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        body = None
        if method == "POST":
            headers["Content-Type"] = "application/json"
            if not idempotency_key:
                raise ValueError("every POST to Stripe needs an idempotency key")
            headers["Idempotency-Key"] = idempotency_key
            body = b"{}"
        if self.rate_limiter:
            self.rate_limiter.acquire(deadline)
        started = time.monotonic()
        remaining = max(deadline - started, 0.001)
        attempt_budget = min(self.config.connect_timeout + self.config.read_timeout, remaining)
        timeout = urllib3.Timeout(
            connect=min(self.config.connect_timeout, attempt_budget),
            read=min(self.config.read_timeout, attempt_budget),
            total=attempt_budget,
        )
        retry = StripeRetry(
            total=self.config.max_retries,
            other=0,
            redirect=0,
            allowed_methods=None,  # POSTs too: every POST carries an idempotency key
            raise_on_status=False,
            raise_on_redirect=False,
            backoff_max=self.config.backoff_max,
            deadline=deadline,
            attempt_budget=attempt_budget,
            backoff_base=self.config.backoff_base,
            retry_after_cap=self.config.retry_after_max,
            rate_limiter=self.rate_limiter,
        )
        url = urljoin(self.config.api_base, path)
        with DeadlineGuard(deadline) as guard:
            try:
                response, data, too_large = self._send(method, url, body, headers, timeout, retry)
            except MaxRetryError as exc:
                raise _transport_error(exc.reason, retry, started, guard.expired) from None
            except HTTPError as exc:
                raise _transport_error(exc, retry, started, guard.expired) from None
        return StripeResponse(
            status=response.status,
            body=data,
            request_id=response.headers.get("Request-Id"),
            attempts=len(retry.attempt_log) + 1,
            elapsed_ms=_ms_since(started),
            body_too_large=too_large,
        )

    def _send(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout: urllib3.Timeout,
        retry: StripeRetry,
    ) -> tuple[BaseHTTPResponse, bytes, bool]:
        response = self.pool.request(
            method, url, body=body, headers=headers, timeout=timeout, retries=retry,
            redirect=False, preload_content=False,
        )  # fmt: skip
        try:
            data = response.read(self.config.max_body_bytes + 1)
        except (ProtocolError, ReadTimeoutError) as exc:
            # The body broke off mid-way: the same retry rules as for any failed attempt apply.
            response.close()
            current = response.retries if isinstance(response.retries, StripeRetry) else retry
            next_retry = current.increment(method, url, error=exc)
            next_retry.sleep()
            return self._send(method, url, body, headers, timeout, next_retry)
        if len(data) > self.config.max_body_bytes:
            response.close()  # never read an unbounded body; this connection is not reused
            return response, b"", True
        response.release_conn()
        if response.status == 409 and not _is_idempotency_error(data):
            # A conflict may pass; a key reused with other parameters never does. Only the body tells
            # them apart, so 409s are retried here, once the body is read, under the same rules.
            current = response.retries if isinstance(response.retries, StripeRetry) else retry
            try:
                next_retry = current.increment(method, url, response=response)
            except MaxRetryError:
                return response, data, False
            next_retry.sleep()
            return self._send(method, url, body, headers, timeout, next_retry)
        return response, data, False


def _is_idempotency_error(data: bytes) -> bool:
    try:
        return ErrorBody.model_validate(loads_json(data)).error.type == "idempotency_error"
    except ValueError:
        return False


def _transport_error(
    reason: BaseException | None, retry: StripeRetry, started: float, deadline_passed: bool
) -> StripeTransportError:
    kind: TransportErrorKind = "network_error"
    if (
        deadline_passed
        or isinstance(reason, ReadTimeoutError)
        or (isinstance(reason, ConnectTimeoutError) and not isinstance(reason, NewConnectionError))
    ):
        kind = "timeout"
    message = f"{type(reason).__name__}: {reason}"[:300] if reason else "unknown transport error"
    return StripeTransportError(
        kind, message, attempts=len(retry.attempt_log) + 1, elapsed_ms=_ms_since(started)
    )


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
