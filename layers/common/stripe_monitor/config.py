"""Configuration: each function's environment variables, parsed once into a typed, validated object."""

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stripe_monitor.errors import ConfigError, validation_message
from stripe_monitor.model.ids import validate_destination_id

DEFAULT_API_BASE = "https://api.stripe.com"
# The version the pinned official SDK (stripe-python in requirements-dev.txt) sends; a test keeps them equal.
DEFAULT_API_VERSION = "2026-10-28.endive"
Seconds = Annotated[int, Field(ge=1, le=86_400)]


class CommonSettings(BaseModel):
    """What both functions read: the table, alerts, and which destinations prove delivery."""

    # Built at first use: a function validates only its own settings (cold start, docs/performance.md).
    model_config = ConfigDict(frozen=True, defer_build=True)

    table_name: Annotated[str, Field(min_length=3)]
    result_retention_days: Annotated[int, Field(ge=1, le=3650)] = 90
    alert_topic_arn: str | None = None
    # The SSM parameter that holds the stack's API URL, read at the first alert for its links (the URL
    # cannot be an environment variable: the API refers to the functions, so that would be a cycle).
    api_url_parameter: str | None = None
    # Delivery receipts: which destinations report them, the SLA and when a ping counts as lost.
    receipt_destination_ids: tuple[str, ...] = ()
    receipt_event_bus_names: tuple[str, ...] = ()
    delivery_sla_seconds: Annotated[int, Field(ge=1, le=3600)] = 120
    lost_after_seconds: Seconds = 900
    # The webhook signing secrets: a destination listed there by id forwards its receipts (it is monitored).
    webhook_secret_id: str | None = None
    # Seven custom metrics per destination ($0.30 a month each): off unless asked for.
    per_destination_metrics: bool = False

    # destination_ids is PingSettings' own field: these validators apply to it there.
    @field_validator(
        "receipt_destination_ids",
        "receipt_event_bus_names",
        "destination_ids",
        mode="before",
        check_fields=False,
    )
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("receipt_destination_ids", "destination_ids", check_fields=False)
    @classmethod
    def _validate_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(validate_destination_id(item) for item in value))

    @property
    def bus_destination_ids(self) -> frozenset[str]:
        """Destinations whose receipts come through a partner bus (named after its destination:
        aws.partner/stripe.com/ed_...)."""
        from_buses = (name.rsplit("/", 1)[-1] for name in self.receipt_event_bus_names)
        return frozenset(b for b in from_buses if b.startswith("ed_"))

    @property
    def monitored_destination_ids(self) -> frozenset[str]:
        """Destinations whose pings are expected to produce a receipt."""
        return frozenset(self.receipt_destination_ids) | self.bus_destination_ids

    @property
    def learned_receipt_window(self) -> timedelta:
        """How long a receipt for one of the monitor's pings makes a destination expect the next ones: a few
        lost-after periods, so a one-off receipt path stops counting soon after it stops."""
        return timedelta(seconds=3 * self.lost_after_seconds)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Self:
        values = {name: environ[name.upper()] for name in cls.model_fields if environ.get(name.upper())}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = validation_message(exc, every=True, upper=True)
            raise ConfigError(f"invalid configuration: {problems}") from None


class PingSettings(CommonSettings):
    """PingFunction: the Stripe key and API, which destinations to check, and how hard."""

    stripe_secret_id: Annotated[str, Field(min_length=1)]
    stripe_api_base: str = DEFAULT_API_BASE
    stripe_api_version: str = DEFAULT_API_VERSION
    destination_ids: tuple[str, ...] = ()
    stripe_connect_timeout: Annotated[float, Field(gt=0, le=30)] = 3.0
    stripe_read_timeout: Annotated[float, Field(gt=0, le=60)] = 8.0
    stripe_max_retries: Annotated[int, Field(ge=0, le=10)] = 3
    stripe_backoff_base: Annotated[float, Field(ge=0.001, le=5)] = 0.5
    # Time kept back from Lambda's remaining time to record the result after the last attempt.
    deadline_margin_seconds: Annotated[float, Field(ge=0.1, le=60)] = 2.0
    # Scheduled runs: concurrent checks, and a client-side rate limit well below Stripe's, which the account's
    # own traffic shares (25/s in a sandbox, 100/s live).
    check_workers: Annotated[int, Field(ge=1, le=64)] = 8
    stripe_requests_per_second: Annotated[float, Field(gt=0, le=100)] = 5.0
    # A successful ping slower than this degrades the destination's health.
    slow_ping_ms: Annotated[int, Field(ge=100, le=60_000)] = 5_000
    stripe_list_page_size: Annotated[int, Field(ge=1, le=100)] = 100

    @field_validator("stripe_api_base")
    @classmethod
    def _check_base(cls, value: str) -> str:
        if not value.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError("must be an https:// URL (plain http only for a local stand-in)")
        return value.rstrip("/")


class ReceiptSettings(CommonSettings):
    """ReceiptFunction: the webhook's tolerance (it never needs the Stripe key)."""

    webhook_tolerance_seconds: Annotated[int, Field(ge=1, le=3600)] = 300
