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
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import Distribution, distributions
from pathlib import Path
from typing import Any

from bench.xray_sink import UdpSink
from tools.standins.aws import FAKE_CREDENTIALS, REGION, AwsStandIn
from tools.standins.stripe import StripeStandIn
from tools.standins.template import load_template

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
DRIVER = BENCH / "driver.py"
RESULTS = BENCH / "results"
DEFAULT_BUILD_DIR = ROOT / ".aws-sam" / "bench" / "build"
API_EVENT = ROOT / "events" / "api_ping.json"
STRIPE_KEY = "sk_test_BenchKeyNotARealKey000000000000000001"
STRIPE_VERSION = "2026-06-24.dahlia"
# Targets from the issue; the benchmark reports them, no test asserts wall-clock times.
TARGETS = {
    "cold_vs_floor": 1.0,
    "cold_vs_peer": 0.6,
    "warm_vs_minimum": 1.05,  # wall time of a warm API ping with Stripe answering in 100 ms
    "fanout_efficiency": 0.9,
}
# What Lambda's Python runtime ships besides the standard library: boto3 and its dependencies.
RUNTIME_REQUIREMENTS = ("boto3",)
# What the peer's requirements.txt names; `sam build` installs them and their dependencies, without bytecode.
PEER_REQUIREMENTS = ("stripe", "aws-lambda-powertools")


def template_default(parameter: str) -> str:
    return str(load_template()["Parameters"][parameter]["Default"])


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def top_level_names(distribution: Distribution) -> set[str]:
    """What a distribution installs at the top of site-packages: package directories and module files
    (``six.py``, compiled ``*.so``), its metadata left out."""
    names = set()
    for file in distribution.files or []:
        first = file.parts[0]
        if first.endswith((".dist-info", ".data")) or first in ("..", "__pycache__", "bin"):
            continue
        if len(file.parts) > 1 or first.endswith((".py", ".so")):
            names.add(first)
    return names


def module_name(entry: str) -> str:
    return entry.split(".", 1)[0]


def shipped_packages(site: Path, requirements: Iterable[str]) -> list[tuple[Distribution, set[str]]]:
    """What ``pip install`` of ``requirements`` puts in a function's package: their distributions and those
    of their dependencies (extras left out), each with its top-level names."""
    installed = {_canonical(d.metadata["Name"]): d for d in distributions(path=[str(site)])}
    todo, seen = [_canonical(r) for r in requirements], set()
    found = []
    while todo:
        name = todo.pop()
        if name in seen or name not in installed:
            continue
        seen.add(name)
        distribution = installed[name]
        found.append((distribution, top_level_names(distribution)))
        for requirement in distribution.requires or []:
            if "extra==" not in re.sub(r"\s+", "", requirement):
                todo.append(_canonical(re.split(r"[\s<>=!~;(\[]", requirement.strip(), maxsplit=1)[0]))
    return found


def install(
    packages: list[tuple[Distribution, set[str]]], site: Path, target: Path, *, bytecode: bool
) -> Path:
    """The packages of ``site`` in a directory of their own: linked, bytecode included, or copied without
    it (as ``sam build``'s default Python build ships them); their metadata too."""
    target.mkdir()
    for distribution, names in packages:
        [info] = {f.parts[0] for f in distribution.files or [] if f.parts[0].endswith(".dist-info")}
        for path in (site / name for name in [*names, info]):
            if bytecode:
                (target / path.name).symlink_to(path)
            elif path.is_dir():
                shutil.copytree(path, target / path.name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(path, target / path.name)
    return target


@dataclass
class Settings:
    build_dir: Path
    build: bool
    cold_runs: int
    warm_requests: int
    destinations: int
    latency_ms: float
    warm_latency_ms: float
    fanout_latency_ms: float
    workers: int
    rate: float
    fanout_runs: int
    peer_fanout_runs: int
    out: Path


@dataclass
class Program:
    name: str
    module: str
    python_path: list[Path]
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Run:
    result: dict[str, Any]
    wall_ms: float  # spawn -> first answer ready
    stderr: str


# -------------------------------------------------------------------------------------------- helpers


def python313() -> str:
    found = subprocess.run(
        [str(ROOT / "tools" / "find-python313")], capture_output=True, text=True, check=True
    )
    return found.stdout.strip()


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def zipped_bytes(path: Path) -> int:
    """The size of the zip that ``sam deploy`` uploads (deflate, like SAM's own packaging)."""
    with tempfile.TemporaryFile() as raw:
        with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                archive.write(file, file.relative_to(path))
        return raw.tell()


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


# ---------------------------------------------------------------------------------------------- build


def sam_build(build_dir: Path) -> None:
    """``sam build`` for x86_64 (this machine), with Python 3.13 first on PATH, as ``make build`` does."""
    sam = ROOT / ".venv-tools" / "bin" / "sam"
    if not sam.exists():
        sys.exit(f"{sam} is missing: run 'make bench' (it creates the tools environment)")
    env = os.environ | {
        "PATH": f"{Path(python313()).parent}:{os.environ['PATH']}",
        "SAM_CLI_TELEMETRY": "0",
    }
    started = time.monotonic()
    done = subprocess.run(
        [str(sam), "build", "--template-file", str(ROOT / "template.yaml"), "--build-dir", str(build_dir),
         "--parameter-overrides", "Architecture=x86_64"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode:
        sys.exit(f"sam build failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    print(f"sam build (x86_64) -> {build_dir.relative_to(ROOT)} in {time.monotonic() - started:.1f} s")


# ------------------------------------------------------------------------------------------ processes


class Bench:
    def __init__(
        self, settings: Settings, stripe: StripeStandIn, aws: AwsStandIn, sink: UdpSink, workdir: Path
    ) -> None:
        self.settings = settings
        self.stripe = stripe
        self.aws = aws
        self.python = python313()
        self.workdir = workdir  # specs, results and the peer's copied packages
        self.destination_ids = [f"ed_test_61Bench{i:04d}" for i in range(settings.destinations)]
        for destination_id in self.destination_ids:
            stripe.add_destination(destination_id)
        table, secret = "bench-checks", "bench/stripe"
        aws.create_results_table(table)
        aws.put_secret(secret, STRIPE_KEY)
        topic = aws.client("sns").create_topic(Name="bench-alerts")["TopicArn"]
        build = settings.build_dir
        common = {
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",  # as on Lambda, whose code filesystem is read-only
            # Lambda's own variables: Powertools and the X-Ray SDK switch to their Lambda behaviour on these.
            "LAMBDA_TASK_ROOT": str(build / "PingFunction"),
            "AWS_LAMBDA_FUNCTION_NAME": "bench",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "AWS_XRAY_DAEMON_ADDRESS": sink.address,
            "_X_AMZN_TRACE_ID": "Root=1-6b090040-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1",
            # Nothing but the stand-ins: no shared config, no instance metadata.
            **aws.environment,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
            "TABLE_NAME": table,
            "STRIPE_SECRET_ID": secret,
            "STRIPE_API_BASE": stripe.url,
            "STRIPE_API_VERSION": STRIPE_VERSION,
            "DESTINATION_IDS": ",".join(self.destination_ids),
            "POWERTOOLS_SERVICE_NAME": "stripe-destination-monitor",
            "POWERTOOLS_METRICS_NAMESPACE": "StripeDestinationMonitorBench",
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
        layer = build / "CommonLayer" / "python"
        venv_site = ROOT / ".venv" / "lib" / "python3.13" / "site-packages"
        self.runtime = self.runtime_packages(venv_site)
        self.programs = {
            "ours": Program(
                "ours",
                "app",
                [build / "PingFunction", layer],
                common
                | {
                    "ALERT_TOPIC_ARN": topic,
                    # The template's defaults, which the fan-out's bound is made of.
                    "CHECK_WORKERS": str(settings.workers),
                    "STRIPE_REQUESTS_PER_SECOND": f"{settings.rate:g}",
                },
            ),
            # boto3 from the runtime, before the layer's own copy; Powertools and pydantic from the layer.
            "floor": Program("floor", "floor", [self.runtime, layer], dict(common)),
            "minimum": Program("minimum", "minimum", [layer], common | {"STRIPE_API_KEY": STRIPE_KEY}),
            "peer": Program("peer", "peer", [venv_site], dict(common)),
        }
        # Cold starts only: the peer as `sam build` (BuildMethod python3.13) ships it: its requirements and
        # their dependencies without bytecode, boto3 (which it does not ship) from the runtime.
        self.peer_as_shipped = Program(
            "peer-as-shipped", "peer", [self.without_bytecode(venv_site, common), self.runtime], common
        )
        self.api_event = json.loads(API_EVENT.read_text())
        self.api_event["headers"].pop("Idempotency-Key", None)  # each ping gets its own key
        self.api_event["multiValueHeaders"].pop("Idempotency-Key", None)
        api_destination = self.destination_ids[0]
        self.api_event["path"] = f"/destinations/{api_destination}/ping"
        self.api_event["pathParameters"] = {"destination_id": api_destination}
        # A time a scheduler could send now (the function refuses runs more than a day old).
        self._scheduled = (datetime.now(UTC) - timedelta(hours=12)).replace(minute=0, second=0, microsecond=0)

    def runtime_packages(self, site: Path) -> Path:
        """boto3 and its dependencies as Lambda's Python runtime ships them: ``site``'s, bytecode included."""
        return install(
            shipped_packages(site, RUNTIME_REQUIREMENTS), site, self.workdir / "runtime", bytecode=True
        )

    def without_bytecode(self, site: Path, env: dict[str, str]) -> Path:
        """What ``sam build`` ships for the peer: the packages of its requirements and of their dependencies,
        without bytecode. Anything else it imports must be the runtime's."""
        probe = (
            "import sys, peer; print(*sorted({name.split('.')[0] for name, module in"
            " list(sys.modules.items()) if (getattr(module, '__file__', None) or '')"
            ".startswith(sys.argv[1])}))"
        )
        listed = subprocess.run(
            [self.python, "-S", "-c", probe, str(site)], env=env | {"PYTHONPATH": f"{BENCH}:{site}"},
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        shipped = shipped_packages(site, PEER_REQUIREMENTS)
        runtime = shipped_packages(site, RUNTIME_REQUIREMENTS)
        known = {module_name(name) for _, names in shipped + runtime for name in names}
        if unknown := set(listed.stdout.split()) - known:
            raise RuntimeError(f"the peer imports {sorted(unknown)}, neither shipped nor in the runtime")
        return install(shipped, site, self.workdir / "peer-site-packages", bytecode=False)

    def schedule_event(self) -> dict[str, Any]:
        self._scheduled += timedelta(minutes=10)
        return {"scheduled_time": self._scheduled.isoformat().replace("+00:00", "Z")}

    def run(self, program: Program, spec: dict[str, Any], *, importtime: bool = False) -> Run:
        spec_path = self.workdir / f"{program.name}-spec.json"
        result_path = self.workdir / f"{program.name}-result.json"
        spec_path.write_text(json.dumps(spec))
        result_path.unlink(missing_ok=True)
        env = program.env | {"PYTHONPATH": ":".join(str(p) for p in program.python_path)}
        flags = ["-S", *(["-X", "importtime"] if importtime else [])]
        command = [self.python, *flags, str(DRIVER), program.module, "lambda_handler", str(spec_path),
                   str(result_path)]  # fmt: skip
        with tempfile.TemporaryFile() as stderr:
            spawned = time.time()
            child = subprocess.Popen(
                command, env=env, cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=stderr
            )
            child.wait()
            stderr.seek(0)
            errors = stderr.read().decode(errors="replace")
        if child.returncode or not result_path.exists():
            raise RuntimeError(f"{program.name} failed ({child.returncode}):\n{errors[-4000:]}")
        result = json.loads(result_path.read_text())
        if not result["first_ok"]:
            raise RuntimeError(
                f"{program.name}: the first call failed: {result['first_answer']}\n{errors[-2000:]}"
            )
        if result.get("failures"):
            raise RuntimeError(f"{program.name}: {result['failures']} calls failed\n{errors[-2000:]}")
        return Run(result, (result["ready_wall"] - spawned) * 1000, errors)

    # -- scenarios ------------------------------------------------------------------------------------

    def cold_starts(self) -> dict[str, Any]:
        """A fresh process per run: import the handler, serve one API ping. Programs take turns."""
        programs = self.programs | {"peer-as-shipped": self.peer_as_shipped}
        runs: dict[str, list[Run]] = {name: [] for name in programs}
        for program in programs.values():  # warm the page cache; ours also records the state once
            self.run(program, {"first_event": self.api_event})
        for _ in range(self.settings.cold_runs):
            for name, program in programs.items():
                runs[name].append(self.run(program, {"first_event": self.api_event}))
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

    def warm_pings(self) -> dict[str, Any]:
        """One process per program: a cold ping, then ``warm_requests`` API pings, each timed, with Stripe
        answering in ``warm_latency_ms`` (at 0 ms the wall time measures moto's requests, not the monitor)."""
        found: dict[str, Any] = {"latency_ms": self.settings.warm_latency_ms}
        count = self.settings.warm_requests
        self.stripe.set_latency(self.settings.warm_latency_ms / 1000)
        for name, program in self.programs.items():
            spec = {"first_event": self.api_event, "events": [self.api_event] * count, "count_requests": True}
            result = self.run(program, spec).result
            durations = result["durations_ms"]
            per_port = Counter({int(port): n for port, n in result["http_requests"].items()})
            found[name] = {
                "requests": len(durations),
                "median_ms": median(durations),
                "p99_ms": percentile(durations, 0.99),
                "mean_ms": statistics.fmean(durations),
                "cpu_ms": result["cpu_ms_per_event"],  # this process's own CPU time per ping
                "stripe_requests_per_ping": per_port[self.stripe.port] / count,
                "aws_requests_per_ping": per_port[self.aws.port] / count,
            }
        self.stripe.set_latency(self.settings.latency_ms / 1000)
        return found

    def fan_out(self) -> dict[str, Any]:
        """Scheduled runs over every destination with the stand-in's latency: ours, then the peer."""
        latency = self.settings.fanout_latency_ms / 1000
        workers, rate = self.settings.workers, self.settings.rate
        count = len(self.destination_ids)
        # The bound: the workers' waves of pings, or the rate limit's spacing, whichever is longer.
        ideal_ms = max(math.ceil(count / workers) * self.settings.fanout_latency_ms, count / rate * 1000)
        self.stripe.set_latency(latency)
        found: dict[str, Any] = {
            "destinations": count,
            "workers": workers,
            "rate": rate,
            "latency_ms": self.settings.fanout_latency_ms,
            "ideal_ms": ideal_ms,
        }
        try:
            for name, runs in (("ours", self.settings.fanout_runs), ("peer", self.settings.peer_fanout_runs)):
                first = self.schedule_event()
                spec = {
                    "first_event": first,
                    "events": [self.schedule_event() for _ in range(runs)],
                    "keep_answers": True,
                    "count_requests": True,
                }
                started = time.monotonic()
                result = self.run(self.programs[name], spec).result
                pings = [r for r in self.stripe.requests if r.route == "ping" and r.started >= started]
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
                    "stripe_requests_per_run": per_port[self.stripe.port] / runs,
                    "aws_requests_per_run": per_port[self.aws.port] / runs,
                    "wall_ms_all": [round(d, 1) for d in result["durations_ms"]],
                }
                self.stripe.reset()
                self.stripe.set_latency(latency)
        finally:
            self.stripe.reset()
        ours = found["ours"]
        ours["efficiency"] = ideal_ms / ours["wall_ms"]
        ours["ping_phase_efficiency"] = ideal_ms / ours["ping_phase_ms"]
        found["speedup_vs_peer"] = found["peer"]["wall_ms"] / ours["wall_ms"]
        return found

    def import_profile(self, runs: int = 3) -> dict[str, float]:
        """``python -X importtime`` of ours: self time summed per top-level package (exact attribution),
        median of ``runs`` fresh processes, in ms."""
        per_run: list[Counter[str]] = []
        for _ in range(runs):
            run = self.run(self.programs["ours"], {"first_event": self.api_event}, importtime=True)
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


# ------------------------------------------------------------------------------------------- reporting


def sizes(build_dir: Path) -> dict[str, Any]:
    layer, function = build_dir / "CommonLayer", build_dir / "PingFunction"
    return {
        "layer_unzipped_mib": tree_bytes(layer) / 2**20,
        "layer_zipped_mib": zipped_bytes(layer) / 2**20,
        "function_unzipped_kib": tree_bytes(function) / 1024,
        "function_zipped_kib": zipped_bytes(function) / 1024,
        "layer_files": sum(1 for p in layer.rglob("*") if p.is_file()),
        "layer_pyc_files": sum(1 for _ in layer.rglob("*.pyc")),
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


# ------------------------------------------------------------------------------------------------ main


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
    parser.add_argument("--fanout-runs", type=int, default=3, help="warm scheduled runs of ours (median)")
    parser.add_argument("--peer-fanout-runs", type=int, default=1, help="warm scheduled runs of the peer")
    parser.add_argument("--quick", action="store_true", help="3 cold runs, 30 warm pings, 1 fan-out run")
    parser.add_argument("--out", type=Path, help="JSON result file (default: bench/results/<time>.json)")
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
        report["cold_start"] = bench.cold_starts()
        print(
            f"warm pings: {settings.warm_requests} per program at {settings.warm_latency_ms:.0f} ms ...",
            flush=True,
        )
        report["warm_ping"] = bench.warm_pings()
        print(
            f"fan-out: {settings.destinations} destinations at {settings.fanout_latency_ms:.0f} ms ...",
            flush=True,
        )
        report["fan_out"] = bench.fan_out()
        stripe.set_latency(settings.latency_ms / 1000)
        report["import_profile"] = bench.import_profile()
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
