"""Helpers shared by the reliability tests: plain views of stored items, configuration, the AWS proxy."""

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from tests.conftest import Deployment, reset_caches
from tests.support import ROOT
from tools.standins.aws import AwsStandIn, free_port

_DESERIALIZER = TypeDeserializer()


def plain(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as the API shows it (numbers as int)."""
    values = {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}
    return {name: int(v) if isinstance(v, Decimal) else v for name, v in values.items()}


def without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def stored_checks(deployment: Deployment) -> list[dict[str, Any]]:
    """Every check item of the deployment's table, as plain dicts, oldest first."""
    return sorted((plain(i) for i in deployment.items()), key=lambda c: (c["destination_id"], c["pinged_at"]))


def configure(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_caches()


def body(response: dict[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(response["body"])
    return parsed


def logged(caplog: pytest.LogCaptureFixture, message: str) -> list[dict[str, Any]]:
    """The monitor's log records with this message, with their extra keys (Powertools ``logger.info(msg,
    key=value)``) as dict items."""
    return [vars(r) for r in caplog.records if r.getMessage() == message]


@contextlib.contextmanager
def moto_in_its_own_process() -> Iterator[AwsStandIn]:
    """moto's server (threaded, its DynamoDB atomic per request) in a process of its own, for load tests:
    moto gets a core of its own instead of sharing the test process's with the Stripe stand-in. The
    returned ``AwsStandIn`` is only a client of it (it is never started)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.standins.aws", "-H", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert process.poll() is None, "moto's server did not start"
            assert time.monotonic() < deadline, "moto's server did not start listening"
            time.sleep(0.05)
        yield AwsStandIn(port=port)
    finally:
        process.terminate()
        process.wait(timeout=10)
