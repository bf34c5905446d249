"""``make bench``: the report: the machine, the ratios against the targets, and the table."""

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from bench.build import python313
from bench.run_settings import ROOT

# Targets from the issue; the benchmark reports them, no test asserts wall-clock times.
TARGETS = {
    "cold_vs_floor": 1.0,
    "cold_vs_peer": 0.6,
    "warm_vs_minimum": 1.05,  # wall time of a warm API ping with Stripe answering in 100 ms
    "fanout_efficiency": 0.9,
}


def machine() -> dict[str, Any]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line
        ]
        cpu = names[0] if names else cpu
    memory_kb = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        memory_kb = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = bool(
        subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    )
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 2**20, 1),
        "python": subprocess.run([python313(), "-VV"], capture_output=True, text=True).stdout.strip(),
        "commit": commit + ("+dirty" if dirty else ""),
        "load_average_before": os.getloadavg(),
    }


def ratios(report: dict[str, Any]) -> dict[str, float]:
    cold, warm, fan = report["cold_start"], report["warm_ping"], report["fan_out"]
    return {
        "cold_vs_floor": cold["ours"]["wall_ms"] / cold["floor"]["wall_ms"],
        # The peer as its user would deploy it: `sam build` ships no bytecode, so Lambda compiles the stripe
        # SDK and Powertools at every cold start (boto3 is the runtime's). The peer with the bytecode of every
        # package (which its user would have to build as ours does) is shown too.
        "cold_vs_peer": cold["ours"]["wall_ms"] / cold["peer-as-shipped"]["wall_ms"],
        "cold_vs_peer_with_pyc": cold["ours"]["wall_ms"] / cold["peer"]["wall_ms"],
        "cold_vs_minimum": cold["ours"]["wall_ms"] / cold["minimum"]["wall_ms"],
        "cold_cpu_vs_floor": cold["ours"]["cpu_ms"] / cold["floor"]["cpu_ms"],
        "warm_vs_minimum": warm["ours"]["median_ms"] / warm["minimum"]["median_ms"],
        "warm_vs_floor": warm["ours"]["median_ms"] / warm["floor"]["median_ms"],
        "warm_vs_peer": warm["ours"]["median_ms"] / warm["peer"]["median_ms"],
        "warm_cpu_vs_minimum": warm["ours"]["cpu_ms"] / warm["minimum"]["cpu_ms"],
        "warm_cpu_vs_floor": warm["ours"]["cpu_ms"] / warm["floor"]["cpu_ms"],
        "fanout_efficiency": fan["ours"]["efficiency"],
        "fanout_ping_phase_efficiency": fan["ours"]["ping_phase_efficiency"],
        "fanout_speedup_vs_peer": fan["speedup_vs_peer"],
    }


def table(report: dict[str, Any]) -> str:
    cold, warm, fan, size, ratio = (
        report[k] for k in ("cold_start", "warm_ping", "fan_out", "sizes", "ratios")
    )
    names = ("ours", "floor", "minimum", "peer")
    cold_names = ("ours", "floor", "minimum", "peer-as-shipped")

    def phases(run: dict[str, float]) -> str:
        return "/".join(f"{run[k]:.0f}" for k in ("before_pings_ms", "ping_phase_ms", "after_pings_ms"))

    latency = warm["latency_ms"]
    rows = [
        ("cold start, spawn to answer (ms)", *(f"{cold[n]['wall_ms']:.0f}" for n in cold_names)),
        ("  import of the handler (ms)", *(f"{cold[n]['import_ms']:.0f}" for n in cold_names)),
        ("  first call (ms)", *(f"{cold[n]['first_call_ms']:.0f}" for n in cold_names)),
        ("  CPU time, user + system (ms)", *(f"{cold[n]['cpu_ms']:.0f}" for n in cold_names)),
        ("  peak RSS (MiB)", *(f"{cold[n]['peak_rss_mib']:.0f}" for n in cold_names)),
        ("  the peer with every .pyc (ms)", "", "", "", f"{cold['peer']['wall_ms']:.0f}"),
        (f"warm API ping at {latency:.0f} ms, median (ms)", *(f"{warm[n]['median_ms']:.1f}" for n in names)),
        ("  p99 (ms)", *(f"{warm[n]['p99_ms']:.1f}" for n in names)),
        ("  CPU time of the process per ping (ms)", *(f"{warm[n]['cpu_ms']:.2f}" for n in names)),
        ("  Stripe / AWS requests per ping", *(
            f"{warm[n]['stripe_requests_per_ping']:.0f} / {warm[n]['aws_requests_per_ping']:.0f}"
            for n in names
        )),
        (f"fan-out, {fan['destinations']} destinations (ms)", f"{fan['ours']['wall_ms']:.0f}",
         f"bound {fan['ideal_ms']:.0f}", "", f"{fan['peer']['wall_ms']:.0f}"),
        ("  before / during / after the pings (ms)", phases(fan["ours"]), "", "", phases(fan["peer"])),
        ("  Stripe / AWS requests per run",
         f"{fan['ours']['stripe_requests_per_run']:.0f} / {fan['ours']['aws_requests_per_run']:.0f}", "", "",
         f"{fan['peer']['stripe_requests_per_run']:.0f} / {fan['peer']['aws_requests_per_run']:.0f}"),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows) + 2
    lines = [f"{'':<{width}}" + "".join(f"{name:>12}" for name in names)]
    lines += [f"{r[0]:<{width}}" + "".join(f"{cell:>12}" for cell in r[1:]) for r in rows]
    bound = (
        f"max(ceil({fan['destinations']} / {fan['workers']}) x {fan['latency_ms']:.0f} ms,"
        f" {fan['destinations']} / {fan['rate']:g} per s) = {fan['ideal_ms']:.0f} ms"
    )
    lines += [
        "",
        f"fan-out: CHECK_WORKERS {fan['workers']}, STRIPE_REQUESTS_PER_SECOND {fan['rate']:g} (by default the"
        f" template's CheckWorkers and StripeRequestsPerSecond); its bound {bound}",
        f"ours: X-Ray tracing {'on' if report['settings']['tracing'] else 'off'} (by default the template's"
        " Tracing)",
        f"layer {size['layer_unzipped_mib']:.1f} MiB unzipped ({size['layer_zipped_mib']:.1f} MiB zipped, "
        f"{size['layer_pyc_files']} .pyc); function {size['function_unzipped_kib']:.0f} KiB unzipped "
        f"({size['function_zipped_kib']:.0f} KiB zipped)",
        "",
    ]
    checks = [
        ("cold start, ours / floor", ratio["cold_vs_floor"], "<=", TARGETS["cold_vs_floor"]),
        ("cold start, ours / peer as shipped", ratio["cold_vs_peer"], "<=", TARGETS["cold_vs_peer"]),
        ("cold start, ours / peer with every .pyc", ratio["cold_vs_peer_with_pyc"], "", 0.0),
        ("cold start, ours / minimum", ratio["cold_vs_minimum"], "", 0.0),
        ("cold start CPU, ours / floor", ratio["cold_cpu_vs_floor"], "", 0.0),
        (f"warm ping at {latency:.0f} ms, ours / minimum", ratio["warm_vs_minimum"], "<=",
         TARGETS["warm_vs_minimum"]),
        (f"warm ping at {latency:.0f} ms, ours / floor", ratio["warm_vs_floor"], "", 0.0),
        (f"warm ping at {latency:.0f} ms, ours / peer", ratio["warm_vs_peer"], "", 0.0),
        ("warm ping CPU, ours / minimum", ratio["warm_cpu_vs_minimum"], "", 0.0),
        ("warm ping CPU, ours / floor", ratio["warm_cpu_vs_floor"], "", 0.0),
        ("fan-out, bound / ours", ratio["fanout_efficiency"], ">=", TARGETS["fanout_efficiency"]),
        ("fan-out, bound / ours' ping phase", ratio["fanout_ping_phase_efficiency"], "", 0.0),
        ("fan-out, peer / ours (speed-up)", ratio["fanout_speedup_vs_peer"], "", 0.0),
    ]  # fmt: skip
    for label, value, op, target in checks:
        verdict = ""
        if op:
            met = value <= target if op == "<=" else value >= target
            verdict = f"target {op} {target:.2f}: {'met' if met else 'NOT met'}"
        lines.append(f"{label:<{width + 12}}{value:>6.2f}   {verdict}")
    lines.append("")
    profile = dict(report["import_profile"])
    total = profile.pop("total")
    by_package = ", ".join(f"{k} {v:.0f}" for k, v in profile.items())
    lines.append(f"import time of ours, {total:.0f} ms by package (self time, median): {by_package}")
    return "\n".join(lines)
