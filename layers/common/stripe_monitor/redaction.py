"""Keeps secrets out of what the monitor stores, logs and answers.

Two nets: anything shaped like a Stripe key or signing secret, and the exact values of the secrets this
execution environment has read (``remember_secret``), also when percent- or ``\\u``-encoded or glued to
other text, whatever answers at the API base echoes them.
"""

import re
import threading

MAX_ERROR_MESSAGE = 300
REDACTED = "[redacted]"
# Stripe echoes a masked key in some 401 messages. Not after a letter or digit, but after "_" too: an echo
# may be glued to a code (invalid_api_key_sk_test_...).
_SECRET_LIKE = re.compile(r"(?<![A-Za-z0-9])(?:sk|rk|pk|whsec)_[A-Za-z0-9_*]{4,}")
_known: dict[str, re.Pattern[str]] = {}
_lock = threading.Lock()


def remember_secret(value: str) -> None:
    """A secret this environment holds: from now on it is scrubbed wherever it shows up."""
    if len(value) < 8 or value in _known:
        return
    # Each character literally, percent-encoded or as a JSON \\u escape.
    pattern = "".join(
        f"(?:{re.escape(char)}|%{ord(char):02x}|\\\\u{ord(char):04x})" if char.isascii() else re.escape(char)
        for char in value
    )
    with _lock:
        _known[value] = re.compile(pattern, re.IGNORECASE)


def scrub(text: str) -> str:
    """``text`` without any known secret or anything shaped like one."""
    for pattern in list(_known.values()):
        text = pattern.sub(REDACTED, text)
    return _SECRET_LIKE.sub(REDACTED, text)


def clean_message(message: str) -> str:
    """A message from outside, scrubbed and capped in length."""
    cleaned = scrub(message)
    return cleaned if len(cleaned) <= MAX_ERROR_MESSAGE else cleaned[: MAX_ERROR_MESSAGE - 1] + "…"
