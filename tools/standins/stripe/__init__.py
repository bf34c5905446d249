"""A local stand-in for the slice of Stripe API v2 the monitor talks to, served over real sockets.

Routes: ``POST /v2/core/event_destinations/{id}/ping``, ``GET /v2/core/event_destinations[/{id}]`` and
``GET /v2/core/events/{id}``. Wire format follows the v2 notes (full objects with explicit nulls, v2 list
envelope without ``object``, v2 error shape). Faults and latency can be scripted per destination so client
retry and validation paths are exercised over HTTP/1.1 keep-alive connections, not mocks.

The pieces, each importing only those before it: ``model`` (destinations, faults, request records, v2
events and page tokens), ``faults`` (fault scripts and latency), ``delivery`` (signed webhook deliveries
and EventBridge envelopes), ``state`` (what the stand-in knows; delivers pings), ``server`` (HTTP),
``standin`` (``StripeStandIn``: starts and stops the server) and ``cli``.

Run it alone with ``python -m tools.standins.stripe --port 12111 --destinations dests.json``.
"""

from tools.standins.stripe.model import (
    DEFAULT_API_KEY,
    FAULT_KINDS,
    PING_EVENT_TYPE,
    Destination,
    DestinationType,
    Fault,
    FaultKind,
    RequestRecord,
    Route,
)
from tools.standins.stripe.standin import StripeStandIn

__all__ = [
    "DEFAULT_API_KEY",
    "FAULT_KINDS",
    "PING_EVENT_TYPE",
    "Destination",
    "DestinationType",
    "Fault",
    "FaultKind",
    "RequestRecord",
    "Route",
    "StripeStandIn",
]
