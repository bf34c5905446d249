"""The README's first command (`make local`): its runner shows the whole product on the local stack; and
`run_local --serve`, the same stack for `sam local` and `stripe-monitor`, which starts, serves and stops as
it says, and tells a taken port from a hang."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.cli.conftest import cli_environment, run_cli
from tests.conftest import assert_no_test_secrets
from tests.support import ROOT
from tools.local.stack import DEMO_KEY

HEALTHY, BRIDGE = "ed_test_61DemoHealthyWebhook0001", "ed_test_61DemoEventBridge0002"
LOST, FAILING = "ed_test_61DemoLostDelivery0004", "ed_test_61DemoFailing5xx0003"


def clean_environment(**more: str) -> dict[str, str]:
    """This machine's environment without anything that would point the runner elsewhere."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STRIPE_", "DESTINATION_IDS"))}
    return keep | {"AWS_EC2_METADATA_DISABLED": "true"} | more


def run_local(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.run_local", *args],
        cwd=ROOT, env=clean_environment(**env), capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def test_the_local_run_shows_receipts_a_lost_ping_health_alerts_and_the_status():
    done = run_local()

    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "a ping counts as lost 2 s after Stripe created it without a receipt" in out
    assert re.search(rf"  {HEALTHY}  ok +accepted in \d+ ms, delivered via application in \d+ ms", out)
    assert re.search(rf"  {BRIDGE} +ok +accepted in \d+ ms, delivered via eventbridge in \d+ ms", out)
    assert re.search(rf"  {LOST} +ok +accepted in \d+ ms, no receipt within 2 s \(pending\)", out)
    assert re.search(rf"  {FAILING} +stripe_error HTTP 500 after 4 attempts", out)
    assert re.search(r"2\. A scheduled run \(events/schedule\.json, .*\) at \S+Z: 3 ok, 1 failed", out)
    assert re.search(rf"Its sweep: the ping of {LOST} at \S+Z is LOST \(no receipt in 2 s\)", out)
    assert "3. Health followed, and 3 alerts went to the SNS topic" in out
    for subject in (
        f"Stripe destination {FAILING} is DEGRADED (was unknown)",
        f"Stripe destination {FAILING} is DOWN (was degraded)",
        f"Stripe destination {LOST} is DEGRADED (was healthy)",
    ):
        assert f"\n  {subject}\n" in out
    assert re.search(r"  \| Why: ping event evt_\w+ was not delivered within 2 s\n", out)
    status = out.split("4. $ stripe-monitor --api-url http://127.0.0.1:")[1]
    rows = {line.split()[0]: line.split()[1] for line in status.splitlines()[2:6]}
    assert rows == {HEALTHY: "healthy", BRIDGE: "healthy", LOST: "degraded", FAILING: "down"}
    assert "(exit code 1: a destination is down" in status
    assert_no_test_secrets(out + done.stderr, "the local run's output")
    assert '"_aws"' not in out and '"level"' not in out  # results only, not raw log and metric lines
    assert done.stderr == ""


def test_against_the_real_stripe_a_bad_destination_list_ends_with_the_monitors_error_not_a_traceback():
    done = run_local(
        STRIPE_API_KEY="sk_test_FAKEkeyForTheLocalRunsConfigTest001", DESTINATION_IDS="not-an-id"
    )

    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "KeyError" not in done.stderr
    assert "The monitor answered with an error, so the run stops here:" in done.stderr
    assert re.search(r"HTTP 500 config_error: invalid configuration: DESTINATION_IDS", done.stderr), (
        done.stderr
    )
    assert_no_test_secrets(done.stdout + done.stderr, "the local run's output")


@pytest.fixture
def serving() -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``run_local --serve`` on free ports, and its banner once it serves."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.run_local", "--serve", "--aws-port", "0", "--stripe-port", "0",
         "--api-port", "0"],
        cwd=ROOT, env=clean_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    banner = []
    assert process.stdout is not None
    for line in process.stdout:
        banner.append(line)
        if "stripe-monitor --api-url" in line:
            break
    try:
        yield process, "".join(banner)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def test_serve_prints_what_its_api_expects_and_the_cli_lists_the_demo_destinations(serving, tmp_path):
    _, banner = serving
    url = re.search(r"\.venv/bin/stripe-monitor --api-url (http://127\.0\.0\.1:\d+) status", banner)

    assert url, banner
    assert "export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1" in banner
    assert (
        f"The Stripe stand-in accepts this API key (a made-up demo key, not a secret): {DEMO_KEY}" in banner
    )
    done = run_cli("--api-url", url[1], "status", "--json", env=cli_environment(tmp_path))
    assert done.returncode == 0, done.stderr
    assert [d["destination_id"] for d in json.loads(done.stdout)["destinations"]] == sorted(
        [HEALTHY, BRIDGE, LOST, FAILING]
    )


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_serve_stops_cleanly_on_sigterm_and_ctrl_c(serving, stop):
    process, _ = serving

    process.send_signal(stop)

    assert process.wait(timeout=15) == 0
    assert "Traceback" not in process.communicate()[1]


@pytest.mark.parametrize("taken", ["--aws-port", "--api-port"])
def test_serve_with_a_port_taken_exits_with_a_clear_message_instead_of_hanging(taken):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        ports = {"--aws-port": "0", "--stripe-port": "0", "--api-port": "0"} | {taken: str(port)}
        started = time.monotonic()

        done = run_local("--serve", *(x for pair in ports.items() for x in pair), timeout=60)

    assert done.returncode == 1
    assert done.stderr.startswith(f"run_local --serve: port {port} on 127.0.0.1 is already in use.")
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 30
