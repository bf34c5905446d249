"""The BUILT function and layer run on their own: a fresh interpreter with nothing but the build output.

``python -S`` drops site-packages, so a dependency missing from the layer fails here as it would on Lambda.
"""

import inspect
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Deployment, python313_bin_dir
from tests.support import FakeLambdaContext, load_event, schedule_event

pytestmark = pytest.mark.sam

# The driver sees nothing but the build output, so it gets the tests' fake context as source.
DRIVER = f"""
import json, sys
import app
from dataclasses import dataclass

{inspect.getsource(FakeLambdaContext)}
for line in sys.stdin:
    context = FakeLambdaContext(aws_request_id="packaging-test")
    print("RESULT " + json.dumps(app.lambda_handler(json.loads(line), context)), flush=True)
    print("API_RESOLVER_IMPORTED " + json.dumps("aws_lambda_powertools.event_handler" in sys.modules))
    print("XRAY_SDK_IMPORTED " + json.dumps("aws_xray_sdk.core" in sys.modules))
"""


def run_built(
    build: Path,
    deployment: Deployment,
    events: list[dict[str, Any]],
    report: str = "RESULT",
    env: dict[str, str] | None = None,
) -> list[Any]:
    """Each event's answer from the built function in one fresh process (or, with ``report``, another line
    the driver prints after each event)."""
    env = (
        deployment.aws.environment
        | {
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": f"{build / 'PingFunction'}:{build / 'CommonLayer' / 'python'}",
            "PYTHONDONTWRITEBYTECODE": "1",
            "TABLE_NAME": deployment.table_name,
            "STRIPE_SECRET_ID": deployment.secret_id,
            "STRIPE_API_BASE": deployment.stripe.url,
            "DESTINATION_IDS": "ed_test_61DemoHealthyWebhook0001",
            "POWERTOOLS_SERVICE_NAME": "stripe-destination-monitor",
            "POWERTOOLS_METRICS_NAMESPACE": "PackagingTest",
        }
        | (env or {})
    )
    python = str(Path(python313_bin_dir()) / "python3.13")
    done = subprocess.run(
        [python, "-S", "-c", DRIVER],
        input="".join(json.dumps(e) + "\n" for e in events),
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return [
        json.loads(line.removeprefix(f"{report} "))
        for line in done.stdout.splitlines()
        if line.startswith(f"{report} ")
    ]


def test_the_built_function_serves_api_schedule_and_invoke(sam_build, deployment):
    deployment.stripe.add_destination("ed_test_61DemoHealthyWebhook0001")

    ping, schedule, invoke = run_built(
        sam_build,
        deployment,
        [load_event("api_ping.json"), schedule_event(), load_event("invoke.json")],
    )

    assert ping["statusCode"] == 200
    assert json.loads(ping["body"])["outcome"] == "ok"
    assert schedule["checked"] == 1
    assert invoke["outcome"] == "ok"
    assert len(deployment.items()) == 3


def test_scheduled_runs_and_invokes_do_not_import_the_api_resolver(sam_build, deployment):
    deployment.stripe.add_destination("ed_test_61DemoHealthyWebhook0001")

    imported = run_built(
        sam_build,
        deployment,
        [schedule_event(), load_event("invoke.json"), load_event("api_ping.json")],
        report="API_RESOLVER_IMPORTED",
    )

    assert imported == [False, False, True]  # only the first API request imports it


@pytest.mark.parametrize(("tracing_disabled", "loaded"), [("true", False), ("false", True)])
def test_the_x_ray_sdk_is_loaded_only_when_tracing_is_on(sam_build, deployment, tracing_disabled, loaded):
    deployment.stripe.add_destination("ed_test_61DemoHealthyWebhook0001")
    env = {"POWERTOOLS_TRACE_DISABLED": tracing_disabled}

    imported = run_built(sam_build, deployment, [load_event("api_ping.json")], "XRAY_SDK_IMPORTED", env)

    assert imported == [loaded]


def test_the_layer_holds_only_what_it_needs(sam_build):
    layer = sam_build / "CommonLayer" / "python"
    packages = {p.name for p in layer.iterdir()}

    assert {"stripe_monitor", "aws_lambda_powertools", "pydantic", "pydantic_core", "urllib3"} <= packages
    assert not {"moto", "stripe", "pytest", "hypothesis"} & packages


def test_a_missing_dependency_in_the_layer_is_caught(sam_build, deployment, tmp_path):
    broken = tmp_path / "broken"
    subprocess.run(["cp", "-a", str(sam_build), str(broken)], check=True)
    subprocess.run(["rm", "-rf", str(broken / "CommonLayer" / "python" / "pydantic")], check=True)

    with pytest.raises(AssertionError, match="pydantic"):
        run_built(broken, deployment, [load_event("invoke.json")])
