"""Keeps secrets out of what the monitor stores, logs and answers."""

import re

MAX_ERROR_MESSAGE = 300
# Stripe echoes a masked key in some 401 messages; anything key-shaped is removed before it is stored.
_SECRET_LIKE = re.compile(r"\b(?:sk|rk|pk|whsec)_[A-Za-z0-9_*]{4,}")


def clean_message(message: str) -> str:
    """Remove anything shaped like a Stripe key or signing secret and cap the length."""
    cleaned = _SECRET_LIKE.sub("[redacted]", message)
    return cleaned if len(cleaned) <= MAX_ERROR_MESSAGE else cleaned[: MAX_ERROR_MESSAGE - 1] + "…"
