"""The API's pagination cursor: an opaque, URL-safe form of the last key of a page. A caller's cursor is
decoded into a typed model (and bounded in size and depth); anything else is ``InvalidCursorError``."""

import base64
import json
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from stripe_monitor.errors import InvalidCursorError
from stripe_monitor.model.untrusted import loads_json

MAX_CURSOR_LENGTH = 200
# A key of the table: an ISO time with milliseconds (every partition the API pages sorts by one).
SortKey = Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")]


class _Cursor(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    after: SortKey


def encode_cursor(pinged_at: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": pinged_at}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        if len(cursor) > MAX_CURSOR_LENGTH or not cursor.isascii():
            raise ValueError("not a cursor")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return _Cursor.model_validate(loads_json(raw, max_depth=2)).after
    except ValueError:  # pydantic's ValidationError and binascii.Error are ValueErrors
        raise InvalidCursorError("cursor is not valid; use the next_cursor of a previous page") from None
