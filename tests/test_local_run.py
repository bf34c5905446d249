"""The README's first command (`make local`) works: its runner drives the real handler end to end."""

import os
import subprocess
import sys

from tests.conftest import ROOT


def test_the_local_run_pings_schedules_and_reports_every_destination():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STRIPE_", "DESTINATION_IDS"))}

    done = subprocess.run(
        [sys.executable, "-m", "tests.local.run_local"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "1. API ping (events/api_ping.json) -> HTTP 200" in out
    assert "2. Scheduled run (events/schedule.json) at 2026-11-27T04:00:00.000Z: 2 ok, 1 failed" in out
    assert "ed_test_61DemoFailing5xx0003         stripe_error" in out
    assert "3. History (events/api_history.json) -> HTTP 200, 2 checks" in out
    assert "4. Every destination (events/api_destinations.json) -> HTTP 200" in out
    assert '"_aws"' not in out and '"level"' not in out  # results only, not raw log and metric lines
