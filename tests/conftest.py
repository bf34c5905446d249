"""Shared fixtures: moto's server and the Stripe stand-in on 127.0.0.1, and a fresh deployment per test."""

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.local.aws_standin import FAKE_CREDENTIALS, REGION, AwsStandIn
from tests.local.stripe_standin import StripeStandIn

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
# Recognisable fakes: a test fails if either ever shows up in logs, responses or records.
FAKE_STRIPE_KEY = "sk_test_FAKEkeyForMonitorTests0000000000000001"
ROTATED_STRIPE_KEY = "sk_test_FAKErotatedKeyForMonitorTests00000002"

# Before anything imports boto3 or Powertools: no real AWS, no tracing, fast test runs.
os.environ.update(
    {
        **FAKE_CREDENTIALS,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "POWERTOOLS_SERVICE_NAME": "stripe-destination-monitor",
        "POWERTOOLS_METRICS_NAMESPACE": "StripeDestinationMonitorTests",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
)
os.environ.pop("AWS_PROFILE", None)


@dataclass
class FakeLambdaContext:
    remaining_ms: int = 20_000
    function_name: str = "PingFunction"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:PingFunction"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture(scope="session")
def aws() -> Iterator[AwsStandIn]:
    with AwsStandIn() as standin:
        yield standin


@pytest.fixture(scope="session")
def stripe_server() -> Iterator[StripeStandIn]:
    with StripeStandIn(api_key=FAKE_STRIPE_KEY) as standin:
        yield standin


@pytest.fixture
def stripe(stripe_server: StripeStandIn) -> StripeStandIn:
    stripe_server.reset()
    stripe_server.api_key = FAKE_STRIPE_KEY
    for destination in stripe_server.destinations:
        stripe_server.remove_destination(destination.id)
    return stripe_server


@dataclass
class Deployment:
    """One isolated deployment of the stack on the stand-ins: its own table and secret."""

    aws: AwsStandIn
    stripe: StripeStandIn
    table_name: str
    secret_id: str

    def invoke(self, event: dict[str, Any], remaining_ms: int = 20_000) -> Any:
        import app  # imported late: it must see the test environment

        return app.lambda_handler(event, FakeLambdaContext(remaining_ms=remaining_ms))

    def items(self) -> list[dict[str, Any]]:
        """Every check item in the table (not the latest-view items)."""
        client = self.aws.client("dynamodb")
        items: list[dict[str, Any]] = []
        for page in client.get_paginator("scan").paginate(TableName=self.table_name):
            items += [i for i in page["Items"] if not i["destination_id"]["S"].startswith("#")]
        return items


def reset_caches() -> None:
    from aws_lambda_powertools.utilities import parameters

    import app
    from stripe_monitor.settings import get_settings

    parameters.clear_caches()
    get_settings.cache_clear()
    app.monitor.cache_clear()


@pytest.fixture
def deployment(
    aws: AwsStandIn, stripe: StripeStandIn, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Deployment]:
    suffix = uuid.uuid4().hex[:10]
    table_name, secret_id = f"checks-{suffix}", f"stripe-monitor/{suffix}"
    aws.create_results_table(table_name)
    aws.put_secret(secret_id, FAKE_STRIPE_KEY)
    for name, value in {
        **aws.environment,
        "TABLE_NAME": table_name,
        "STRIPE_SECRET_ID": secret_id,
        "STRIPE_API_BASE": stripe.url,
        "DESTINATION_IDS": "",
        "RESULT_RETENTION_DAYS": "90",
        # Short timeouts keep fault tests quick; the retry rules are the same as in production.
        "STRIPE_READ_TIMEOUT": "1.0",
        "STRIPE_CONNECT_TIMEOUT": "0.5",
        "STRIPE_BACKOFF_BASE": "0.01",
    }.items():
        monkeypatch.setenv(name, value)
    reset_caches()
    yield Deployment(aws=aws, stripe=stripe, table_name=table_name, secret_id=secret_id)
    reset_caches()


def load_event(name: str, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    event.update(overrides)
    return event


TOOLS_BIN = ROOT / ".venv-tools" / "bin"


def python313_bin_dir() -> str:
    """The directory of a working python3.13, which ``sam build`` needs on PATH."""
    import subprocess

    found = subprocess.run([str(ROOT / "scripts/find-python313")], capture_output=True, text=True, check=True)
    return str(Path(found.stdout.strip()).parent)


@pytest.fixture(scope="session")
def sam_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``sam build`` for x86_64 (this machine), once per test session; returns the build directory."""
    import subprocess

    sam = TOOLS_BIN / "sam"
    if not sam.exists():
        pytest.fail(f"{sam} is missing: run 'make test' (it creates the tools environment)")
    build_dir = tmp_path_factory.mktemp("sam-build")
    env = os.environ | {"PATH": f"{python313_bin_dir()}:{os.environ['PATH']}", "SAM_CLI_TELEMETRY": "0"}
    subprocess.run(
        [str(sam), "build", "--template-file", str(ROOT / "template.yaml"), "--build-dir", str(build_dir),
         "--parameter-overrides", "Architecture=x86_64"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return build_dir
