"""``make cost``: what a month of the monitor costs on AWS, counted from the real handlers on the stand-ins.

The reference deployment is template.yaml with its parameter defaults (schedule, workers, rate limit,
memory, architecture, retention, alarms, dashboard), 16 destinations that all report receipts, and Stripe
answering in 300 ms. A short sample of that deployment runs for real, and is scaled to a month:

- ``--cycles`` pairs of 10-minute cycles (the schedule's interval), one from cold execution environments and
  one from warm ones (10 minutes later for their caches), after a first cycle that is not counted (the
  deployment meeting its destinations). A cycle is one scheduled run of PingFunction over every destination,
  then the receipt of every ping it made through ReceiptFunction (the webhooks Stripe delivers, forwarded to
  ``POST /webhooks/stripe`` through the API, or ``--channel eventbridge``);
- each function runs in a process of its own as Lambda's runtime runs it (``bench/lambda_worker.py``), with
  Lambda's environment variables and active tracing; AWS is moto's server behind the fault proxy, which
  records every request; the webhooks go through the API Gateway stand-in;
- what each invocation printed is its CloudWatch Logs ingestion (with Lambda's own platform lines) and its
  EMF metrics; its wall time, billed per ms at the template's memory size, its Lambda compute; the recorded
  DynamoDB requests are replayed on a fresh table to count their request units (``bench/dynamodb_replay.py``);
- a month is ``30 days x 24 h x 60 / interval`` cycles, a share of them cold (``--cold-share``, default 1:
  an environment idle for the 10 minutes between runs is assumed gone); a burst of receipts that arrives
  while every environment is busy starts more of them, cold (``usage.cold_starts``, on the measured times);
- the same sample again at 24 destinations (``--step 8``), the difference divided by 8, gives the cost of
  one more destination.

It prints a table per service, the cost per extra destination and, last, ``total: $X.XX per month``, and
writes every figure to ``bench/results/cost-<time>.json``. Prices: ``bench/prices-us-east-1.json``.

    .venv/bin/python -m bench.cost [--destinations 16] [--cycles 2] [--channel webhook|eventbridge]
"""

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from bench.cost_cycle import ColdProfile
from bench.cost_model import PRICES, PriceList, bill, total_line
from bench.cost_month import month
from bench.cost_reference import ROOT, Reference, Settings
from bench.cost_report import report
from bench.cost_sample import Sample
from bench.cost_simulation import Simulation

RESULTS = ROOT / "bench" / "results"


def measure(reference: Reference, settings: Settings, destinations: int) -> Sample:
    simulation = Simulation(reference, settings, destinations)
    with simulation.deployed():
        sample = simulation.run()
    for cycle in sample.cycles:
        failed = [i for i in cycle.invocations if i.error]
        if failed or cycle.ok != destinations or len(cycle.invocations) != destinations + 1:
            problems = "; ".join(f"{i.function}: {i.error}" for i in failed)
            raise RuntimeError(
                f"cycle {cycle.index} ({destinations} destinations): {cycle.ok} checks ok, "
                f"{len(cycle.invocations) - 1} receipts{': ' + problems if problems else ''}"
            )
    return sample


def parse_args(argv: Sequence[str] | None) -> Settings:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--destinations", type=int, default=16)
    parser.add_argument(
        "--step",
        type=int,
        default=8,
        help="the cost of one destination more is measured over this many more (0: not measured; default 8,"
        " as one destination more is within the noise of the cold starts)",
    )
    parser.add_argument("--cycles", type=int, default=2, help="pairs of cycles sampled (one cold, one warm)")
    parser.add_argument("--latency-ms", type=float, default=300.0, help="the Stripe stand-in's latency")
    parser.add_argument("--channel", choices=("webhook", "eventbridge"), default="webhook")
    parser.add_argument(
        "--cold-share", type=Decimal, default=Decimal(1), help="share of cycles that start cold"
    )
    parser.add_argument("--days", type=int, default=30, help="days in the month")
    parser.add_argument("--prices", type=Path, default=PRICES)
    parser.add_argument("--out", type=Path, help="JSON result file (default: bench/results/cost-<time>.json)")
    args = parser.parse_args(argv)
    if args.cycles < 1 or args.destinations < 1 or args.step < 0 or not 0 <= args.cold_share <= 1:
        parser.error("--cycles and --destinations at least 1, --step at least 0, --cold-share from 0 to 1")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Settings(
        destinations=args.destinations,
        step=args.step,
        cycles=args.cycles,
        latency_ms=args.latency_ms,
        channel=args.channel,
        cold_share=args.cold_share,
        days=args.days,
        prices=args.prices,
        out=(args.out or RESULTS / f"cost-{stamp}.json").resolve(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    started = time.monotonic()
    reference = Reference.load()
    prices = PriceList.load(settings.prices)
    print(f"measuring {settings.destinations} destinations ...", flush=True)
    samples = [measure(reference, settings, settings.destinations)]
    if settings.step:
        print(f"measuring {settings.destinations + settings.step} destinations ...", flush=True)
        samples.append(measure(reference, settings, settings.destinations + settings.step))
    profile = ColdProfile.of(samples, reference)
    months = [month(sample, reference, settings, profile) for sample in samples]
    bills = [bill(measured.usage, prices) for measured in months]
    main_bill = bills[0]
    extra = (samples[1], months[1], bills[1]) if settings.step else None
    text, data = report(
        reference, settings, profile, (samples[0], months[0]), main_bill, extra, time.monotonic() - started
    )
    settings.out.parent.mkdir(parents=True, exist_ok=True)
    settings.out.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print()
    print(text)
    where = settings.out.relative_to(ROOT) if settings.out.is_relative_to(ROOT) else settings.out
    print(f"Written to {where} ({time.monotonic() - started:.0f} s).")
    print(total_line(main_bill.total))
    return 0


if __name__ == "__main__":
    sys.exit(main())
