"""Every event destination of the account, as Stripe lists it, for a scheduled run without configured ids."""

from pydantic import ValidationError

from stripe_monitor.logic.pinger import Pinger
from stripe_monitor.redaction import clean_message
from stripe_monitor.stripe.client import StripeApiError, StripePaginationError, StripeTransportError
from stripe_monitor.stripe.models import EventDestination
from stripe_monitor.stripe.rate_limit import RateLimiter

Listing = tuple[dict[str, EventDestination] | None, str | None]  # (destinations by id, or why not)


def list_destinations(
    pinger: Pinger, api_key: str, limiter: RateLimiter, *, deadline: float, page_size: int
) -> Listing:
    """Every destination of the account with its state (all pages), or the error that prevented it; never
    raises for what Stripe or the network does. On a 401 the key is re-read once."""
    for attempt in range(2):
        try:
            pages = pinger.client(api_key, limiter).list_destinations(deadline=deadline, page_size=page_size)
            return {d.id: d for d in pages}, None
        except StripeApiError as exc:
            fresh = (
                pinger.fresh_key_after_401(api_key) if exc.response.status == 401 and not attempt else None
            )
            if fresh is None:
                return None, f"listing destinations failed: HTTP {exc.response.status}"
            api_key = fresh
        except (StripeTransportError, StripePaginationError, ValidationError) as exc:
            return None, clean_message(f"listing destinations failed: {type(exc).__name__}: {exc}")
    return None, "listing destinations failed"
