"""The API's pagination cursor: an opaque, URL-safe form of the last key of a page."""

import base64
import binascii
import json

from stripe_monitor.errors import InvalidCursorError
from stripe_monitor.model.times import parse_iso


def encode_cursor(pinged_at: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": pinged_at}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))["after"]
        parse_iso(value)
    except (ValueError, KeyError, TypeError, UnicodeError, binascii.Error):
        raise InvalidCursorError("cursor is not valid; use the next_cursor of a previous page") from None
    return str(value)
