"""``make cost``: the reference deployment on the stand-ins, each function in execution environments of its
own (``bench/cost_worker.py``), run for a sample of cycles; its DynamoDB requests replayed for their units."""

import json
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.cost_reference import ROOT, STACK, FunctionSpec, Reference, Resolver, Settings, UnresolvedError
from bench.cost_sample import ApiRequest, Cycle, Invocation, Sample
from bench.cost_worker import Worker, platform_lines, trace_header
from bench.dynamodb_replay import PREFIX, Replayer, Units
from bench.xray_sink import UdpSink
from tools.standins.api_gateway import LocalApiGateway, template_routes
from tools.standins.aws import FAKE_CREDENTIALS, REGION, AwsStandIn
from tools.standins.aws_faults import AwsFaultProxy
from tools.standins.stripe import StripeStandIn
from tools.standins.template import RESULTS_TABLE

STRIPE_KEY = "sk_test_CostModelKeyNotARealKey0000000000001"


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
                    f"{spec.logical_id}'s variable {name} = {value!r}:"
                    " bench/cost_simulation.py needs a value for it"
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
