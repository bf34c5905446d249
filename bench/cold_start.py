"""``make bench``: cold starts, a fresh process per run, and where ours spends its import time."""

from collections import Counter
from typing import Any

from bench.programs import Bench, Run, median


def cold_starts(bench: Bench) -> dict[str, Any]:
    """A fresh process per run: import the handler, serve one API ping. Programs take turns."""
    programs = bench.programs | {"peer-as-shipped": bench.peer_as_shipped}
    runs: dict[str, list[Run]] = {name: [] for name in programs}
    for program in programs.values():  # warm the page cache; ours also records the state once
        bench.run(program, {"first_event": bench.api_event})
    for _ in range(bench.settings.cold_runs):
        for name, program in programs.items():
            runs[name].append(bench.run(program, {"first_event": bench.api_event}))
    return {
        name: {
            "runs": len(found),
            "wall_ms": median([r.wall_ms for r in found]),
            "import_ms": median([r.result["import_ms"] for r in found]),
            "first_call_ms": median([r.result["first_call_ms"] for r in found]),
            "cpu_ms": median([r.result["cpu_ms"] for r in found]),
            "peak_rss_mib": median([r.result["peak_rss_kib"] / 1024 for r in found]),
            "wall_ms_all": [round(r.wall_ms, 1) for r in found],
        }
        for name, found in runs.items()
    }


def import_profile(bench: Bench, runs: int = 3) -> dict[str, float]:
    """``python -X importtime`` of ours: self time summed per top-level package (exact attribution),
    median of ``runs`` fresh processes, in ms."""
    per_run: list[Counter[str]] = []
    for _ in range(runs):
        run = bench.run(bench.programs["ours"], {"first_event": bench.api_event}, importtime=True)
        per_package: Counter[str] = Counter()  # microseconds
        for line in run.stderr.splitlines():
            parts = line.removeprefix("import time:").split("|")
            if line.startswith("import time:") and len(parts) == 3 and parts[0].strip().isdigit():
                per_package[parts[2].strip().split(".")[0]] += int(parts[0])
        per_run.append(per_package)
    packages = set().union(*per_run)
    medians = {name: median([found[name] for found in per_run]) / 1000 for name in packages}
    top = sorted(medians.items(), key=lambda item: -item[1])[:12]
    return {"total": round(sum(medians.values()), 1)} | {name: round(ms, 1) for name, ms in top}
