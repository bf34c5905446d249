"""Validation of the ids that reach a URL path or a table key, before anything is sent or stored."""

import re

from stripe_monitor.errors import InvalidDestinationIdError, InvalidInputError

# Stripe ids: "ed_" (live) or "ed_test_" (sandbox) followed by letters and digits only.
# ASCII classes on purpose: no "/", "..", "%2F", spaces or unicode can reach a URL path or a table key.
_DESTINATION_ID = re.compile(r"ed_(?:test_)?[A-Za-z0-9]{1,100}")
MAX_DESTINATION_ID_LENGTH = 110
EVENT_ID = re.compile(r"evt_[A-Za-z0-9_]{1,251}")  # a Stripe event id: it becomes a table key
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII, no spaces, as Stripe accepts


def validate_destination_id(value: object) -> str:
    """Return ``value`` if it is a well-formed destination id, else raise with a message saying why."""
    if not isinstance(value, str) or not value:
        raise InvalidDestinationIdError("destination id is required (e.g. ed_test_61RM8ltWcTW4mbsxf16RJy)")
    if len(value) > MAX_DESTINATION_ID_LENGTH:
        raise InvalidDestinationIdError(
            f"destination id is too long ({len(value)} characters, at most {MAX_DESTINATION_ID_LENGTH})"
        )
    if not _DESTINATION_ID.fullmatch(value):
        raise InvalidDestinationIdError(
            "destination id must look like ed_... or ed_test_... followed by letters and digits only"
        )
    return value


def validate_idempotency_key(value: str) -> str:
    """An idempotency key that can be sent to Stripe as an HTTP header."""
    if not IDEMPOTENCY_KEY.fullmatch(value):
        raise InvalidInputError(
            "idempotency key must be 1-255 printable ASCII characters without spaces",
            code="invalid_idempotency_key",
        )
    return value


def is_event_id(value: object) -> bool:
    return isinstance(value, str) and EVENT_ID.fullmatch(value) is not None
