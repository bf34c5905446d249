"""Reading what comes from outside (callers, attackers, Stripe, the network) without ever raising anything
but a clear ``ValueError``: ASCII numbers within bounds, JSON of bounded depth, strings of bounded length,
and datetimes in a range the rest of the code can compute with."""

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime

MAX_JSON_DEPTH = 32
MAX_STORED_TEXT = 255  # every string from outside that is stored: ids, codes, statuses
TRUNCATED = "…[truncated]"
# The datetimes the monitor accepts: a year-1 or year-9999 time with an offset overflows on conversion.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
_ASCII_DIGITS = re.compile(r"[0-9]{1,18}")  # str.isdigit() would take "²" and "①", which int() refuses
_NESTING = re.compile(rb'[\[\]{}"\\]')


def parse_int(text: str | None, *, low: int, high: int) -> int | None:
    """``text`` as an integer from ``low`` to ``high``; None when it is not ASCII digits in that range."""
    if text is None or not _ASCII_DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if low <= value <= high else None


def loads_json(data: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """JSON that is valid UTF-8 and nested at most ``max_depth`` deep (deeper would exhaust the parser's
    recursion); ValueError otherwise."""
    raw = data.encode("utf-8", "strict") if isinstance(data, str) else data
    if json_depth(raw) > max_depth:
        raise ValueError(f"JSON nested deeper than {max_depth} levels")
    return json.loads(raw.decode("utf-8"))


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in ``raw`` (strings skipped), in one pass."""
    depth = deepest = 0
    in_string = escaped = False
    for match in _NESTING.finditer(raw):
        char = match.group()
        if in_string:
            if escaped:
                escaped = False
            elif char == b"\\":
                escaped = match.end() < len(raw) and raw[match.end() : match.end() + 1] in b'"\\'
                if escaped:
                    continue
            elif char == b'"':
                in_string = False
            continue
        if char == b'"':
            in_string = True
        elif char in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in b"]}":
            depth -= 1
    return deepest


def bounded(text: str | None, limit: int = MAX_STORED_TEXT) -> str | None:
    """``text`` cut to ``limit`` characters, with a marker when it was longer (a record always fits)."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - len(TRUNCATED)] + TRUNCATED


def _in_range(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("datetime is out of range") from None
    if not EARLIEST <= utc < LATEST:
        raise ValueError(f"datetime must be between {EARLIEST.year} and {LATEST.year}")
    return utc


# An aware datetime in range, as UTC.
BoundedDatetime = Annotated[AwareDatetime, AfterValidator(_in_range)]


# What API Gateway's REST (payload 1.0) events hold, as it always sends them. Anything else invoked directly
# that only looks like one would raise inside the event handler, before any route or error map runs.
_API_TEXT = ("httpMethod", "path")
_API_TEXT_MAPS = ("headers", "queryStringParameters", "pathParameters", "stageVariables")
_API_LIST_MAPS = ("multiValueHeaders", "multiValueQueryStringParameters")


def is_api_request(event: object) -> bool:
    """Whether ``event`` has the shape of an API Gateway REST request (the fields the API reads)."""
    if not isinstance(event, dict) or not all(isinstance(event.get(key), str) for key in _API_TEXT):
        return False
    maps_ok = all(_is_map_of(event.get(key), str) for key in _API_TEXT_MAPS) and all(
        _is_map_of(event.get(key), list) for key in _API_LIST_MAPS
    )
    return (
        maps_ok
        and isinstance(event.get("body"), str | None)
        and isinstance(event.get("isBase64Encoded", False), bool)
        and isinstance(event.get("requestContext", {}), dict)
    )


def _is_map_of(value: object, kind: type) -> bool:
    if value is None:
        return True
    if not isinstance(value, dict) or not all(isinstance(v, kind) for v in value.values()):
        return False
    return kind is not list or all(isinstance(item, str) for items in value.values() for item in items)
