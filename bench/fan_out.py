"""``make bench``: the fan-out, scheduled runs over every destination: ours, then the peer."""

import math
import time
from collections import Counter
from typing import Any

from bench.programs import Bench, median


def fan_out(bench: Bench) -> dict[str, Any]:
    """Scheduled runs over every destination with the stand-in's latency: ours, then the peer."""
    latency = bench.settings.fanout_latency_ms / 1000
    workers, rate = bench.settings.workers, bench.settings.rate
    count = len(bench.destination_ids)
    # The bound: the workers' waves of pings, or the rate limit's spacing, whichever is longer.
    ideal_ms = max(math.ceil(count / workers) * bench.settings.fanout_latency_ms, count / rate * 1000)
    bench.stripe.set_latency(latency)
    found: dict[str, Any] = {
        "destinations": count,
        "workers": workers,
        "rate": rate,
        "latency_ms": bench.settings.fanout_latency_ms,
        "ideal_ms": ideal_ms,
    }
    try:
        for name, runs in (("ours", bench.settings.fanout_runs), ("peer", bench.settings.peer_fanout_runs)):
            first = bench.schedule_event()
            spec = {
                "first_event": first,
                "events": [bench.schedule_event() for _ in range(runs)],
                "keep_answers": True,
                "count_requests": True,
            }
            started = time.monotonic()
            result = bench.run(bench.programs[name], spec).result
            pings = [r for r in bench.stripe.requests if r.route == "ping" and r.started >= started]
            phases, before, after = [], [], []
            for begin, end in result["spans"]:  # the stand-in's clock is the same monotonic clock
                inside = [r for r in pings if begin <= r.started <= end and r.ended is not None]
                first_ping = min(r.started for r in inside)
                last_answer = max(r.ended or 0.0 for r in inside)
                phases.append((last_answer - first_ping) * 1000)
                before.append((first_ping - begin) * 1000)
                after.append((end - last_answer) * 1000)
            checked = [a.get("checked") for a in result["answers"]]
            if any(c != count for c in checked):
                raise RuntimeError(f"{name}: scheduled runs checked {checked}, expected {count} each")
            per_port = Counter({int(port): n for port, n in result["http_requests"].items()})
            found[name] = {
                "runs": len(result["durations_ms"]),
                "first_run_ms": result["first_call_ms"],
                "wall_ms": median(result["durations_ms"]),
                "ping_phase_ms": median(phases),
                "before_pings_ms": median(before),
                "after_pings_ms": median(after),
                "stripe_requests_per_run": per_port[bench.stripe.port] / runs,
                "aws_requests_per_run": per_port[bench.aws.port] / runs,
                "wall_ms_all": [round(d, 1) for d in result["durations_ms"]],
            }
            bench.stripe.reset()
            bench.stripe.set_latency(latency)
    finally:
        bench.stripe.reset()
    ours = found["ours"]
    ours["efficiency"] = ideal_ms / ours["wall_ms"]
    ours["ping_phase_efficiency"] = ideal_ms / ours["ping_phase_ms"]
    found["speedup_vs_peer"] = found["peer"]["wall_ms"] / ours["wall_ms"]
    return found
