"""The Stripe stand-in: the slice of Stripe API v2 the monitor talks to, served over real sockets.

``python -m tools.standins.stripe --port 12111 --destinations dests.json`` runs it alone.
"""

from tools.standins.stripe.standin import (
    DEFAULT_API_KEY,
    FAULT_KINDS,
    PING_EVENT_TYPE,
    Destination,
    DestinationType,
    Fault,
    FaultKind,
    RequestRecord,
    Route,
    StripeStandIn,
)

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
