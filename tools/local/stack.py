"""The local stack: moto (DynamoDB, Secrets Manager, SNS, SQS), the Stripe stand-in, "your
application" and the monitor's REST API (the API Gateway stand-in, SigV4 checked, ``template.yaml``'s
routes) in front of both functions' real handlers, all on 127.0.0.1 in this process.

Receipts arrive as in AWS. A webhook destination with a ``signing_secret`` (tools/demo_destinations.json)
delivers its pings to the application, which forwards them to ``POST /webhooks/stripe``; the stack's
signing-secret map lists it by id, so it is monitored and its receipts are ``application`` ones. An
EventBridge destination's envelope goes to ReceiptFunction's handler, and its partner bus is named in
``RECEIPT_EVENT_BUS_NAMES``. Alerts go to an SNS topic; ``alerts()`` reads what was published.
"""

import contextlib
import io
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, Self

from tools.lambda_context import FakeLambdaContext
from tools.local.forwarder import ApplicationForwarder
from tools.local.handlers import ping_handler, receipt_handler, reset_services
from tools.standins.api_gateway import LocalApiGateway, template_routes
from tools.standins.aws import FAKE_CREDENTIALS, REGION, AwsStandIn, ensure_port_free
from tools.standins.service import Service
from tools.standins.stripe import StripeStandIn

ROOT = Path(__file__).resolve().parents[2]
DEMO_DESTINATIONS = ROOT / "tools" / "demo_destinations.json"
# A made-up key of the same pattern as the tests' fakes, so the secret-hygiene checks catch it too.
DEMO_KEY = "sk_test_FAKElocalDemoKeyNotARealKey00000"
# The credentials the local API accepts (moto's conventional fakes, as in events/env.local.json).
API_ACCESS_KEY = FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"]
API_SECRET_KEY = FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
REAL_STRIPE = "https://api.stripe.com"


class SetEnv(Protocol):
    def setenv(self, name: str, value: str) -> None: ...


@dataclass(frozen=True)
class StackSettings:
    aws_port: int = 0  # 0: any free port
    stripe_port: int = 0
    api_port: int = 0
    table_name: str = "stripe-monitor-local"
    secret_id: str = "stripe-monitor/local"
    lost_after_seconds: int = 900
    stripe_key: str | None = None  # the real Stripe (then destination_ids too) instead of the stand-in
    destination_ids: str = ""
    not_allowed: Mapping[str, str] = field(default_factory=dict)  # signers without execute-api:Invoke


class LocalStack(Service):
    def __init__(self, settings: StackSettings | None = None, *, aws: AwsStandIn | None = None) -> None:
        self.settings = settings or StackSettings()
        self._own_aws = aws is None
        self.aws = aws or AwsStandIn(port=self.settings.aws_port)
        self.stripe = StripeStandIn(api_key=DEMO_KEY, port=self.settings.stripe_port)
        self.application = ApplicationForwarder()
        self.api: LocalApiGateway | None = None
        self.topic_arn = ""
        self._queue_url = ""
        self._running = contextlib.ExitStack()
        self.signing_secret_id = f"{self.settings.secret_id}/webhook-signing-secrets"

    @property
    def real_stripe(self) -> bool:
        return bool(self.settings.stripe_key)

    @property
    def api_url(self) -> str:
        """The API's base URL, without the stage as ``sam local start-api`` serves it (``/v1/...`` too)."""
        assert self.api is not None, "start() first"
        return self.api.url.rsplit("/", 1)[0]

    @property
    def destination_ids(self) -> list[str]:
        if self.real_stripe:
            return [d.strip() for d in self.settings.destination_ids.split(",") if d.strip()]
        return [d.id for d in self.stripe.destinations]

    def start(self) -> Self:
        for port in (self.settings.stripe_port, self.settings.api_port):
            if port:
                ensure_port_free(port)  # a clear "port N is in use" before anything starts
        with contextlib.ExitStack() as running:
            if self._own_aws:
                running.enter_context(self.aws)
            running.enter_context(self.stripe)
            running.enter_context(self.application)
            if not self.real_stripe:
                self.stripe.load_config(DEMO_DESTINATIONS)
                for destination in self.stripe.destinations:
                    if destination.signing_secret:  # its deliveries go to the application
                        self.stripe.put_destination(replace(destination, url=self.application.url))
                context = FakeLambdaContext(
                    function_name="ReceiptFunction", aws_request_id="local-eventbridge"
                )
                self.stripe.on_eventbridge = lambda envelope: receipt_handler()(envelope, context)
            handlers = {
                "PingFunction": lambda event, context: ping_handler()(event, context),
                "ReceiptFunction": lambda event, context: receipt_handler()(event, context),
            }
            self.api = LocalApiGateway(
                template_routes(handlers),
                access_key=API_ACCESS_KEY,
                secret_key=API_SECRET_KEY,
                region=REGION,
                port=self.settings.api_port,
                not_allowed=self.settings.not_allowed,
            )
            running.enter_context(self.api)
            self.application.target = f"{self.api_url}/webhooks/stripe"
            self._make_resources()
            self._running = running.pop_all()
        return self

    def stop(self) -> None:
        self._running.close()

    @property
    def environment(self) -> dict[str, str]:
        """What both functions read, pointed at this stack (``apply_environment`` sets it here)."""
        settings = self.settings
        buses = [
            f"aws.partner/stripe.com/{d.id}"
            for d in self.stripe.destinations
            if d.type == "amazon_eventbridge"
        ]
        forwarding = any(d.signing_secret for d in self.stripe.destinations)
        return self.aws.environment | {
            "TABLE_NAME": settings.table_name,
            "STRIPE_SECRET_ID": settings.secret_id,
            "STRIPE_API_BASE": REAL_STRIPE if self.real_stripe else self.stripe.url,
            "DESTINATION_IDS": ",".join(self.destination_ids),
            "STRIPE_BACKOFF_BASE": "0.05",
            "ALERT_TOPIC_ARN": self.topic_arn,
            # No API_URL_PARAMETER: moto's SSM takes seconds to start, so alerts link "<the stack's ApiUrl>".
            "API_URL_PARAMETER": "",
            "LOST_AFTER_SECONDS": str(settings.lost_after_seconds),
            "WEBHOOK_SECRET_ID": self.signing_secret_id if forwarding and not self.real_stripe else "",
            "RECEIPT_EVENT_BUS_NAMES": "" if self.real_stripe else ",".join(buses),
            "RECEIPT_DESTINATION_IDS": "",
            "POWERTOOLS_SERVICE_NAME": "stripe-destination-monitor",
            "POWERTOOLS_LOG_LEVEL": "WARNING",  # keep the screen for the results
            "POWERTOOLS_METRICS_NAMESPACE": "StripeDestinationMonitorLocal",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }

    def apply_environment(self, environ: "SetEnv | None" = None) -> None:
        """Point this process's handlers at the stack (``environ``: a test's monkeypatch; else os.environ)."""
        for name, value in self.environment.items():
            if environ is None:
                os.environ[name] = value
            else:
                environ.setenv(name, value)
        reset_services()
        receipt_handler()  # imported now, with the environment they read at import
        # Powertools prints the cold-start metric even with metrics disabled: let it go nowhere.
        with contextlib.redirect_stdout(io.StringIO()):
            ping_handler()({"first_invocation": True}, FakeLambdaContext(aws_request_id="local-first"))

    def scheduled_run(self, scheduled_time: str) -> dict[str, Any]:
        """A run as EventBridge Scheduler starts it: a direct call of PingFunction's handler."""
        context = FakeLambdaContext(remaining_ms=25_000, aws_request_id=f"local-run-{uuid.uuid4()}")
        summary: dict[str, Any] = ping_handler()({"scheduled_time": scheduled_time}, context)
        return summary

    def alerts(self) -> list[tuple[str, str]]:
        """(subject, message) of each alert published since the last call."""
        sqs, found = self.aws.client("sqs"), []
        while batch := sqs.receive_message(QueueUrl=self._queue_url, MaxNumberOfMessages=10).get("Messages"):
            for message in batch:
                body = json.loads(message["Body"])
                found.append((body.get("Subject", ""), body.get("Message", "")))
                sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
        return found

    def _make_resources(self) -> None:
        """The table (from template.yaml's definition), the secrets and the alert topic."""
        settings, aws = self.settings, self.aws
        aws.create_results_table(settings.table_name)
        aws.put_secret(settings.secret_id, settings.stripe_key or DEMO_KEY)
        signing = {d.id: [d.signing_secret] for d in self.stripe.destinations if d.signing_secret}
        if signing:
            aws.put_secret(self.signing_secret_id, json.dumps(signing))
        name = settings.table_name.replace("/", "-")
        self.topic_arn = aws.client("sns").create_topic(Name=f"{name}-alerts")["TopicArn"]
        sqs = aws.client("sqs")
        self._queue_url = sqs.create_queue(QueueName=f"{name}-alerts")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["QueueArn"])
        aws.client("sns").subscribe(
            TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"]
        )
