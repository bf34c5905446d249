"""Run the monitor's main job locally: no AWS account, no Stripe key, no Docker.

Starts moto's server (DynamoDB, Secrets Manager) and the Stripe stand-in on 127.0.0.1, creates the results
table from template.yaml's own definition and the secret, then drives the real ``lambda_handler`` with the
committed events/ files: an API ping, a scheduled run (one destination fails on purpose), the history and
the latest-check view.

With ``STRIPE_API_KEY=sk_test_...`` and ``DESTINATION_IDS=ed_test_...`` it pings the real Stripe instead
(DynamoDB and Secrets Manager stay local).

With ``--serve`` it only starts the stand-ins, on the ports ``events/env.local.json`` names, with the
table and the secret created, and serves until interrupted: for ``sam local invoke`` / ``start-api``.
"""

import contextlib
import io
import json
import os
import signal
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.lambda_context import FakeLambdaContext

if TYPE_CHECKING:
    from tools.standins.aws import AwsStandIn
    from tools.standins.stripe import StripeStandIn

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
# A made-up key of the same pattern as the tests' fakes, so the secret-hygiene checks catch it too.
DEMO_KEY = "sk_test_FAKElocalDemoKeyNotARealKey00000"
TABLE_NAME = "stripe-monitor-local"
SECRET_ID = "stripe-monitor/local"


def _event(name: str, destination_id: str | None = None) -> dict[str, Any]:
    """A committed event; for the real Stripe (``destination_id`` given) made unique to this run, since
    Stripe replays the first answer to a reused idempotency key, or refuses it for another destination."""
    text = (EVENTS / name).read_text()
    if destination_id:
        text = text.replace("ed_test_61DemoHealthyWebhook0001", destination_id)
        text = text.replace("demo-api-ping-0001", f"local-run-{uuid.uuid4()}")
    event: dict[str, Any] = json.loads(text)
    if "scheduled_time" in event:  # a run is refused more than a day after its scheduled time
        event["scheduled_time"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return event


def _line(record: dict[str, Any]) -> str:
    detail = record.get("event_id") or f"{record.get('error_code')}: {record.get('error_message')}"
    status = record.get("http_status") or "-"
    return (
        f"  {record['destination_id']:<36} {record['outcome']:<16} HTTP {status!s:<4}"
        f" attempts {record['attempts']}  {record['latency_ms']:>5} ms  {detail}"
    )


def _call(handler: Any, event: dict[str, Any]) -> Any:
    """Run the handler with its log and metric lines held back, so the screen shows the results."""
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output):
            return handler(event, FakeLambdaContext(remaining_ms=25_000, aws_request_id="local-run"))
    except Exception:
        print(output.getvalue(), file=sys.stderr)
        raise


@contextlib.contextmanager
def env_file_standins() -> Iterator[tuple["AwsStandIn", "StripeStandIn"]]:
    """moto and the Stripe stand-in on the ports ``events/env.local.json`` names, table and secret made."""
    from tools.standins.aws import AwsStandIn
    from tools.standins.stripe import StripeStandIn

    local_env = json.loads((EVENTS / "env.local.json").read_text())["PingFunction"]
    aws = AwsStandIn(port=int(local_env["AWS_ENDPOINT_URL"].rsplit(":", 1)[1]))
    stripe = StripeStandIn(api_key=DEMO_KEY, port=int(local_env["STRIPE_API_BASE"].rsplit(":", 1)[1]))
    stripe.load_config(ROOT / "tools/demo_destinations.json")
    with aws, stripe:
        aws.create_results_table(local_env["TABLE_NAME"])
        aws.put_secret(local_env["STRIPE_SECRET_ID"], DEMO_KEY)
        yield aws, stripe


def serve() -> int:
    """Stand-ins for ``sam local ... --env-vars events/env.local.json``, until Ctrl-C."""
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    with env_file_standins() as (aws, stripe):
        print(f"moto (DynamoDB, Secrets Manager) at {aws.endpoint_url}, Stripe stand-in at {stripe.url}")
        print("table and secret created; Ctrl-C to stop", flush=True)
        signal.sigwait(stop_signals)
    return 0


def main() -> int:
    if sys.argv[1:] == ["--serve"]:
        return serve()
    real_key = os.environ.get("STRIPE_API_KEY", "")
    real_ids = os.environ.get("DESTINATION_IDS", "")
    if real_key and not real_ids:
        print(
            "STRIPE_API_KEY is set: also set DESTINATION_IDS=ed_test_... (comma-separated)", file=sys.stderr
        )
        return 2

    sys.path[:0] = [str(ROOT / "layers/common"), str(ROOT / "functions/ping")]
    from tools.standins.aws import AwsStandIn
    from tools.standins.stripe import StripeStandIn

    with AwsStandIn() as aws, StripeStandIn(api_key=DEMO_KEY) as stripe:
        if real_key:
            api_base, destinations, key = "https://api.stripe.com", real_ids, real_key
            first_destination: str | None = real_ids.split(",")[0].strip()
        else:
            stripe.load_config(ROOT / "tools/demo_destinations.json")
            api_base, key, first_destination = stripe.url, DEMO_KEY, None
            destinations = ",".join(d.id for d in stripe.destinations)
        os.environ.update(
            aws.environment
            | {
                "TABLE_NAME": TABLE_NAME,
                "STRIPE_SECRET_ID": SECRET_ID,
                "STRIPE_API_BASE": api_base,
                "DESTINATION_IDS": destinations,
                "STRIPE_BACKOFF_BASE": "0.05",
                "POWERTOOLS_SERVICE_NAME": "stripe-destination-monitor",
                "POWERTOOLS_LOG_LEVEL": "WARNING",  # keep the screen for the results
                "POWERTOOLS_METRICS_NAMESPACE": "StripeDestinationMonitorLocal",
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_TRACE_DISABLED": "true",
            }
        )
        aws.create_results_table(TABLE_NAME)
        aws.put_secret(SECRET_ID, key)

        import app

        where = "the REAL Stripe API" if real_key else f"the Stripe stand-in at {stripe.url}"
        print(
            f"Monitor running locally against {where};"
            f" DynamoDB and Secrets Manager: moto at {aws.endpoint_url}"
        )
        print(f"Results table {TABLE_NAME!r} created from template.yaml; destinations: {destinations}\n")

        ping = _call(app.lambda_handler, _event("api_ping.json", first_destination))
        record = json.loads(ping["body"])
        print(f"1. API ping (events/api_ping.json) -> HTTP {ping['statusCode']}")
        print(_line(record))

        summary = _call(app.lambda_handler, _event("schedule.json", first_destination))
        print(f"\n2. Scheduled run (events/schedule.json) at {summary['scheduled_time']}: "
              f"{summary['ok']} ok, {summary['failed']} failed")  # fmt: skip
        for check in summary["checks"]:
            print(_line(check))

        history = _call(app.lambda_handler, _event("api_history.json", first_destination))
        pings = json.loads(history["body"])["pings"]
        print(
            f"\n3. History (events/api_history.json) -> HTTP {history['statusCode']},"
            f" {len(pings)} checks, newest first"
        )
        for item in pings:
            print(f"  {item['pinged_at']}  {item['trigger']:<8} {item['outcome']}")

        latest = _call(app.lambda_handler, _event("api_destinations.json"))
        print(f"\n4. Every destination (events/api_destinations.json) -> HTTP {latest['statusCode']}")
        for item in json.loads(latest["body"])["destinations"]:
            last = item["last_check"]
            print(
                f"  {item['destination_id']:<36} {item['health']:<9} ({item['health_reason']});"
                f" last check {last['outcome']} at {last['pinged_at']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
