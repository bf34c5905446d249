"""``make bench``: warm API pings, many in one process per program."""

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from bench.programs import Bench, median


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def warm_pings(bench: Bench) -> dict[str, Any]:
    """One process per program: a cold ping, then ``warm_requests`` API pings, each timed, with Stripe
    answering in ``warm_latency_ms`` (at 0 ms the wall time measures moto's requests, not the monitor)."""
    found: dict[str, Any] = {"latency_ms": bench.settings.warm_latency_ms}
    count = bench.settings.warm_requests
    bench.stripe.set_latency(bench.settings.warm_latency_ms / 1000)
    for name, program in bench.programs.items():
        spec = {"first_event": bench.api_event, "events": [bench.api_event] * count, "count_requests": True}
        result = bench.run(program, spec).result
        durations = result["durations_ms"]
        per_port = Counter({int(port): n for port, n in result["http_requests"].items()})
        found[name] = {
            "requests": len(durations),
            "median_ms": median(durations),
            "p99_ms": percentile(durations, 0.99),
            "mean_ms": statistics.fmean(durations),
            "cpu_ms": result["cpu_ms_per_event"],  # this process's own CPU time per ping
            "stripe_requests_per_ping": per_port[bench.stripe.port] / count,
            "aws_requests_per_ping": per_port[bench.aws.port] / count,
        }
    bench.stripe.set_latency(bench.settings.latency_ms / 1000)
    return found
