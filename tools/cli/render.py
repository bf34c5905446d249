"""How answers look on a screen: aligned tables, ages ("4m ago"), and colours only on a terminal."""

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

_COLOURS = {"green": "32", "yellow": "33", "red": "31", "cyan": "36", "dim": "2"}
# What each value means to an operator: good, worth a look, bad, waiting.
TONES = {
    "healthy": "green",
    "ok": "green",
    "delivered": "green",
    "degraded": "yellow",
    "late": "yellow",
    "rate_limited": "yellow",
    "muted": "cyan",
    "pending": "cyan",
    "down": "red",
    "lost": "red",
    "removed": "dim",
    "unmonitored": "dim",
}
Cell = str | tuple[str, str | None]  # text, or (text, tone)


def use_colour(stream: TextIO) -> bool:
    """Colours only on a terminal, and never with NO_COLOR set (https://no-color.org) or TERM=dumb."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def toned(text: str, tone: str | None = None) -> tuple[str, str | None]:
    """A cell coloured by ``tone``: a colour ("red"), or a value whose colour to take ("down"); by default
    its own text's ("healthy" is green, "-" dim)."""
    key = tone if tone is not None else text
    return text, key if key in _COLOURS else TONES.get(key) or ("dim" if key == "-" else None)


def table(headers: Sequence[str], rows: Sequence[Sequence[Cell]], *, colour: bool) -> str:
    """Columns two spaces apart, padded before colouring so that escapes never break the alignment."""
    cells = [[(c, None) if isinstance(c, str) else c for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(text)) for w, (text, _) in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in cells:
        parts = []
        for (text, tone), width in zip(row, widths, strict=True):
            padded = text.ljust(width)
            parts.append(f"\033[{_COLOURS[tone]}m{padded}\033[0m" if colour and tone else padded)
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def age(value: Any, now: datetime) -> str:
    """``2026-11-27T04:00:00.000Z`` as "4m ago" (or "in 2h" for a time ahead); "-" for none."""
    when = parse_time(value)
    if when is None:
        return "-"
    seconds = int((now - when).total_seconds())
    span = _span(abs(seconds))
    return f"{span} ago" if seconds >= 0 else f"in {span}"


def short_time(value: Any) -> str:
    """``2026-11-27T04:00:00.123Z`` as ``2026-11-27 04:00:00Z``; "-" for none."""
    when = parse_time(value)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if when else "-"


def milliseconds(value: Any) -> str:
    return f"{value} ms" if isinstance(value, int) else "-"


def _span(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86_400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds < 36_000 else f"{seconds // 3600}h"
    return f"{seconds // 86_400}d"
