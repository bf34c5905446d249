"""Shared fixtures: moto's server and the Stripe stand-in on 127.0.0.1, and a fresh deployment per test."""

import json
import os
import re
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, FakeLambdaContext
from tools.standins.aws import FAKE_CREDENTIALS, REGION, AwsStandIn
from tools.standins.stripe import StripeStandIn

# Recognisable fakes: a test fails if either ever shows up in logs, responses or records.
FAKE_STRIPE_KEY = "sk_test_FAKEkeyForMonitorTests0000000000000001"
ROTATED_STRIPE_KEY = "sk_test_FAKErotatedKeyForMonitorTests00000002"
# The webhook receiver's signing secrets (Stripe's whsec_ format), held to the same rule.
FAKE_SIGNING_SECRET = "whsec_FAKEsigningSecretForMonitorTests000001"
ROTATED_SIGNING_SECRET = "whsec_FAKErotatedSigningSecretForTests00002"
# The stack's API URL as its SSM parameter holds it (the links in alerts).
STACK_API_URL = "https://api.example/v1"
TEST_SECRETS = {
    "FAKE_STRIPE_KEY": FAKE_STRIPE_KEY,
    "ROTATED_STRIPE_KEY": ROTATED_STRIPE_KEY,
    "FAKE_SIGNING_SECRET": FAKE_SIGNING_SECRET,
    "ROTATED_SIGNING_SECRET": ROTATED_SIGNING_SECRET,
}

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


# Any key or signing secret a test makes up follows the same convention (FAKE in it), and is caught too.
_ANY_FAKE_SECRET = re.compile(r"\b(?:sk|rk)_(?:test|live)_FAKE\w*|\bwhsec_FAKE\w*")


def leaked_test_secrets(text: str) -> list[str]:
    """The names (never the values) of the fake secrets that occur in ``text``."""
    leaked = [name for name, value in TEST_SECRETS.items() if value in text]
    if not leaked and _ANY_FAKE_SECRET.search(text):
        leaked.append("a fake secret (sk_test_FAKE… or whsec_FAKE…)")
    return leaked


def assert_no_test_secrets(text: str, where: str) -> None:
    leaked = leaked_test_secrets(text)
    assert not leaked, f"secret hygiene: {', '.join(leaked)} appeared in {where}"


def redact_test_secrets(text: str) -> str:
    for name, value in TEST_SECRETS.items():
        text = text.replace(value, f"[{name}]")
    return _ANY_FAKE_SECRET.sub("[a fake secret]", text)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Secret hygiene for every test: what it printed (Powertools JSON logs, EMF metrics), the log records
    captured and its failure text must not contain a fake secret. A leak fails the test, and the report
    shows the secret's name in place of its value."""
    report: pytest.TestReport = yield
    leaked: set[str] = set()
    places: list[str] = []
    for title, content in report.sections:
        if title.endswith(f" {report.when}") and (names := leaked_test_secrets(content)):
            leaked.update(names)
            places.append(title)
    failure = str(report.longrepr) if report.longrepr is not None else ""
    if names := leaked_test_secrets(failure):
        leaked.update(names)
        places.append("the failure text")
    report.sections = [(title, redact_test_secrets(content)) for title, content in report.sections]
    if places:
        report.outcome = "failed"
        message = f"secret hygiene: {', '.join(sorted(leaked))} appeared in {'; '.join(places)}"
        report.longrepr = f"{message}\n\n{redact_test_secrets(failure)}".rstrip()
    return report


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

        try:
            answer = app.lambda_handler(event, FakeLambdaContext(remaining_ms=remaining_ms))
        except Exception as exc:
            assert_no_test_secrets(f"{exc!r} {exc}", "the handler's exception")
            raise
        assert_no_test_secrets(json.dumps(answer, default=str), "a handler answer")
        return answer

    def items(self) -> list[dict[str, Any]]:
        """Every check item in the table (not the latest-view items)."""
        client = self.aws.client("dynamodb")
        items: list[dict[str, Any]] = []
        for page in client.get_paginator("scan").paginate(TableName=self.table_name):
            items += [i for i in page["Items"] if not i["destination_id"]["S"].startswith("#")]
        return items


def reset_caches() -> None:
    from aws_lambda_powertools.utilities import parameters

    from stripe_monitor import wiring

    parameters.clear_caches()
    wiring.reset()


@pytest.fixture
def deployment(
    aws: AwsStandIn, stripe: StripeStandIn, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Deployment]:
    suffix = uuid.uuid4().hex[:10]
    table_name, secret_id = f"checks-{suffix}", f"stripe-monitor/{suffix}"
    aws.create_results_table(table_name)
    aws.put_secret(secret_id, FAKE_STRIPE_KEY)
    api_url_parameter = f"/{suffix}/api-url"
    aws.client("ssm").put_parameter(Name=api_url_parameter, Value=STACK_API_URL, Type="String")
    for name, value in {
        **aws.environment,
        "TABLE_NAME": table_name,
        "STRIPE_SECRET_ID": secret_id,
        "API_URL_PARAMETER": api_url_parameter,
        "STRIPE_API_BASE": stripe.url,
        "DESTINATION_IDS": "",
        "RESULT_RETENTION_DAYS": "90",
        # Short timeouts keep fault tests quick; the retry rules are the same as in production.
        "STRIPE_READ_TIMEOUT": "1.0",
        "STRIPE_CONNECT_TIMEOUT": "0.5",
        "STRIPE_BACKOFF_BASE": "0.01",
        # Fast runs; the production default (5/s) is a unit test's, the limiter's effect the fleet tests'.
        "STRIPE_REQUESTS_PER_SECOND": "100",
    }.items():
        monkeypatch.setenv(name, value)
    reset_caches()
    deployed = Deployment(aws=aws, stripe=stripe, table_name=table_name, secret_id=secret_id)
    yield deployed
    reset_caches()
    pages = aws.client("dynamodb").get_paginator("scan").paginate(TableName=table_name)
    stored = [item for page in pages for item in page["Items"]]  # latest-view items included
    assert_no_test_secrets(json.dumps(stored), "the stored records")


TOOLS_BIN = ROOT / ".venv-tools" / "bin"


def python313_bin_dir() -> str:
    """The directory of a working python3.13, which ``sam build`` needs on PATH."""
    import subprocess

    found = subprocess.run([str(ROOT / "tools/find-python313")], capture_output=True, text=True, check=True)
    return str(Path(found.stdout.strip()).parent)


def sam_build_into(build_dir: Path) -> None:
    """``sam build`` of template.yaml for x86_64 (this machine) into ``build_dir``."""
    import subprocess

    sam = TOOLS_BIN / "sam"
    if not sam.exists():
        pytest.fail(f"{sam} is missing: run 'make test' (it creates the tools environment)")
    env = os.environ | {"PATH": f"{python313_bin_dir()}:{os.environ['PATH']}", "SAM_CLI_TELEMETRY": "0"}
    subprocess.run(
        [str(sam), "build", "--template-file", str(ROOT / "template.yaml"), "--build-dir", str(build_dir),
         "--parameter-overrides", "Architecture=x86_64"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.fixture(scope="session")
def sam_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The x86_64 build, once per test session; returns the build directory."""
    build_dir = tmp_path_factory.mktemp("sam-build")
    sam_build_into(build_dir)
    return build_dir


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False)."""
    give_up = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > give_up:
            return False
        time.sleep(0.02)
    return True


def emf_metrics(stdout: str) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """Every EMF document printed: (its dimensions, its metric values by name)."""
    found = []
    for line in stdout.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document = json.loads(line)
        [directive] = document["_aws"]["CloudWatchMetrics"]
        names = [m["Name"] for m in directive["Metrics"]]
        dimensions = {d: document[d] for d in directive["Dimensions"][0]}
        found.append((dimensions, {name: _as_list(document[name]) for name in names}))
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
