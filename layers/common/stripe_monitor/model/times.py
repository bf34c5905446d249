"""Time as the monitor stores it: ISO-8601 UTC with milliseconds, sortable as text."""

from datetime import UTC, datetime, timedelta


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_ms(moment: datetime) -> str:
    """``2026-11-27T04:00:00.123Z``: sortable as text, millisecond precision."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def expiry(moment: datetime, retention_days: int) -> int:
    """Epoch seconds at which DynamoDB's TTL may delete an item written at ``moment``."""
    return int((moment + timedelta(days=retention_days)).timestamp())
