"""Fixtures of the reliability tests."""

from collections.abc import Iterator

import pytest

from tests.conftest import Deployment
from tests.reliability.support import configure
from tools.standins.aws_faults import AwsFaultProxy, shorten_sdk_backoff


@pytest.fixture
def proxy(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsFaultProxy]:
    """The deployment's AWS calls go through a fault-injecting proxy in front of moto's server."""
    with AwsFaultProxy(deployment.aws.endpoint_url) as started:
        configure(monkeypatch, **started.environment)
        shorten_sdk_backoff(monkeypatch)
        yield started
