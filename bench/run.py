"""``make bench``: cold start, warm ping and fan-out of the BUILT monitor, beside the floor, the minimum and a
peer.

Four programs do the same job on the same stand-ins (the Stripe stand-in and moto's server, on 127.0.0.1):

- ``ours``: the built ``PingFunction`` and ``CommonLayer`` (``sam build``, x86_64), nothing else on the path;
- ``floor``: ``bench/floor.py``, the design card's floor: the key from Secrets Manager, one urllib3 POST, the
  answer validated with a Powertools Parser model, one boto3 PutItem; boto3 as Lambda's runtime ships it
  (``.venv``'s, with its bytecode), Powertools and pydantic from the built layer;
- ``minimum``: ``bench/minimum.py``, one urllib3 POST and one boto3 PutItem (boto3 and urllib3 of the layer);
- ``peer``: ``bench/peer.py``, the stripe SDK, boto3 and Powertools Logger; its cold start as ``sam build``
  ships it (stripe, Powertools and their dependencies without bytecode, boto3 from the runtime).

Every measured process is fresh, runs ``python -S`` with ``PYTHONDONTWRITEBYTECODE=1`` and Lambda's
environment variables (so the X-Ray SDK and Powertools behave as on Lambda; trace segments go to a UDP sink
here), and is started by ``bench/driver.py``. Only loopback addresses are contacted. The fan-out uses the
template's defaults (``CheckWorkers``, ``StripeRequestsPerSecond``).

    .venv/bin/python -m bench.run [--quick] [--no-build] [--out FILE]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.build import sam_build, sizes
from bench.cold_start import cold_starts, import_profile
from bench.fan_out import fan_out
from bench.programs import Bench
from bench.run_report import TARGETS, machine, ratios, table
from bench.run_settings import BENCH, ROOT, STRIPE_KEY, Settings
from bench.warm_ping import warm_pings
from bench.xray_sink import UdpSink
from tools.standins.aws import FAKE_CREDENTIALS, REGION, AwsStandIn
from tools.standins.stripe import StripeStandIn
from tools.standins.template import load_template

RESULTS = BENCH / "results"
DEFAULT_BUILD_DIR = ROOT / ".aws-sam" / "bench" / "build"


def template_default(parameter: str) -> str:
    return str(load_template()["Parameters"][parameter]["Default"])


def parse_args(argv: Sequence[str] | None) -> Settings:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD_DIR)
    parser.add_argument("--no-build", action="store_true", help="use the build already in --build-dir")
    parser.add_argument("--cold-runs", type=int, default=9, help="fresh processes per program (median)")
    parser.add_argument("--warm-requests", type=int, default=100, help="API pings in one process")
    parser.add_argument("--destinations", type=int, default=40, help="destinations of the fan-out")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="stand-in latency, cold starts")
    parser.add_argument("--warm-latency-ms", type=float, default=100.0, help="stand-in latency, warm pings")
    parser.add_argument("--fanout-latency-ms", type=float, default=100.0, help="stand-in latency, fan-out")
    parser.add_argument(
        "--workers",
        type=int,
        default=int(template_default("CheckWorkers")),
        help="CHECK_WORKERS (default: the template's CheckWorkers)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=float(template_default("StripeRequestsPerSecond")),
        help="STRIPE_REQUESTS_PER_SECOND (default: the template's StripeRequestsPerSecond)",
    )
    parser.add_argument(
        "--tracing",
        choices=("Active", "PassThrough"),
        default=template_default("Tracing"),
        help="the functions' tracing (default: the template's Tracing)",
    )
    parser.add_argument("--fanout-runs", type=int, default=3, help="warm scheduled runs of ours (median)")
    parser.add_argument("--peer-fanout-runs", type=int, default=1, help="warm scheduled runs of the peer")
    parser.add_argument("--quick", action="store_true", help="3 cold runs, 30 warm pings, 1 fan-out run")
    parser.add_argument(
        "--out", type=Path, help="JSON result file (default: bench/results/bench-<time>.json)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.cold_runs, args.warm_requests, args.fanout_runs = 3, 30, 1
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Settings(
        build_dir=args.build_dir.resolve(),
        build=not args.no_build,
        cold_runs=args.cold_runs,
        warm_requests=args.warm_requests,
        destinations=args.destinations,
        latency_ms=args.latency_ms,
        warm_latency_ms=args.warm_latency_ms,
        fanout_latency_ms=args.fanout_latency_ms,
        workers=args.workers,
        rate=args.rate,
        tracing=args.tracing == "Active",
        fanout_runs=args.fanout_runs,
        peer_fanout_runs=args.peer_fanout_runs,
        out=(args.out or RESULTS / f"bench-{stamp}.json").resolve(),
    )


@contextmanager
def stand_ins() -> Iterator[tuple[StripeStandIn, AwsStandIn, UdpSink, Path]]:
    """The Stripe stand-in, moto's server, the X-Ray sink and a work directory, all gone afterwards."""
    os.environ.update({**FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": REGION})
    with (
        closing(UdpSink()) as sink,
        StripeStandIn(api_key=STRIPE_KEY) as stripe,
        AwsStandIn(own_process=True) as aws,
        tempfile.TemporaryDirectory(prefix="stripe-monitor-bench-") as workdir,
    ):
        yield stripe, aws, sink, Path(workdir)


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    started = time.monotonic()
    if settings.build:
        sam_build(settings.build_dir)
    report: dict[str, Any] = {"machine": machine(), "settings": {}, "sizes": sizes(settings.build_dir)}
    report["settings"] = {k: str(v) if isinstance(v, Path) else v for k, v in settings.__dict__.items()}
    with stand_ins() as (stripe, aws, sink, workdir):
        bench = Bench(settings, stripe, aws, sink, workdir)
        stripe.set_latency(settings.latency_ms / 1000)
        print(f"cold starts: {settings.cold_runs} fresh processes per program ...", flush=True)
        report["cold_start"] = cold_starts(bench)
        print(
            f"warm pings: {settings.warm_requests} per program at {settings.warm_latency_ms:.0f} ms ...",
            flush=True,
        )
        report["warm_ping"] = warm_pings(bench)
        print(
            f"fan-out: {settings.destinations} destinations at {settings.fanout_latency_ms:.0f} ms ...",
            flush=True,
        )
        report["fan_out"] = fan_out(bench)
        stripe.set_latency(settings.latency_ms / 1000)
        report["import_profile"] = import_profile(bench)
        report["xray_segments_received"] = sink.datagrams
    report["ratios"] = ratios(report)
    report["targets"] = TARGETS
    report["machine"]["load_average_after"] = os.getloadavg()
    report["duration_s"] = round(time.monotonic() - started, 1)
    settings.out.parent.mkdir(parents=True, exist_ok=True)
    settings.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    (settings.out.parent / "latest.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    machine_line = (
        f"{report['machine']['cpu']}, {report['machine']['cores']} cores, {report['machine']['python']}"
    )
    print(f"\n{machine_line}; load {report['machine']['load_average_before'][0]:.2f}\n")
    print(table(report))
    print(f"\nwritten to {settings.out} ({report['duration_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
