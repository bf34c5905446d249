"""``make cost``: what a cycle uses, in billed units: its invocations' requests, compute, logs and AWS
requests, the cold starts a burst of receipts adds, its traces, and the metrics it emits."""

import re
import secrets
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from bench.cost_reference import STACK, Reference
from bench.cost_sample import ApiRequest, Cycle, Invocation, Sample
from bench.dynamodb_replay import Units
from bench.usage import Arrival, Metric, cold_starts, distinct_metrics, log_events, sampled_traces
from tools.standins.aws_faults import ProxyRecord

# API Gateway's detailed metrics per resource and method (MetricsEnabled); CacheHitCount and CacheMissCount
# only with a cache, which the API has not.
API_DETAILED_METRICS = ("4XXError", "5XXError", "Count", "IntegrationLatency", "Latency")


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


def mean_quantities(rows: list[dict[str, Decimal]]) -> dict[str, Decimal]:
    keys = {k for row in rows for k in row}
    return {k: sum((row.get(k, Decimal(0)) for row in rows), Decimal(0)) / len(rows) for k in sorted(keys)}


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
            cold_q = mean_quantities([invocation_quantities(i, s, reference) for s, i in colds])
            warm_q = mean_quantities([invocation_quantities(i, s, reference) for s, i in warms])
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
