"""Run the monitor on this machine: no AWS account, no Stripe key, no Docker.

``make local``: the demo (``tools/local/demo.py``) on the local stack (``tools/local/stack.py``) on free
ports: the real handlers of both functions behind the API Gateway stand-in, moto, the Stripe stand-in.

With ``STRIPE_API_KEY=sk_test_...`` and ``DESTINATION_IDS=ed_test_...`` it pings the real Stripe instead
(DynamoDB, Secrets Manager and SNS stay local).

With ``--serve`` it starts the same stack on the ports ``events/env.local.json`` names (moto :5001, the
Stripe stand-in :12111) with the REST API on :3000 (where ``sam local start-api`` serves), checks the demo
destinations once and serves until Ctrl-C or SIGTERM: for ``sam local invoke``/``start-api`` and for
``stripe-monitor --api-url http://127.0.0.1:3000``.
"""

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from tools.cli.api import CliError
from tools.local.demo import DEMO_LOST_AFTER_SECONDS, DemoError, demo, real_stripe
from tools.local.stack import API_ACCESS_KEY, API_SECRET_KEY, DEMO_KEY, LocalStack, StackSettings
from tools.standins.aws import REGION

if TYPE_CHECKING:
    from tools.standins.aws import AwsStandIn
    from tools.standins.stripe import StripeStandIn

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
LOCAL_ENV: dict[str, str] = json.loads((EVENTS / "env.local.json").read_text())["PingFunction"]
SAM_LOCAL_API_PORT = 3000  # sam local start-api's default
SERVE_LOST_AFTER_SECONDS = 60


class Stop(BaseException):
    """SIGTERM, as Ctrl-C is KeyboardInterrupt: stop serving and clean up."""


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@contextlib.contextmanager
def env_file_standins() -> Iterator[tuple["AwsStandIn", "StripeStandIn"]]:
    """moto and the Stripe stand-in on the ports ``events/env.local.json`` names, table and secret made."""
    from tools.standins.aws import AwsStandIn
    from tools.standins.stripe import StripeStandIn

    aws = AwsStandIn(port=_port(LOCAL_ENV["AWS_ENDPOINT_URL"]))
    stripe = StripeStandIn(api_key=DEMO_KEY, port=_port(LOCAL_ENV["STRIPE_API_BASE"]))
    stripe.load_config(ROOT / "tools/demo_destinations.json")
    with aws, stripe:
        aws.create_results_table(LOCAL_ENV["TABLE_NAME"])
        aws.put_secret(LOCAL_ENV["STRIPE_SECRET_ID"], DEMO_KEY)
        yield aws, stripe


def serve(aws_port: int, stripe_port: int, api_port: int) -> int:
    """The local stack for ``sam local`` and ``stripe-monitor``, until Ctrl-C or SIGTERM."""
    settings = StackSettings(
        aws_port=aws_port,
        stripe_port=stripe_port,
        api_port=api_port,
        table_name=LOCAL_ENV["TABLE_NAME"],
        secret_id=LOCAL_ENV["STRIPE_SECRET_ID"],
        lost_after_seconds=SERVE_LOST_AFTER_SECONDS,
    )
    # Signals stay deliverable the whole time (Ctrl-C and SIGTERM stop a start that takes long too); the
    # main thread waits in short steps, so it runs their handlers whichever thread the kernel picked.
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        with LocalStack(settings) as stack:
            stack.apply_environment()
            stack.scheduled_run(_now())
            _serve_banner(stack)
            forever = threading.Event()
            while not forever.wait(0.5):
                pass
    except (KeyboardInterrupt, Stop):
        return 0
    except OSError as exc:
        print(
            f"run_local --serve: {exc.strerror or exc}. Is another 'run_local --serve' or"
            " 'sam local start-api' running? Stop it, or pick other ports with --aws-port, --stripe-port"
            " and --api-port (sam local's containers use the ports of events/env.local.json).",
            file=sys.stderr,
        )
        return 1
    except RuntimeError as exc:
        print(f"run_local --serve: {exc}", file=sys.stderr)
        return 1
    return 0


def _serve_banner(stack: LocalStack) -> None:
    print(f"""\
Local stack on 127.0.0.1 (Ctrl-C or SIGTERM stops it):
  moto (DynamoDB, Secrets Manager, SNS)   {stack.aws.endpoint_url}
  Stripe stand-in                         {stack.stripe.url}
  the monitor's REST API (SigV4 checked)  {stack.api_url}
  your application (forwards receipts)    {stack.application.url}
Table {stack.settings.table_name!r} and secret {stack.settings.secret_id!r} made; the demo destinations \
checked once; a ping counts as lost {stack.settings.lost_after_seconds} s after Stripe created it.
The Stripe stand-in accepts this API key (a made-up demo key, not a secret): {DEMO_KEY}
The REST API accepts requests signed with these demo credentials, region {REGION}:
  export AWS_ACCESS_KEY_ID={API_ACCESS_KEY} AWS_SECRET_ACCESS_KEY={API_SECRET_KEY} AWS_REGION={REGION}
  .venv/bin/stripe-monitor --api-url {stack.api_url} status""", flush=True)  # fmt: skip


def run(real_key: str, real_ids: str) -> int:
    settings = StackSettings(
        lost_after_seconds=DEMO_LOST_AFTER_SECONDS, stripe_key=real_key or None, destination_ids=real_ids
    )
    with LocalStack(settings) as stack:
        stack.apply_environment()
        try:
            return real_stripe(stack, sys.stdout) if real_key else demo(stack, sys.stdout)
        except (DemoError, CliError) as exc:
            sys.stdout.flush()
            print(f"\nThe monitor answered with an error, so the run stops here:\n  {exc}", file=sys.stderr)
            return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.run_local", description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true", help="serve the local stack until Ctrl-C")
    parser.add_argument(
        "--aws-port", type=int, default=_port(LOCAL_ENV["AWS_ENDPOINT_URL"]), help="with --serve"
    )
    parser.add_argument(
        "--stripe-port", type=int, default=_port(LOCAL_ENV["STRIPE_API_BASE"]), help="with --serve"
    )
    parser.add_argument("--api-port", type=int, default=SAM_LOCAL_API_PORT, help="with --serve (0: any)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", "No application metrics to publish")  # read-only routes publish none
    if args.serve:
        return serve(args.aws_port, args.stripe_port, args.api_port)
    real_key = os.environ.get("STRIPE_API_KEY", "")
    real_ids = os.environ.get("DESTINATION_IDS", "")
    if real_key and not real_ids:
        print(
            "STRIPE_API_KEY is set: also set DESTINATION_IDS=ed_test_... (comma-separated)", file=sys.stderr
        )
        return 2
    return run(real_key, real_ids)


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


if __name__ == "__main__":
    sys.exit(main())
