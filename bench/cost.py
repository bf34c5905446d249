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
import gzip
import json
import math
import os
import re
import secrets
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from bench.cost_model import GIB, Bill, MonthlyUsage, PriceList, bill, dollars, table, total_line
from bench.dynamodb_replay import PREFIX, Replayer, TableSize, Units
from bench.usage import (
    LOG_EVENT_OVERHEAD_BYTES,
    Arrival,
    Metric,
    cold_starts,
    distinct_metrics,
    hourly_share,
    log_events,
    sampled_traces,
)
from bench.xray_sink import UdpSink
from tools.standins.api_gateway import LocalApiGateway, template_routes
from tools.standins.aws import FAKE_CREDENTIALS, REGION, AwsStandIn
from tools.standins.aws_faults import AwsFaultProxy, ProxyRecord
from tools.standins.stripe import StripeStandIn
from tools.standins.template import RESULTS_TABLE, load_template

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "lambda_worker.py"
RESULTS = ROOT / "bench" / "results"
STACK = "stripe-destination-monitor-prod"
ACCOUNT = "123456789012"
STRIPE_KEY = "sk_test_CostModelKeyNotARealKey0000000000001"
Channel = Literal["webhook", "eventbridge"]
# API Gateway's detailed metrics per resource and method (MetricsEnabled); CacheHitCount and CacheMissCount
# only with a cache, which the API has not.
API_DETAILED_METRICS = ("4XXError", "5XXError", "Count", "IntegrationLatency", "Latency")


# --------------------------------------------------------------------------------------- the template


class UnresolvedError(ValueError):
    pass


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_dir: Path
    module: str
    handler: str
    memory_mb: int
    timeout_s: int
    architecture: str
    tracing: bool
    variables: dict[str, Any]  # Globals' and the function's own, as written in the template

    @property
    def name(self) -> str:
        """The name CloudFormation gives the function (stack, logical id, 12 random characters)."""
        return f"{STACK}-{self.logical_id}-AbCdEf012345"


@dataclass(frozen=True)
class Reference:
    """What template.yaml, with its parameter defaults, deploys."""

    template: dict[str, Any]
    parameters: dict[str, str]
    functions: dict[str, FunctionSpec]
    schedule_minutes: int
    alarms: int
    dashboards: int
    ssm_parameters: int
    log_retention_days: int
    result_retention_days: int
    pitr: bool
    api_detailed_metrics: bool
    api_tracing: bool
    access_log_format: str

    @classmethod
    def load(cls, template: dict[str, Any] | None = None) -> "Reference":
        template = template or load_template()
        parameters = {
            name: str(spec["Default"])
            for name, spec in template.get("Parameters", {}).items()
            if "Default" in spec
        }
        resources: dict[str, Any] = template["Resources"]
        resolver = Resolver(parameters, template)
        globals_variables = template.get("Globals", {}).get("Function", {}).get("Environment", {})
        functions = {}
        for logical_id, resource in resources.items():
            if resource["Type"] != "AWS::Serverless::Function" or not resolver.exists(resource):
                continue
            props = resource["Properties"]
            module, handler = props["Handler"].rsplit(".", 1)
            architectures = props.get("Architectures", ["x86_64"])
            functions[logical_id] = FunctionSpec(
                logical_id=logical_id,
                code_dir=ROOT / props["CodeUri"],
                module=module,
                handler=handler,
                memory_mb=int(resolver.value(props.get("MemorySize", 128))),
                timeout_s=int(resolver.value(props.get("Timeout", 3))),
                architecture=resolver.value(architectures[0]),
                tracing=resolver.value(props.get("Tracing", "PassThrough")) == "Active",
                variables=dict(globals_variables.get("Variables", {}))
                | dict(props.get("Environment", {}).get("Variables", {})),
            )
        ping = resources["PingFunction"]["Properties"]
        [schedule] = [e["Properties"] for e in ping["Events"].values() if e["Type"] == "ScheduleV2"]
        api = resources["MonitorApi"]["Properties"]
        table = resources[RESULTS_TABLE]["Properties"]
        counted = {
            kind: sum(1 for r in resources.values() if r["Type"] == kind and resolver.exists(r))
            for kind in ("AWS::CloudWatch::Dashboard", "AWS::SSM::Parameter")
        }
        return cls(
            template=template,
            parameters=parameters,
            functions=functions,
            schedule_minutes=rate_minutes(resolver.value(schedule["ScheduleExpression"])),
            alarms=sum(
                len([m for m in r["Properties"].get("Metrics", []) if "MetricStat" in m]) or 1
                for r in resources.values()
                if r["Type"] == "AWS::CloudWatch::Alarm" and resolver.exists(r)
            ),
            dashboards=counted["AWS::CloudWatch::Dashboard"],
            ssm_parameters=counted["AWS::SSM::Parameter"],
            # The longest retention of the stack's log groups (0: kept for ever).
            log_retention_days=max(
                (
                    int(resolver.value(r["Properties"].get("RetentionInDays", 0)))
                    for r in resources.values()
                    if r["Type"] == "AWS::Logs::LogGroup" and resolver.exists(r)
                ),
                default=0,
            ),
            result_retention_days=int(
                next(
                    resolver.value(f.variables["RESULT_RETENTION_DAYS"])
                    for f in functions.values()
                    if "RESULT_RETENTION_DAYS" in f.variables
                )
            ),
            pitr=bool(
                table.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled", False)
            ),
            api_detailed_metrics=any(
                resolver.flag(s.get("MetricsEnabled")) for s in api.get("MethodSettings", [])
            ),
            api_tracing=resolver.flag(api.get("TracingEnabled")),
            access_log_format=str(api.get("AccessLogSetting", {}).get("Format", "")),
        )


class Resolver:
    """Parameter references and conditions of the template, with the parameters' defaults."""

    def __init__(self, parameters: dict[str, str], template: dict[str, Any]) -> None:
        self.parameters = parameters
        self.conditions: dict[str, Any] = template.get("Conditions", {})

    def flag(self, value: Any) -> bool:
        """A boolean property, maybe conditional (``!If [Condition, true, false]``)."""
        if isinstance(value, dict) and set(value) == {"Fn::If"}:
            condition, when_true, when_false = value["Fn::If"]
            return self.flag(when_true if self.condition({"Condition": condition}) else when_false)
        return bool(value)

    def value(self, value: Any) -> str:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in self.parameters:
            return self.parameters[value["Ref"]]
        if isinstance(value, dict) and set(value) == {"Fn::If"}:
            condition, when_true, when_false = value["Fn::If"]
            return self.value(when_true if self.condition({"Condition": condition}) else when_false)
        raise UnresolvedError(f"cannot resolve {value!r} from the parameters' defaults")

    def condition(self, expression: Any) -> bool:
        if isinstance(expression, dict) and len(expression) == 1:
            [(name, argument)] = expression.items()
            if name == "Condition":
                return self.condition(self.conditions[argument])
            if name == "Fn::Not":
                return not self.condition(argument[0])
            if name == "Fn::And":
                return all(self.condition(a) for a in argument)
            if name == "Fn::Or":
                return any(self.condition(a) for a in argument)
            if name == "Fn::Equals":
                return self.value(argument[0]) == self.value(argument[1])
        raise UnresolvedError(f"cannot evaluate the condition {expression!r}")

    def exists(self, resource: dict[str, Any]) -> bool:
        condition = resource.get("Condition")
        return condition is None or self.condition({"Condition": condition})


def rate_minutes(expression: str) -> int:
    found = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not found:
        raise UnresolvedError(f"only rate(...) schedules can be costed, not {expression!r}")
    scale = {"minute": 1, "hour": 60, "day": 1440}[found[2].rstrip("s")]
    return int(found[1]) * scale


# ------------------------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class Settings:
    destinations: int
    step: int  # also measure ``destinations + step`` for the cost of one more destination (0: do not)
    cycles: int  # pairs of cycles: one cold, one warm
    latency_ms: float
    channel: Channel
    cold_share: Decimal
    days: int
    prices: Path
    out: Path


# -------------------------------------------------------------------------------------------- workers


@dataclass
class Invocation:
    function: str
    cold: bool
    init_ms: float  # the init phase, billed since August 2025; 0 when warm
    duration_ms: float
    cpu_ms: float
    log: str  # what the function wrote (its init's output too, when cold)
    platform: str  # Lambda's own lines (LogFormat: JSON)
    rss_kib: int
    error: str | None
    answer: Any
    offset_s: float  # from the start of its cycle
    aws: tuple[int, int]  # the fault proxy's log, from index to index
    via_api: bool = False  # a request to the API (traced there when the API's tracing is on)

    @property
    def billed_ms(self) -> int:
        return math.ceil(self.duration_ms) + (math.ceil(self.init_ms) if self.cold else 0)


class Worker:
    """One execution environment of a function: a process running ``bench/lambda_worker.py``."""

    def __init__(self, spec: FunctionSpec, env: dict[str, str]) -> None:
        self.spec = spec
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), spec.module, spec.handler],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=spec.code_dir, text=True,
        )  # fmt: skip
        ready = self._read()
        self.init_ms = float(ready["init_ms"])
        self.init_log = str(ready["log"])
        self.invoked = False

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.spec.logical_id}'s worker died ({self.process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _write(self, request: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()

    def advance(self, seconds: float) -> int:
        self._write({"advance_seconds": seconds})
        return int(self._read()["aged"])

    def invoke(self, event: dict[str, Any], request_id: str, trace_id: str) -> dict[str, Any]:
        spec = self.spec
        context = {
            "function_name": spec.name,
            "memory_limit_in_mb": spec.memory_mb,
            "invoked_function_arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{spec.name}",
            "aws_request_id": request_id,
            "log_group_name": f"/aws/lambda/{spec.name}",
            "log_stream_name": f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}",
        }
        self._write(
            {"event": event, "context": context, "trace_id": trace_id, "timeout_ms": spec.timeout_s * 1000}
        )
        return self._read()

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def trace_header() -> tuple[str, str]:
    """A new X-Ray trace header, and its span id."""
    root = f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"
    parent = secrets.token_hex(8)
    return f"Root={root};Parent={parent};Sampled=1", parent


def platform_lines(spec: FunctionSpec, request_id: str, trace: str, span: str, reply: dict[str, Any],
                   init_ms: float | None) -> str:  # fmt: skip
    """Lambda's own log lines for one invocation with ``LogFormat: JSON`` (and active tracing):
    ``platform.initStart`` at a cold start, ``platform.start`` and ``platform.report``."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    tracing = {"spanId": span, "type": "X-Amzn-Trace-Id", "value": trace} if spec.tracing else None
    lines = []
    if init_ms is not None:
        init = {
            "initializationType": "on-demand",
            "phase": "init",
            "runtimeVersion": "python:3.13.v48",
            "runtimeVersionArn": f"arn:aws:lambda:{REGION}::runtime:{secrets.token_hex(32)}",
            "functionName": spec.name,
            "functionVersion": "$LATEST",
        }
        lines.append({"time": now, "type": "platform.initStart", "record": init})
    start: dict[str, Any] = {"requestId": request_id, "version": "$LATEST"}
    if tracing:
        start["tracing"] = tracing
    lines.append({"time": now, "type": "platform.start", "record": start})
    duration = float(reply["duration_ms"])
    metrics: dict[str, Any] = {
        "durationMs": round(duration, 3),
        "billedDurationMs": math.ceil(duration) + (math.ceil(init_ms) if init_ms is not None else 0),
        "memorySizeMB": spec.memory_mb,
        "maxMemoryUsedMB": int(reply["rss_kib"]) // 1024,
    }
    if init_ms is not None:
        metrics["initDurationMs"] = round(init_ms, 3)
    report: dict[str, Any] = {"requestId": request_id, "metrics": metrics}
    if tracing:
        report["tracing"] = tracing
    report["status"] = "success" if reply["error"] is None else "error"
    lines.append({"time": now, "type": "platform.report", "record": report})
    return "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)


# ------------------------------------------------------------------------------------------ the sample


@dataclass
class ApiRequest:
    method: str
    resource: str
    path: str
    offset_s: float
    status: int = 200
    response_bytes: int = 0


@dataclass
class Cycle:
    index: int
    cold: bool
    scheduled_time: str
    invocations: list[Invocation] = field(default_factory=list)
    api_requests: list[ApiRequest] = field(default_factory=list)
    partner_events: int = 0
    stripe_requests: int = 0
    aws: tuple[int, int] = (0, 0)
    checked: int = 0
    ok: int = 0
    table: TableSize = field(default_factory=lambda: TableSize(0, 0))
    units: Units = field(default_factory=Units)


@dataclass
class Sample:
    destinations: int
    channel: Channel
    cycles: list[Cycle]  # cold, warm, cold, warm ...
    warm_up: Cycle  # the first run of the deployment, not counted
    aws_log: list[ProxyRecord]
    units: list[Units]  # per record of aws_log (zero for other services)
    secret_ids: set[str]


class Arrivals:
    """What the functions' triggers deliver while a cycle runs: API requests (through the API Gateway
    stand-in) or EventBridge envelopes, each with the time it arrived."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[tuple[float, dict[str, Any], str | None]] = []  # (monotonic, event, function)

    def api_handler(self, function: str) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
        def queue(event: dict[str, Any], context: Any) -> dict[str, Any]:
            with self._lock:
                self.events.append((time.monotonic(), event, function))
            return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}

        return queue

    def eventbridge(self, envelope: dict[str, Any]) -> None:
        with self._lock:
            self.events.append((time.monotonic(), envelope, None))

    def take(self) -> list[tuple[float, dict[str, Any], str | None]]:
        with self._lock:
            taken, self.events = sorted(self.events, key=lambda e: e[0]), []
        return taken

    def __len__(self) -> int:
        with self._lock:
            return len(self.events)


class Simulation:
    def __init__(self, reference: Reference, settings: Settings, destinations: int) -> None:
        self.reference = reference
        self.settings = settings
        self.destination_ids = [f"ed_test_61Cost{n:04d}Destination" for n in range(destinations)]
        self.arrivals = Arrivals()
        self.workers: dict[str, Worker] = {}
        self.table_name = f"{STACK}-ResultsTable-1ABCDEFGHIJKL"
        # Names of secrets, not secrets.
        self.secret_id = "stripe-destination-monitor/prod"  # noqa: S105
        self.webhook_secret_id = "stripe-destination-monitor/prod/webhook"  # noqa: S105

    # -- set-up ---------------------------------------------------------------------------------------

    @contextmanager
    def deployed(self) -> Iterator["Simulation"]:
        os.environ.update({**FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": REGION})
        with ExitStack() as stack:
            self.aws = stack.enter_context(AwsStandIn(own_process=True))
            self.proxy = stack.enter_context(AwsFaultProxy(self.aws.endpoint_url))
            self.stripe = stack.enter_context(StripeStandIn(api_key=STRIPE_KEY))
            handlers = {
                logical_id: self.arrivals.api_handler(logical_id) for logical_id in self.reference.functions
            }
            self.gateway = stack.enter_context(
                LocalApiGateway(template_routes(handlers, self.reference.template))
            )
            self.sink = stack.enter_context(closing(UdpSink()))
            stack.callback(self._stop_workers)
            self._create_resources()
            yield self

    def _create_resources(self) -> None:
        aws = self.aws
        aws.create_results_table(self.table_name)
        aws.put_secret(self.secret_id, STRIPE_KEY)
        self.topic_arn = aws.client("sns").create_topic(Name=f"{STACK}-AlertTopic-ABCDEFGHIJKL")["TopicArn"]
        self.api_url_parameter = f"/{STACK}/api-url"
        aws.client("ssm").put_parameter(
            Name=self.api_url_parameter, Value="https://abcdefghij.execute-api.us-east-1.amazonaws.com/v1",
            Type="String",
        )  # fmt: skip
        signing: dict[str, list[str]] = {}
        for destination_id in self.destination_ids:
            if self.settings.channel == "eventbridge":
                self.stripe.add_destination(destination_id, type="amazon_eventbridge")
            else:
                secret = f"whsec_{secrets.token_hex(16)}"
                signing[destination_id] = [secret]
                self.stripe.add_destination(
                    destination_id, url=f"{self.gateway.url}/webhooks/stripe", signing_secret=secret
                )
        if signing:
            aws.put_secret(self.webhook_secret_id, json.dumps(signing))
        self.stripe.on_eventbridge = self.arrivals.eventbridge
        self.stripe.set_latency(self.settings.latency_ms / 1000)

    def environment(self, spec: FunctionSpec) -> dict[str, str]:
        """The function's environment as Lambda sets it, its variables from the template and the stand-ins."""
        eventbridge = self.settings.channel == "eventbridge"
        ours = {
            "AWS_ENDPOINT_URL": self.proxy.endpoint_url,
            "TABLE_NAME": self.table_name,
            "ALERT_TOPIC_ARN": self.topic_arn,
            "API_URL_PARAMETER": self.api_url_parameter,
            "STRIPE_SECRET_ID": self.secret_id,
            "STRIPE_API_BASE": self.stripe.url,
            # Every destination reports receipts: through its partner bus (beyond the template's three buses,
            # to cost 16) or by forwarding its webhooks, signed with its own secret.
            "RECEIPT_EVENT_BUS_NAMES": ",".join(
                f"aws.partner/stripe.com/{d}" for d in self.destination_ids if eventbridge
            ),
            "WEBHOOK_SECRET_ID": "" if eventbridge else self.webhook_secret_id,
        }
        resolver = Resolver(self.reference.parameters, self.reference.template)
        variables = {}
        for name, value in spec.variables.items():
            if name in ours:
                variables[name] = ours[name]
                continue
            try:
                variables[name] = resolver.value(value)
            except UnresolvedError:
                raise UnresolvedError(
                    f"{spec.logical_id}'s variable {name} = {value!r}: bench/cost.py needs a value for it"
                ) from None
        venv = Path(sys.executable).parent
        return {
            "PATH": f"{venv}:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "PYTHONPATH": f"{spec.code_dir}:{ROOT / 'layers' / 'common'}",
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_FORMAT": "JSON",
            "AWS_LAMBDA_LOG_LEVEL": self.reference.parameters.get("LogLevel", "INFO").replace(
                "WARNING", "WARN"
            ),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "AWS_XRAY_DAEMON_ADDRESS": self.sink.address,
            "_X_AMZN_TRACE_ID": "",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
            **self.proxy.environment,
            **variables,
        }

    def _stop_workers(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        self.workers.clear()

    # -- cycles ---------------------------------------------------------------------------------------

    def run(self) -> Sample:
        for spec in self.reference.functions.values():  # compile the bytecode once, outside the sample
            subprocess.run(
                [sys.executable, "-c", f"import {spec.module}"], env=self.environment(spec),
                cwd=spec.code_dir, check=True, capture_output=True,
            )  # fmt: skip
        base = (datetime.now(UTC) - timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
        interval = timedelta(minutes=self.reference.schedule_minutes)
        cycles = []
        for index in range(2 * self.settings.cycles + 1):
            when = (base + index * interval).strftime("%Y-%m-%dT%H:%M:%SZ")
            cycles.append(self.cycle(index, cold=index % 2 == 1 or index == 0, scheduled_time=when))
        units = self.replay(cycles)
        # The deployment's first run meets every destination for the first time: not a month's run.
        warm_up, cycles = cycles[0], cycles[1:]
        secret_ids = {
            str(record.json().get("SecretId"))
            for record in self.proxy.log
            if record.operation.startswith("secretsmanager.")
        }
        return Sample(
            len(self.destination_ids),
            self.settings.channel,
            cycles,
            warm_up,
            self.proxy.log,
            units,
            secret_ids,
        )

    def cycle(self, index: int, *, cold: bool, scheduled_time: str) -> Cycle:
        if cold:
            self._stop_workers()
            for logical_id, spec in self.reference.functions.items():
                self.workers[logical_id] = Worker(spec, self.environment(spec))
        else:
            for worker in self.workers.values():
                worker.advance(self.reference.schedule_minutes * 60)
        cycle = Cycle(index, cold, scheduled_time)
        aws_from, stripe_from = len(self.proxy.log), len(self.stripe.requests)
        self.arrivals.take()
        started = time.monotonic()
        run = self.invoke("PingFunction", {"scheduled_time": scheduled_time})
        if run.error or not isinstance(run.answer, dict):
            raise RuntimeError(f"the scheduled run failed: {run.error}\n{run.log[-3000:]}")
        cycle.checked, cycle.ok = int(run.answer["checked"]), int(run.answer["ok"])
        cycle.invocations.append(run)
        give_up = time.monotonic() + 15
        while len(self.arrivals) < cycle.ok and time.monotonic() < give_up:
            time.sleep(0.02)
        for arrived, event, function in self.arrivals.take():
            offset = arrived - started
            receipt = self.invoke(function or "ReceiptFunction", event, offset=offset)
            receipt.via_api = function is not None
            cycle.invocations.append(receipt)
            if function is None:
                cycle.partner_events += 1
            else:
                answer = receipt.answer if isinstance(receipt.answer, dict) else {}
                cycle.api_requests.append(
                    ApiRequest(
                        method=event["httpMethod"],
                        resource=event["resource"],
                        path=event["path"],
                        offset_s=offset,
                        status=int(answer.get("statusCode", 502)),
                        response_bytes=len(str(answer.get("body") or "").encode()),
                    )
                )
        cycle.aws = (aws_from, len(self.proxy.log))
        cycle.stripe_requests = len(self.stripe.requests) - stripe_from
        return cycle

    def invoke(self, logical_id: str, event: dict[str, Any], offset: float = 0.0) -> Invocation:
        worker = self.workers[logical_id]
        cold = not worker.invoked
        worker.invoked = True
        request_id = str(uuid.uuid4())
        trace, span = trace_header()
        aws_from = len(self.proxy.log)
        reply = worker.invoke(event, request_id, trace)
        init_ms = worker.init_ms if cold else None
        return Invocation(
            function=logical_id,
            cold=cold,
            init_ms=init_ms or 0.0,
            duration_ms=float(reply["duration_ms"]),
            cpu_ms=float(reply["cpu_ms"]),
            log=(worker.init_log if cold else "") + str(reply["log"]),
            platform=platform_lines(worker.spec, request_id, trace, span, reply, init_ms),
            rss_kib=int(reply["rss_kib"]),
            error=reply["error"],
            answer=reply["answer"],
            offset_s=offset,
            aws=(aws_from, len(self.proxy.log)),
        )

    # -- DynamoDB units -------------------------------------------------------------------------------

    def replay(self, cycles: list[Cycle]) -> list[Units]:
        """Every recorded DynamoDB request replayed in order on an empty table: its units, and the table's
        size after each cycle."""
        log = self.proxy.log
        units = [Units()] * len(log)
        template = self.reference.template
        key_names = [
            k["AttributeName"] for k in template["Resources"][RESULTS_TABLE]["Properties"]["KeySchema"]
        ]
        with AwsStandIn(own_process=True) as fresh:  # a fresh moto: none of its state is shared
            fresh.create_results_table(self.table_name)
            replayer = Replayer(fresh.endpoint_url, key_names)
            done = 0
            for cycle in cycles:
                for index in range(done, cycle.aws[1]):
                    record = log[index]
                    if record.operation.startswith(PREFIX) and record.status is not None:
                        units[index] = replayer.replay(record.operation.removeprefix(PREFIX), record.body)
                done = cycle.aws[1]
                cycle.table = replayer.table_size(self.table_name)
                cycle.units = sum(units[cycle.aws[0] : cycle.aws[1]], Units())
        return units


# ------------------------------------------------------------------------------------------- a month


def operation_name(record: ProxyRecord) -> str:
    """``PutItem``, ``GetSecretValue``, ``Publish``: from ``X-Amz-Target``, or the query protocol's
    ``Action`` (SNS)."""
    if not record.operation.startswith(("POST ", "GET ", "PUT ", "DELETE ")):
        return record.operation.rpartition(".")[2]
    found = re.search(rb"(?:^|&)Action=([A-Za-z]+)", record.body)
    return found[1].decode() if found else record.operation


def access_log_line(format_: str, request: ApiRequest) -> str:
    """The API's access log line for one request: the template's format with representative values."""
    values = {
        "requestId": str(uuid.uuid4()),
        "extendedRequestId": "AbCdEfGhIjKlMnO=",
        "requestTime": datetime.now(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "httpMethod": request.method,
        "resourcePath": request.resource,
        "path": f"/v1{request.path}",
        "status": str(request.status),
        "responseLength": str(request.response_bytes),
        "protocol": "HTTP/1.1",
        "sourceIp": "54.187.174.169",
        "identity.sourceIp": "54.187.174.169",
        "identity.userAgent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "identity.caller": "-",
        "identity.userArn": "-",
        "integration.status": str(request.status),
        "integration.latency": "48",
        "responseLatency": "55",
        "error.responseType": "-",
        "error.messageString": '"-"',
        "xrayTraceId": f"1-{int(time.time()):08x}-{secrets.token_hex(12)}",
    }
    return re.sub(r"\$context\.([A-Za-z.]+)", lambda m: values.get(m[1], "-"), " ".join(format_.split()))


def invocation_quantities(invocation: Invocation, sample: Sample, reference: Reference) -> dict[str, Decimal]:
    """What one invocation uses: its request, compute, log and AWS requests (with their DynamoDB units)."""
    name = invocation.function
    spec = reference.functions[name]
    volume = log_events(invocation.log) + log_events(invocation.platform)
    records = range(*invocation.aws)
    operations = Counter(operation_name(sample.aws_log[n]) for n in records)
    units = sum((sample.units[n] for n in records), Units())
    found = {
        f"requests:{name}": Decimal(1),
        f"gb_seconds:{name}": Decimal(invocation.billed_ms) / 1000 * Decimal(spec.memory_mb) / 1024,
        f"log_events:{name}": Decimal(volume.events),
        f"log_bytes:{name}": Decimal(volume.bytes),
        f"cold_starts:{name}": Decimal(invocation.cold),
        "dynamodb_write_units": Decimal(units.write),
        "dynamodb_read_units": units.read,
        "secrets_api_calls": Decimal(operations["GetSecretValue"] + operations["BatchGetSecretValue"]),
        "sns_publishes": Decimal(operations["Publish"] + operations["PublishBatch"]),
        "aws_requests": Decimal(len(records)),
    }
    return found | {f"op:{op}": Decimal(n) for op, n in operations.items()}


def _add(total: dict[str, Decimal], more: dict[str, Decimal], times: Decimal = Decimal(1)) -> None:
    for key, value in more.items():
        total[key] = total.get(key, Decimal(0)) + value * times


@dataclass(frozen=True)
class ColdProfile:
    """Per function: what a cold invocation uses more than a warm one, and how long each keeps an
    environment busy (medians of the samples: the runs at 16 and 24 destinations share one profile, so
    that the noise of cold starts does not show in the cost of one destination more)."""

    extra: dict[str, dict[str, Decimal]]  # function -> quantities of a cold invocation less a warm one
    init_ms: dict[str, float]
    cold_s: dict[str, float]  # init and first invocation
    warm_s: dict[str, float]

    @classmethod
    def of(cls, samples: Sequence[Sample], reference: Reference) -> "ColdProfile":
        extra: dict[str, dict[str, Decimal]] = {}
        init_ms: dict[str, float] = {}
        cold_s: dict[str, float] = {}
        warm_s: dict[str, float] = {}
        for name in reference.functions:
            found = [(s, i) for s in samples for c in s.cycles for i in c.invocations if i.function == name]
            colds = [(s, i) for s, i in found if i.cold]
            warms = [(s, i) for s, i in found if not i.cold]
            cold_q = _mean([invocation_quantities(i, s, reference) for s, i in colds])
            warm_q = _mean([invocation_quantities(i, s, reference) for s, i in warms])
            extra[name] = {k: cold_q.get(k, Decimal(0)) - warm_q.get(k, Decimal(0)) for k in cold_q | warm_q}
            init_ms[name] = statistics.median(i.init_ms for _, i in colds)
            cold_s[name] = statistics.median((i.init_ms + i.duration_ms) / 1000 for _, i in colds)
            warm_s[name] = statistics.median(i.duration_ms / 1000 for _, i in warms)
        return cls(extra, init_ms, cold_s, warm_s)


def cycle_quantities(
    cycle: Cycle, sample: Sample, reference: Reference, profile: ColdProfile
) -> dict[str, Decimal]:
    """What one cycle uses, in billed units.

    The sample serves each function's invocations one after the other in one environment; Lambda starts
    another environment, cold, for an invocation that arrives while every environment is busy (a burst of
    receipts during the first one's cold start). ``usage.cold_starts`` replays the cycle's arrivals with the
    measured durations, and each cold start more than the sample made adds what a cold invocation uses more
    than a warm one (the init, its log lines, the secrets it reads)."""
    quantities: dict[str, Decimal] = {}
    for invocation in cycle.invocations:
        _add(quantities, invocation_quantities(invocation, sample, reference))
    for name in reference.functions:
        mine = [i for i in cycle.invocations if i.function == name]
        arrivals = [
            Arrival(
                i.offset_s, profile.warm_s[name] if i.cold else i.duration_ms / 1000, profile.cold_s[name]
            )
            for i in mine
        ]
        environments = cold_starts(arrivals)[1]
        modelled = cold_starts(arrivals, 0 if cycle.cold else environments)[0]
        measured = sum(i.cold for i in mine)
        _add(quantities, profile.extra[name], Decimal(modelled - measured))
    api_bytes = sum(len(access_log_line(reference.access_log_format, r).encode()) for r in cycle.api_requests)
    traces = Decimal(0)
    for name, spec in reference.functions.items():
        # One trace per request at its entry point, sampled there: the API (TracingEnabled) or Lambda.
        mine = [i for i in cycle.invocations if i.function == name]
        if spec.tracing or (reference.api_tracing and any(i.via_api for i in mine)):
            traces += sampled_traces(i.offset_s for i in mine)
    return quantities | {
        "log_events:api": Decimal(len(cycle.api_requests)),
        "log_bytes:api": Decimal(api_bytes),
        "scheduler_invocations": Decimal(1),
        "partner_events": Decimal(cycle.partner_events),
        "api_requests": Decimal(len(cycle.api_requests)),
        "xray_traces": traces,
        "stripe_requests": Decimal(cycle.stripe_requests),
    }


def cycle_metrics(cycle: Cycle, reference: Reference) -> set[Metric]:
    metrics: set[Metric] = set()
    for invocation in cycle.invocations:
        metrics |= distinct_metrics(invocation.log)
    return metrics


def api_metrics(cycle: Cycle, reference: Reference) -> set[Metric]:
    """API Gateway's detailed metrics (MetricsEnabled): five per resource and method that had requests."""
    if not reference.api_detailed_metrics:
        return set()
    return {
        Metric("AWS/ApiGateway", name,
               (("ApiName", STACK), ("Method", r.method), ("Resource", r.resource), ("Stage", "v1")))
        for r in cycle.api_requests
        for name in API_DETAILED_METRICS
    }  # fmt: skip


@dataclass
class Month:
    usage: MonthlyUsage
    cycles_per_month: Decimal
    per_cycle: dict[str, Decimal]  # mixed cold / warm, as the month is
    per_cycle_cold: dict[str, Decimal]
    per_cycle_warm: dict[str, Decimal]
    metrics: dict[str, Decimal]  # metric -> its share of the month (prorated by the hour)
    api_metrics: dict[str, Decimal]
    stored_bytes: Decimal
    logs_ratio: Decimal
    init_ms: dict[str, float]


def _mean(rows: list[dict[str, Decimal]]) -> dict[str, Decimal]:
    keys = {k for row in rows for k in row}
    return {k: sum((row.get(k, Decimal(0)) for row in rows), Decimal(0)) / len(rows) for k in sorted(keys)}


def _presence(
    cold: list[set[Metric]], warm: list[set[Metric]], share: Decimal, per_hour: Decimal
) -> dict[str, Decimal]:
    """Each metric's billed share of the month: the chance that an hour has at least one data point, from
    how often the cold and the warm cycles emitted it (metrics are prorated by the hour)."""
    found: dict[str, Decimal] = {}
    for metric in set().union(*cold, *warm):
        in_cold = Decimal(sum(metric in s for s in cold)) / len(cold)
        in_warm = Decimal(sum(metric in s for s in warm)) / len(warm)
        per_cycle = share * in_cold + (1 - share) * in_warm
        found[str(metric)] = hourly_share(per_cycle, int(per_hour))
    return found


def month(sample: Sample, reference: Reference, settings: Settings, profile: ColdProfile) -> Month:
    cycles_per_month = Decimal(settings.days * 24 * 60) / reference.schedule_minutes
    per_hour = Decimal(60) / reference.schedule_minutes
    share = settings.cold_share
    cold = [c for c in sample.cycles if c.cold]
    warm = [c for c in sample.cycles if not c.cold]
    cold_q = _mean([cycle_quantities(c, sample, reference, profile) for c in cold])
    warm_q = _mean([cycle_quantities(c, sample, reference, profile) for c in warm])
    per_cycle = {
        k: share * cold_q.get(k, Decimal(0)) + (1 - share) * warm_q.get(k, Decimal(0))
        for k in sorted(set(cold_q) | set(warm_q))
    }

    def monthly(key: str) -> Decimal:
        return per_cycle.get(key, Decimal(0)) * cycles_per_month

    def by_prefix(prefix: str) -> Decimal:
        return sum((monthly(k) for k in per_cycle if k.startswith(prefix)), Decimal(0))

    metrics = _presence(
        [cycle_metrics(c, reference) for c in cold],
        [cycle_metrics(c, reference) for c in warm],
        share,
        per_hour,
    )
    detailed = _presence(
        [api_metrics(c, reference) for c in cold], [api_metrics(c, reference) for c in warm], share, per_hour
    )
    # DynamoDB storage: what a cycle adds stays for the results' retention (TTL), the rest stays.
    sizes = [Decimal(c.table.bytes) for c in sample.cycles]
    growth = (sizes[-1] - sizes[0]) / (len(sizes) - 1)
    cycles_kept = Decimal(reference.result_retention_days * 24 * 60) / reference.schedule_minutes
    stored_bytes = sizes[0] - growth + growth * cycles_kept
    # CloudWatch Logs: billed bytes (message + 26 bytes an event); stored compressed for the retention.
    ingested = by_prefix("log_bytes:") + by_prefix("log_events:") * LOG_EVENT_OVERHEAD_BYTES
    text = "".join(
        [i.log + i.platform for c in sample.cycles for i in c.invocations]
        + [
            access_log_line(reference.access_log_format, r) + "\n"
            for c in sample.cycles
            for r in c.api_requests
        ]
    ).encode()
    ratio = Decimal(len(gzip.compress(text))) / Decimal(max(len(text), 1))
    # Logs kept for ever (no retention) grow by a month's every month: the first month's is shown.
    retention = Decimal(reference.log_retention_days or settings.days)
    usage = MonthlyUsage(
        architecture=next(iter(reference.functions.values())).architecture,
        lambda_requests=by_prefix("requests:"),
        lambda_gb_seconds=by_prefix("gb_seconds:"),
        scheduler_invocations=monthly("scheduler_invocations"),
        eventbridge_partner_events=monthly("partner_events"),
        dynamodb_write_units=monthly("dynamodb_write_units"),
        dynamodb_read_units=monthly("dynamodb_read_units"),
        dynamodb_stored_gb=stored_bytes / GIB,
        dynamodb_pitr_gb=stored_bytes / GIB if reference.pitr else Decimal(0),
        api_requests=monthly("api_requests"),
        custom_metrics=sum(metrics.values(), Decimal(0)),
        api_detailed_metrics=sum(detailed.values(), Decimal(0)),
        alarms=Decimal(reference.alarms),
        dashboards=Decimal(reference.dashboards),
        logs_ingested_gb=ingested / GIB,
        logs_stored_gb=ingested / GIB * retention / settings.days * ratio,
        secrets=Decimal(len(sample.secret_ids)),
        secrets_api_calls=monthly("secrets_api_calls"),
        sns_publishes=monthly("sns_publishes"),
        sns_email_deliveries=Decimal(0),
        xray_traces=monthly("xray_traces"),
        ssm_parameters=Decimal(reference.ssm_parameters),
    )
    return Month(
        usage=usage,
        cycles_per_month=cycles_per_month,
        per_cycle=per_cycle,
        per_cycle_cold=cold_q,
        per_cycle_warm=warm_q,
        metrics=metrics,
        api_metrics=detailed,
        stored_bytes=stored_bytes,
        logs_ratio=ratio,
        init_ms=profile.init_ms,
    )


# ------------------------------------------------------------------------------------------- reporting


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


def metric_groups(metrics: dict[str, Decimal]) -> list[str]:
    """``7 names x 16 values of {destination_id,service}``: the metrics grouped by their dimension names."""
    groups: dict[tuple[str, ...], tuple[set[str], set[str]]] = {}
    for text in metrics:
        namespace_name, _, dims = text.partition("{")
        pairs = [p.split("=", 1) for p in dims.rstrip("}").split(",") if p]
        key = tuple(name for name, _ in pairs)
        names, values = groups.setdefault(key, (set(), set()))
        names.add(namespace_name.rpartition("/")[2])
        values.add(",".join(value for _, value in pairs))
    return [
        f"{len(names) * len(values)} with {{{','.join(key)}}} ({len(names)} names x {len(values)} values:"
        f" {', '.join(sorted(names))})"
        for key, (names, values) in sorted(groups.items(), key=lambda g: -len(g[1][0]) * len(g[1][1]))
    ]


def report(
    reference: Reference, settings: Settings, profile: ColdProfile, main: tuple[Sample, Month],
    main_bill: Bill, extra: tuple[Sample, Month, Bill] | None, seconds: float,
) -> tuple[str, dict[str, Any]]:  # fmt: skip
    sample, measured = main
    usage, per_cycle = measured.usage, measured.per_cycle
    lines = [
        f"Reference deployment: template.yaml defaults, {sample.destinations} destinations, "
        f"rate({reference.schedule_minutes} minutes) = {measured.cycles_per_month:,.0f} runs in a "
        f"{settings.days}-day month, Stripe answering in {settings.latency_ms:.0f} ms, a receipt for every "
        f"ping ({'forwarded webhooks through the API' if sample.channel == 'webhook' else 'EventBridge'}).",
        f"Sample: {len(sample.cycles)} cycles run for real ({settings.cycles} from cold environments, "
        f"{settings.cycles} warm) after a first one (not counted); {settings.cold_share:.0%} of the month's"
        " cycles taken as cold starts.",
        "",
        table(main_bill),
        "",
    ]
    functions = ", ".join(
        f"{name} {per_cycle.get(f'requests:{name}', 0):.0f} invocations "
        f"({per_cycle.get(f'cold_starts:{name}', 0):.1f} cold, init {measured.init_ms.get(name, 0):.0f} ms), "
        f"{per_cycle.get(f'gb_seconds:{name}', 0) * 1024 / spec.memory_mb:.2f} s billed"
        for name, spec in reference.functions.items()
    )
    operations = ", ".join(
        f"{k.removeprefix('op:')} {v:.1f}" for k, v in sorted(per_cycle.items()) if k.startswith("op:") and v
    )
    lines += [
        f"A cycle: {functions}.",
        f"  AWS requests {per_cycle['aws_requests']:.1f} ({operations}); Stripe requests "
        f"{per_cycle['stripe_requests']:.0f}; DynamoDB {per_cycle['dynamodb_write_units']:.1f} WRU, "
        f"{per_cycle['dynamodb_read_units']:.1f} RRU.",
        "  logs: "
        + ", ".join(
            f"{name} {per_cycle.get(f'log_events:{name}', 0):.0f} events, "
            f"{per_cycle.get(f'log_bytes:{name}', 0) / 1024:.1f} KiB"
            for name in [*reference.functions, "api"]
        )
        + f"; stored compressed to {measured.logs_ratio:.0%} (gzip of the lines).",
        f"Custom metrics: {usage.custom_metrics:.1f} metric-months: "
        + "; ".join(metric_groups(measured.metrics)),
    ]
    if usage.api_detailed_metrics:
        lines.append(
            f"  and API Gateway's detailed metrics (MetricsEnabled): {usage.api_detailed_metrics:.1f}: "
            + "; ".join(metric_groups(measured.api_metrics))
        )
    services = sorted(main_bill.by_service().items(), key=lambda item: -item[1])
    top_lines = sorted(main_bill.lines, key=lambda line: -line.cost)[:3]
    lines.append(
        "What dominates: "
        + ", ".join(
            f"{line.service} {line.item} {dollars(line.cost)} ({line.cost / main_bill.total:.0%})"
            for line in top_lines
        )
        + "; by service: "
        + ", ".join(f"{name} {dollars(cost)}" for name, cost in services)
        + "."
    )
    data: dict[str, Any] = {
        "settings": {k: str(v) for k, v in settings.__dict__.items()},
        "reference": {
            "schedule_minutes": reference.schedule_minutes,
            "functions": {
                name: {
                    "memory_mb": spec.memory_mb,
                    "architecture": spec.architecture,
                    "timeout_s": spec.timeout_s,
                }
                for name, spec in reference.functions.items()
            },
            "alarms": reference.alarms,
            "dashboards": reference.dashboards,
            "log_retention_days": reference.log_retention_days,
            "result_retention_days": reference.result_retention_days,
            "parameters": reference.parameters,
        },
        "month": _month_dict(measured),
        "bill": main_bill.to_dict(),
        "warm_up": _cycle_dict(sample.warm_up),
        "cycles": [_cycle_dict(c) for c in sample.cycles],
    }
    if extra is not None:
        extra_sample, extra_month, extra_bill = extra
        step = Decimal(extra_sample.destinations - sample.destinations)
        difference = (extra_bill.total - main_bill.total) / step
        by_service = {
            name: (cost - main_bill.by_service().get(name, Decimal(0))) / step
            for name, cost in extra_bill.by_service().items()
        }
        measured_as = (
            f"{extra_sample.destinations} destinations minus {sample.destinations}"
            if step == 1
            else f"({extra_sample.destinations} destinations minus {sample.destinations}) / {step}"
        )
        lines.append(
            f"Cost per extra destination: {dollars(difference, 4)} a month (measured: {measured_as}; "
            + ", ".join(
                f"{name} {dollars(cost, 4)}" for name, cost in by_service.items() if abs(cost) >= 0.00005
            )
            + ")."
        )
        data["extra_destination"] = {
            "destinations": extra_sample.destinations,
            "total": str(extra_bill.total),
            "difference": str(difference),
            "by_service": {name: str(cost) for name, cost in by_service.items()},
            "month": _month_dict(extra_month),
            "bill": extra_bill.to_dict(),
        }
    warm_share = Settings(**{**settings.__dict__, "cold_share": Decimal(0)})
    warm_total = bill(
        month(sample, reference, warm_share, profile).usage, PriceList.load(settings.prices)
    ).total
    lines.append(f"With every cycle in a warm environment instead: {total_line(warm_total)}.")
    data["total_if_all_warm"] = str(warm_total)
    data["total"] = str(main_bill.total)
    data["duration_s"] = round(seconds, 1)
    return "\n".join(lines), data


def _month_dict(measured: Month) -> dict[str, Any]:
    return {
        "usage": measured.usage.to_dict(),
        "cycles_per_month": str(measured.cycles_per_month),
        "per_cycle": {k: str(v) for k, v in measured.per_cycle.items()},
        "per_cycle_cold": {k: str(v) for k, v in measured.per_cycle_cold.items()},
        "per_cycle_warm": {k: str(v) for k, v in measured.per_cycle_warm.items()},
        "metrics": {k: str(v) for k, v in sorted(measured.metrics.items())},
        "api_metrics": {k: str(v) for k, v in sorted(measured.api_metrics.items())},
        "dynamodb_stored_bytes": str(measured.stored_bytes),
        "logs_compression_ratio": str(measured.logs_ratio),
        "init_ms": measured.init_ms,
    }


def _cycle_dict(cycle: Cycle) -> dict[str, Any]:
    return {
        "index": cycle.index,
        "cold": cycle.cold,
        "scheduled_time": cycle.scheduled_time,
        "checked": cycle.checked,
        "ok": cycle.ok,
        "aws_requests": cycle.aws[1] - cycle.aws[0],
        "stripe_requests": cycle.stripe_requests,
        "api_requests": len(cycle.api_requests),
        "partner_events": cycle.partner_events,
        "dynamodb": {"write_units": cycle.units.write, "read_units": str(cycle.units.read)},
        "table_after": {"items": cycle.table.items, "bytes": cycle.table.bytes},
        "invocations": [
            {
                "function": i.function,
                "cold": i.cold,
                "init_ms": round(i.init_ms, 1),
                "duration_ms": round(i.duration_ms, 1),
                "cpu_ms": round(i.cpu_ms, 1),
                "billed_ms": i.billed_ms,
                "offset_s": round(i.offset_s, 3),
                "log_bytes": len(i.log.encode()),
                "platform_bytes": len(i.platform.encode()),
                "aws_requests": i.aws[1] - i.aws[0],
            }
            for i in cycle.invocations
        ],
    }


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
    parser.add_argument(
        "--prices", type=Path, default=Path(__file__).resolve().parent / "prices-us-east-1.json"
    )
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
