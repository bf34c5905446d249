"""Builds each function's services once per execution environment, from its own settings.

``ping_services()`` and ``receipt_services()`` are what the handlers call; ``build_*`` make a fresh set
(another execution environment, in tests); ``reset()`` forgets the cached ones (tests change the
environment between them).
"""

import time
from dataclasses import dataclass
from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from stripe_monitor.alerts import AlertPublisher
from stripe_monitor.config import CommonSettings, PingSettings, ReceiptSettings
from stripe_monitor.logic.deliveries import Deliveries
from stripe_monitor.logic.health_tracker import HealthTracker
from stripe_monitor.logic.pinger import Pinger
from stripe_monitor.logic.queries import Queries
from stripe_monitor.logic.scheduled_run import ScheduledRun
from stripe_monitor.logic.single_check import SingleCheck
from stripe_monitor.logic.webhook_verifier import WebhookVerifier
from stripe_monitor.secrets_manager import get_signing_secrets, get_stripe_api_key
from stripe_monitor.store.results_table import ResultsTable
from stripe_monitor.stripe.client import StripeClientConfig


@dataclass(frozen=True)
class PingServices:
    settings: PingSettings
    single_check: SingleCheck
    scheduled_run: ScheduledRun
    deliveries: Deliveries
    queries: Queries

    def deadline(self, context: LambdaContext) -> float:
        """A monotonic deadline: Lambda's remaining time less the margin kept to record the result."""
        remaining = context.get_remaining_time_in_millis() / 1000 - self.settings.deadline_margin_seconds
        return time.monotonic() + max(remaining, 0.1)


@dataclass(frozen=True)
class ReceiptServices:
    settings: ReceiptSettings
    deliveries: Deliveries
    webhook: WebhookVerifier | None  # None: no signing secret configured


def build_ping_services(settings: PingSettings, table: ResultsTable | None = None) -> PingServices:
    table = table or ResultsTable.connect(settings.table_name)
    health, deliveries = _health_and_deliveries(settings, table)
    client_config = StripeClientConfig(
        api_base=settings.stripe_api_base,
        api_version=settings.stripe_api_version,
        connect_timeout=settings.stripe_connect_timeout,
        read_timeout=settings.stripe_read_timeout,
        max_retries=settings.stripe_max_retries,
        backoff_base=settings.stripe_backoff_base,
    )
    pinger = Pinger(get_stripe_api_key, settings.stripe_secret_id, client_config)
    return PingServices(
        settings=settings,
        single_check=SingleCheck(settings, pinger, table, health, deliveries),
        scheduled_run=ScheduledRun(settings, pinger, table, health, deliveries),
        deliveries=deliveries,
        queries=Queries(table, deliveries, settings.destination_ids),
    )


def build_receipt_services(settings: ReceiptSettings, table: ResultsTable | None = None) -> ReceiptServices:
    _, deliveries = _health_and_deliveries(settings, table or ResultsTable.connect(settings.table_name))
    webhook = None
    if settings.webhook_secret_id:
        tolerance = settings.webhook_tolerance_seconds
        webhook = WebhookVerifier(settings.webhook_secret_id, get_signing_secrets, tolerance=tolerance)
    return ReceiptServices(settings=settings, deliveries=deliveries, webhook=webhook)


@cache
def ping_services() -> PingServices:
    return build_ping_services(PingSettings.from_env())


@cache
def receipt_services() -> ReceiptServices:
    return build_receipt_services(ReceiptSettings.from_env())


def reset() -> None:
    ping_services.cache_clear()
    receipt_services.cache_clear()


def _health_and_deliveries(settings: CommonSettings, table: ResultsTable) -> tuple[HealthTracker, Deliveries]:
    alerts = AlertPublisher(settings.alert_topic_arn, settings.api_url_parameter)
    health = HealthTracker(table, alerts, retention_days=settings.result_retention_days)
    secret_id = settings.webhook_secret_id
    signing_secrets = (lambda: get_signing_secrets(secret_id)) if secret_id else None
    return health, Deliveries(settings, table, health, signing_secrets)
