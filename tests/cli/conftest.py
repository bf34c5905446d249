"""The local stack for the CLI's tests: the real handlers behind the API Gateway stand-in (SigV4 checked),
moto and the Stripe stand-in, on free ports, with a table of its own per test; and ``stripe-monitor`` run
as operators run it, in a process of its own with an environment made for the test."""

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import reset_caches
from tests.support import ROOT
from tools.local.stack import API_ACCESS_KEY, API_SECRET_KEY, LocalStack, StackSettings
from tools.standins.aws import AwsStandIn

HEALTHY = "ed_test_61DemoHealthyWebhook0001"  # forwards its receipts through "your application"
BRIDGE = "ed_test_61DemoEventBridge0002"  # receipts through EventBridge
LOST = "ed_test_61DemoLostDelivery0004"  # monitored, but its deliveries never arrive
FAILING = "ed_test_61DemoFailing5xx0003"  # Stripe answers 500
DEMO = [HEALTHY, BRIDGE, LOST, FAILING]
# A principal whose signature is valid but who may not call execute-api:Invoke on the API.
NO_INVOKE = {"AWS_ACCESS_KEY_ID": "local-no-invoke", "AWS_SECRET_ACCESS_KEY": "no-invoke-secret"}
DEMO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": API_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": API_SECRET_KEY}
Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def stack(aws: AwsStandIn, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    suffix = uuid.uuid4().hex[:10]
    settings = StackSettings(
        table_name=f"cli-{suffix}",
        secret_id=f"cli/{suffix}",
        not_allowed={NO_INVOKE["AWS_ACCESS_KEY_ID"]: NO_INVOKE["AWS_SECRET_ACCESS_KEY"]},
    )
    with LocalStack(settings, aws=aws) as running:
        running.apply_environment(monkeypatch)
        yield running
    reset_caches()


def cli_environment(home: Path, credentials: dict[str, str] | None = None, **more: str) -> dict[str, str]:
    """Nothing of this machine's AWS set-up: no profiles, no instance metadata, only what a test gives."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "PYTHONPATH": str(ROOT),
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_REGION": "us-east-1",
        **(DEMO_CREDENTIALS if credentials is None else credentials),
        **more,
    }


def run_cli(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``stripe-monitor ARGS`` in a process of its own (``python -m tools.cli`` is its entry point)."""
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args],
        env=env, cwd=cwd or ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture
def cli(stack: LocalStack, tmp_path: Path) -> Cli:
    """``stripe-monitor --api-url <the local API> ARGS`` with the demo credentials (or ``credentials``)."""

    def run(
        *args: str, credentials: dict[str, str] | None = None, **more: str
    ) -> subprocess.CompletedProcess[str]:
        env = cli_environment(tmp_path, credentials, **more)
        return run_cli("--api-url", stack.api_url, *args, env=env)

    return run


@pytest.fixture
def offline_cli(tmp_path: Path) -> Cli:
    """``stripe-monitor`` with the demo credentials and whatever arguments a test gives: no stack."""

    def run(
        *args: str, credentials: dict[str, str] | None = None, **more: str
    ) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env=cli_environment(tmp_path, credentials, **more))

    return run


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The error a failed command printed: exactly one line on stderr, no traceback, exit code 3."""
    assert done.returncode == 3, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("stripe-monitor: ")
    return lines[0]
