"""Stripe, as the monitor uses it: the HTTP client (the only code that talks HTTP), its retry rules, the
models that validate Stripe's answers, the classification of a ping, and webhook signatures."""
