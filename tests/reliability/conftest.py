"""Fixtures of the reliability tests: the AWS fault proxy, and the deployment under attack."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import FAKE_SIGNING_SECRET, Deployment, assert_no_test_secrets, reset_caches
from tests.reliability.support import configure
from tests.support import FakeLambdaContext, receipt_app
from tools.standins.aws_faults import AwsFaultProxy, shorten_sdk_backoff
from tools.standins.stripe import StripeStandIn

KNOWN = "ed_test_61HostileKnown00000001"


@pytest.fixture
def proxy(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsFaultProxy]:
    """The deployment's AWS calls go through a fault-injecting proxy in front of moto's server."""
    with AwsFaultProxy(deployment.aws.endpoint_url) as started:
        configure(monkeypatch, **started.environment)
        shorten_sdk_backoff(monkeypatch)
        yield started


@dataclass
class Target:
    """The deployment under attack, and the proxy that sees every AWS call it makes."""

    deployment: Deployment
    proxy: AwsFaultProxy

    def invoke(self, event: Any) -> Any:
        return self.deployment.invoke(event)

    @property
    def stripe(self) -> StripeStandIn:
        return self.deployment.stripe


@pytest.fixture
def hostile(deployment: Deployment, proxy: AwsFaultProxy) -> Iterator[Target]:
    deployment.stripe.add_destination(KNOWN)
    yield Target(deployment, proxy)
    assert deployment.stripe.errors == []


@dataclass
class Receiver:
    """The deployment's ReceiptFunction, its signing secret configured."""

    deployment: Deployment
    module: ModuleType

    def invoke(self, event: Any) -> Any:
        answer = self.module.lambda_handler(event, FakeLambdaContext())
        assert_no_test_secrets(json.dumps(answer, default=str), "a receipt answer")
        return answer

    def receipts(self) -> int:
        pages = (
            self.deployment.aws.client("dynamodb")
            .get_paginator("scan")
            .paginate(TableName=self.deployment.table_name)
        )
        return sum(1 for p in pages for i in p["Items"] if i["destination_id"]["S"].startswith("#receipt#"))


@pytest.fixture
def receiver(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    secret_id = f"{deployment.secret_id}/webhook"
    deployment.aws.put_secret(secret_id, json.dumps({"signing_secrets": [FAKE_SIGNING_SECRET]}))
    configure(monkeypatch, WEBHOOK_SECRET_ID=secret_id, RECEIPT_DESTINATION_IDS=KNOWN)
    module = receipt_app()
    reset_caches()
    yield Receiver(deployment, module)
    reset_caches()
