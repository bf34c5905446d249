"""The README's first command (`make local`) works: its runner drives the real handler end to end."""

import os
import re
import subprocess
import sys

from tests.conftest import assert_no_test_secrets
from tests.support import ROOT, load_event


def test_the_local_run_pings_schedules_and_reports_every_destination():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STRIPE_", "DESTINATION_IDS"))}

    done = subprocess.run(
        [sys.executable, "-m", "tools.run_local"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "1. API ping (events/api_ping.json) -> HTTP 200" in out
    assert re.search(r"2\. Scheduled run \(events/schedule\.json\) at \S+Z: 2 ok, 1 failed", out)
    assert "ed_test_61DemoFailing5xx0003         stripe_error" in out
    assert "3. History (events/api_history.json) -> HTTP 200, 2 checks" in out
    assert "4. Every destination (events/api_destinations.json) -> HTTP 200" in out
    assert_no_test_secrets(out + done.stderr, "the local run's output")
    assert '"_aws"' not in out and '"level"' not in out  # results only, not raw log and metric lines


def test_against_the_real_stripe_each_local_run_uses_fresh_idempotency_keys():
    from tools.run_local import _event

    first, second = (_event("api_ping.json", "ed_test_61RealDestination0001") for _ in range(2))
    schedule = _event("schedule.json", "ed_test_61RealDestination0001")

    assert first["headers"]["Idempotency-Key"] != second["headers"]["Idempotency-Key"]
    assert first["pathParameters"]["destination_id"] == "ed_test_61RealDestination0001"
    assert schedule["scheduled_time"] != load_event("schedule.json")["scheduled_time"]
