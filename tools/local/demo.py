"""What ``make local`` shows: the whole product on the local stack in a few seconds. A ping delivered
through your application's forwarded receipt, one through EventBridge, one whose delivery is lost, one that
Stripe refuses; the health that follows, the alerts published, and ``stripe-monitor status`` at the end.

With the real Stripe (``StackSettings.stripe_key``) it pings, runs a schedule and shows the history and
the status instead: the real Stripe cannot deliver to this machine, so no receipts are shown.
"""

import io
import time
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import quote

from botocore.credentials import Credentials

from tools.cli.api import MonitorApi
from tools.cli.main import main as stripe_monitor
from tools.local.stack import API_ACCESS_KEY, API_SECRET_KEY, LocalStack
from tools.standins.aws import REGION

DEMO_LOST_AFTER_SECONDS = 2
WAIT_SECONDS = 2  # ping ?wait=: the lost ping's wait is also the time it needs to count as lost


class DemoError(Exception):
    """The monitor answered an error where the demo needs an answer: shown, and the run stops."""


def signed_api(stack: LocalStack) -> MonitorApi:
    """The local API, called as ``stripe-monitor`` calls it (SigV4, the demo credentials)."""
    return MonitorApi(stack.api_url, REGION, Credentials(API_ACCESS_KEY, API_SECRET_KEY))


def header(stack: LocalStack, out: TextIO) -> None:
    where = "the REAL Stripe API" if stack.real_stripe else f"the Stripe stand-in at {stack.stripe.url}"
    print(f"Stripe destination monitor, running on this machine against {where}.", file=out)
    print(f"  moto (DynamoDB, Secrets Manager, SNS)      {stack.aws.endpoint_url}", file=out)
    print(f"  the monitor's API (SigV4, both functions)  {stack.api_url}", file=out)
    if not stack.real_stripe:
        print(f"  your application (forwards receipts)       {stack.application.url}", file=out)
    print(f"Results table {stack.settings.table_name!r} created from template.yaml.\n", file=out)


def demo(stack: LocalStack, out: TextIO) -> int:
    api = signed_api(stack)
    header(stack, out)
    lost = stack.settings.lost_after_seconds
    print(f"For the demo a ping counts as lost {lost} s after Stripe created it without a receipt", file=out)
    print("(LOST_AFTER_SECONDS; LostAfterSeconds when deployed, 900 s by default).\n", file=out)
    print("The destinations (tools/demo_destinations.json):", file=out)
    for destination in stack.stripe.destinations:
        print(f"  {destination.id:<32}  {destination.name or '':<16} {destination.description}", file=out)

    command = f"stripe-monitor ping ID --wait {WAIT_SECONDS}"
    print(f"\n1. Ping each one through the API and wait for its delivery ({command})", file=out)
    dropped = [d.id for d in stack.stripe.destinations if d.delivery == "drop"]
    for destination_id in [d for d in stack.destination_ids if d not in dropped] + dropped:
        print(ping_line(_ping(api, destination_id, WAIT_SECONDS)), file=out)

    summary = stack.scheduled_run(_now())
    print(
        f"\n2. A scheduled run (events/schedule.json, as the scheduler sends it) at {_counts(summary)}",
        file=out,
    )
    for check in summary["checks"]:
        print(check_line(check), file=out)
    for entry in summary["lost"]:
        destination_id, _, pinged_at = entry.partition("@")
        pinged_at = pinged_at[11:] or pinged_at
        print(
            f"  Its sweep: the ping of {destination_id} at {pinged_at} is LOST (no receipt in {lost} s)",
            file=out,
        )
    delivering = [d.id for d in stack.stripe.destinations if d.delivery != "drop" and d.id not in dropped]
    _wait_for_receipts(api, delivering)

    alerts = stack.alerts()
    print(f"\n3. Health followed, and {len(alerts)} alerts went to the SNS topic (AlertTopicArn):", file=out)
    for subject, _ in alerts:
        print(f"  {subject}", file=out)
    if alerts:
        subject, message = next(((s, m) for s, m in alerts if "not delivered" in m), alerts[-1])
        print(f"  The text of one, as its subscribers get it:\n  | Subject: {subject}", file=out)
        for line in message.splitlines():
            print(f"  | {line}".rstrip(), file=out)
    return show_status(stack, 4, out)


def real_stripe(stack: LocalStack, out: TextIO) -> int:
    api = signed_api(stack)
    header(stack, out)
    first = stack.destination_ids[0]
    record = _ping(api, first, None)
    print(f"1. API ping of {first} (stripe-monitor ping {first})", file=out)
    print(check_line(record), file=out)
    summary = stack.scheduled_run(_now())
    print(f"\n2. A scheduled run at {_counts(summary)}", file=out)
    for check in summary["checks"]:
        print(check_line(check), file=out)
    pings = api.call("GET", f"/destinations/{quote(first, safe='')}/pings", query={"limit": "5"})["pings"]
    print(f"\n3. History of {first} (stripe-monitor history {first}): {len(pings)} checks", file=out)
    for item in pings:
        print(f"  {item['pinged_at']}  {item['trigger']:<8} {item['outcome']}", file=out)
    return show_status(stack, 4, out)


def show_status(stack: LocalStack, step: int, out: TextIO) -> int:
    print(f"\n{step}. $ stripe-monitor --api-url {stack.api_url} status", file=out)
    screen = io.StringIO()
    code = stripe_monitor(["--api-url", stack.api_url, "status"], out=screen)
    print("\n".join(f"  {line}".rstrip() for line in screen.getvalue().rstrip().splitlines()), file=out)
    meaning = "a destination is down: a deploy pipeline would stop here" if code == 1 else "all is well"
    print(f"  (exit code {code}: {meaning})", file=out)
    print(
        "\nNext: .venv/bin/stripe-monitor --help, and the same stack to try it on (or for sam local):",
        file=out,
    )
    print("  .venv/bin/python -m tools.run_local --serve", file=out)
    return 0


def ping_line(record: dict[str, Any]) -> str:
    head = f"  {record['destination_id']:<32}  {record['outcome']:<12}"
    if record["outcome"] != "ok":
        return (
            f"{head} HTTP {record.get('http_status') or '-'} after {record['attempts']} attempts"
            f" ({record['latency_ms']} ms): {record.get('error_code')}; nothing was sent"
        )
    status = record.get("delivery_status")
    if status in ("delivered", "late"):
        delivery = f"{status} via {record.get('delivery_channel')} in {record.get('delivery_latency_ms')} ms"
    elif status == "pending":
        delivery = f"no receipt within {WAIT_SECONDS} s (pending)"
    else:
        delivery = str(status)
    return f"{head} accepted in {record['latency_ms']} ms, {delivery}"


def check_line(record: dict[str, Any]) -> str:
    if record["outcome"] == "ok":
        detail = f"delivery {record.get('delivery_status') or '-'}"
    else:
        detail = f"{record.get('error_code')}: {record.get('error_message')}"
    status = record.get("http_status") or "-"
    attempts = f"{record['attempts']} attempt{'' if record['attempts'] == 1 else 's'}"
    return (
        f"  {record['destination_id']:<32}  {record['outcome']:<12} HTTP {status!s:<4}"
        f" {attempts:<10} {record['latency_ms']:>5} ms  {detail}"
    )


def _ping(api: MonitorApi, destination_id: str, wait: int | None) -> dict[str, Any]:
    path = f"/destinations/{quote(destination_id, safe='')}/ping"
    found = api.answer("POST", path, query={"wait": str(wait)} if wait else None, timeout=30)
    if "outcome" not in found.body:
        error = found.body.get("error") or {}
        raise DemoError(f"POST {path} -> HTTP {found.status} {error.get('code')}: {error.get('message')}")
    return found.body


def _wait_for_receipts(api: MonitorApi, destination_ids: list[str], timeout: float = 5.0) -> None:
    """Until the newest check of each destination whose pings arrive is no longer pending."""
    give_up = time.monotonic() + timeout
    for destination_id in destination_ids:
        path = f"/destinations/{quote(destination_id, safe='')}/pings"
        while time.monotonic() < give_up:
            pings = api.call("GET", path, query={"limit": "1"}).get("pings") or [{}]
            if pings[0].get("delivery_status") != "pending":
                break
            time.sleep(0.05)


def _counts(summary: dict[str, Any]) -> str:
    return f"{summary['scheduled_time'][11:]}: {summary['ok']} ok, {summary['failed']} failed"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
