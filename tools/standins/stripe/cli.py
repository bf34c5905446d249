"""The command line of the Stripe stand-in: ``python -m tools.standins.stripe``."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from collections.abc import Sequence
from pathlib import Path

from tools.standins.stripe.model import DEFAULT_API_KEY
from tools.standins.stripe.standin import StripeStandIn


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local stand-in for Stripe API v2 event destinations.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111, help="0 picks a free port (default 12111)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("STRIPE_STANDIN_API_KEY", DEFAULT_API_KEY),
        help="secret key clients must send as Bearer (default: $STRIPE_STANDIN_API_KEY or a fixed test key)",
    )
    parser.add_argument("--destinations", type=Path, help="JSON file of destinations, faults and latency")
    args = parser.parse_args(argv)
    standin = StripeStandIn(args.api_key, host=args.host, port=args.port)
    if args.destinations:
        standin.load_config(args.destinations)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with standin:
        print(standin.url, flush=True)
        while not stop.wait(0.2):
            pass
    return 0
