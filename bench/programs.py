"""``make bench``: the four programs (ours, the floor, the minimum, the peer) on the stand-ins, and one fresh
process of a program started by ``bench/driver.py``."""

import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.build import python313
from bench.packages import install, module_name, shipped_packages
from bench.run_settings import BENCH, ROOT, STRIPE_KEY, Settings
from bench.xray_sink import UdpSink
from tools.standins.aws import AwsStandIn
from tools.standins.stripe import StripeStandIn

DRIVER = BENCH / "driver.py"
API_EVENT = ROOT / "events" / "api_ping.json"
STRIPE_VERSION = "2026-06-24.dahlia"
# What Lambda's Python runtime ships besides the standard library: boto3 and its dependencies.
RUNTIME_REQUIREMENTS = ("boto3",)
# What the peer's requirements.txt names; `sam build` installs them and their dependencies, without bytecode.
PEER_REQUIREMENTS = ("stripe", "aws-lambda-powertools")


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


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


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
                    # The template's defaults: the fan-out's bound is made of the first two.
                    "CHECK_WORKERS": str(settings.workers),
                    "STRIPE_REQUESTS_PER_SECOND": f"{settings.rate:g}",
                    "POWERTOOLS_TRACE_DISABLED": "false" if settings.tracing else "true",
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
