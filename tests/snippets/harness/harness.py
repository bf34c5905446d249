"""Runs docs/snippets/forward_receipt.py as a web handler would call it: the raw body on stdin, the
Stripe-Signature header in STRIPE_SIGNATURE, the monitor's URL in MONITOR_WEBHOOK_URL (the snippet reads it).
Usage: python harness.py <snippet>; prints "forwarded" or "not forwarded"."""

import importlib.util
import os
import sys

spec = importlib.util.spec_from_file_location("forward_receipt", sys.argv[1])
assert spec is not None and spec.loader is not None
snippet = importlib.util.module_from_spec(spec)
spec.loader.exec_module(snippet)

forwarded = snippet.forward_ping_receipt(sys.stdin.buffer.read(), os.environ.get("STRIPE_SIGNATURE", ""))
print("forwarded" if forwarded else "not forwarded")
