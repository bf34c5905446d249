"""What AWS meters, counted from what the handlers really did: pure functions, no I/O.

- custom metrics from Embedded Metric Format documents (``distinct_metrics``);
- DynamoDB item sizes and request units by DynamoDB's published rules (``item_size``, ``read_units``,
  ``write_units``);
- CloudWatch Logs events and bytes of captured output (``log_events``);
- X-Ray traces recorded under the default sampling rule (``sampled_traces``).

``bench/cost.py`` feeds them; ``tests/test_cost_model.py`` checks them on fixed inputs.
"""

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# ------------------------------------------------------------------------------------ custom metrics


@dataclass(frozen=True, order=True)
class Metric:
    """One CloudWatch metric as it is billed: namespace, name and one set of dimension values."""

    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]  # sorted (name, value) pairs

    def __str__(self) -> str:
        dims = ",".join(f"{k}={v}" for k, v in self.dimensions)
        return f"{self.namespace}/{self.name}{{{dims}}}"


def emf_documents(text: str) -> list[dict[str, Any]]:
    """Every EMF document in captured output: a JSON object line with ``_aws.CloudWatchMetrics``."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        try:
            document = json.loads(line)
        except ValueError:
            continue
        aws = document.get("_aws") if isinstance(document, dict) else None
        if isinstance(aws, dict) and "CloudWatchMetrics" in aws:
            found.append(document)
    return found


def metrics_of(document: Mapping[str, Any]) -> set[Metric]:
    """The metrics one EMF document creates: every metric of every directive, once per dimension set
    (EMF's rule: each dimension set is a metric of its own). A metric whose value or a dimension whose value
    is missing from the document is rejected by CloudWatch, and not counted."""
    found: set[Metric] = set()
    for directive in document["_aws"]["CloudWatchMetrics"]:
        namespace = str(directive["Namespace"])
        dimension_sets = directive.get("Dimensions") or [[]]
        for metric in directive.get("Metrics", []):
            name = str(metric["Name"])
            if name not in document:
                continue
            for dimension_set in dimension_sets:
                if any(d not in document for d in dimension_set):
                    continue
                dimensions = tuple(sorted((str(d), str(document[d])) for d in dimension_set))
                found.add(Metric(namespace, name, dimensions))
    return found


def distinct_metrics(text: str) -> set[Metric]:
    """The distinct custom metrics that captured output creates."""
    found: set[Metric] = set()
    for document in emf_documents(text):
        found |= metrics_of(document)
    return found


# -------------------------------------------------------------------------------------------- DynamoDB

# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html
WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096
ITEM_STORAGE_OVERHEAD_BYTES = 100  # per item, for storage billing only (indexing)


def _number_size(text: str) -> int:
    """A number: 1 byte per two significant digits, plus 1 byte (leading and trailing zeros trimmed)."""
    digits = text.lstrip("+-").replace(".", "").lower().split("e")[0].strip("0")
    return math.ceil(max(len(digits), 1) / 2) + 1


def value_size(value: Mapping[str, Any]) -> int:
    """The size of one attribute value in DynamoDB's wire format (``{"S": ...}``, ``{"M": {...}}`` ...)."""
    [(kind, content)] = value.items()
    if kind == "S":
        return len(str(content).encode())
    if kind == "N":
        return _number_size(str(content))
    if kind == "B":
        return len(content) * 3 // 4 - str(content).count("=", -2)  # base64 in JSON
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(v).encode()) for v in content)
    if kind == "NS":
        return sum(_number_size(str(v)) for v in content)
    if kind == "BS":
        return sum(len(v) * 3 // 4 - str(v).count("=", -2) for v in content)
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in content)
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in content.items())
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def item_size(item: Mapping[str, Any] | None) -> int:
    """An item's size: the UTF-8 length of every attribute name plus the size of its value."""
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def units(size: int, unit_bytes: int) -> int:
    """Units of ``unit_bytes`` a request of ``size`` bytes consumes: rounded up, at least one."""
    return max(1, math.ceil(size / unit_bytes))


def write_units(before: int, after: int, *, transactional: bool = False) -> int:
    """Write request units of one item write: the larger of the item before and after, per started KB (a
    delete: the item before; a failed conditional write: the item as it stands, at least 1 unit).
    Transactions cost twice."""
    return units(max(before, after), WRITE_UNIT_BYTES) * (2 if transactional else 1)


def read_units(size: int, *, consistent: bool, transactional: bool = False) -> Decimal:
    """Read request units of ``size`` bytes read in one go: one unit per started 4 KB strongly consistent,
    half that eventually consistent, twice that in a transaction (an item not found costs the minimum)."""
    factor = Decimal(2) if transactional else Decimal(1) if consistent else Decimal("0.5")
    return units(size, READ_UNIT_BYTES) * factor


# ----------------------------------------------------------------------------------- CloudWatch Logs

# PutLogEvents counts each event as its UTF-8 message plus 26 bytes; taken here as its billed size.
LOG_EVENT_OVERHEAD_BYTES = 26


@dataclass(frozen=True)
class LogVolume:
    events: int
    bytes: int  # UTF-8 bytes of the messages, without the per-event overhead

    @property
    def billed_bytes(self) -> int:
        return self.bytes + self.events * LOG_EVENT_OVERHEAD_BYTES

    def __add__(self, other: "LogVolume") -> "LogVolume":
        return LogVolume(self.events + other.events, self.bytes + other.bytes)


def log_events(text: str) -> LogVolume:
    """The log events of captured stdout/stderr: one event per non-empty line (how Lambda splits them)."""
    lines = [line for line in text.splitlines() if line.strip()]
    return LogVolume(len(lines), sum(len(line.encode()) for line in lines))


# ----------------------------------------------------------------------------------------------- X-Ray

RESERVOIR_PER_SECOND = 1  # X-Ray's default sampling rule: the first request each second ...
FIXED_RATE = Decimal("0.05")  # ... and 5 % of the others


def sampled_traces(offsets_seconds: Iterable[float]) -> Decimal:
    """Traces the default sampling rule records (expected value) for requests at these offsets (seconds,
    from any origin): per second, the reservoir's requests and 5 % of the rest."""
    per_second: dict[int, int] = {}
    for offset in offsets_seconds:
        second = math.floor(offset)
        per_second[second] = per_second.get(second, 0) + 1
    total = Decimal(0)
    for count in per_second.values():
        kept = min(count, RESERVOIR_PER_SECOND)
        total += kept + FIXED_RATE * (count - kept)
    return total


# ------------------------------------------------------------------------------------------ cold starts


@dataclass(frozen=True)
class Arrival:
    offset_s: float  # when the invocation arrives
    warm_s: float  # how long it keeps an environment busy that is warm
    cold_s: float  # and one that must start first (init and a first invocation)


def cold_starts(arrivals: Iterable[Arrival], warm_environments: int = 0) -> tuple[int, int]:
    """How Lambda serves invocations: each goes to an idle environment, or, if every one is busy (or there
    is none), to a new one, which starts cold. Returns the cold starts and the environments there are at
    the end; ``warm_environments`` are idle at the start."""
    free_at = [-math.inf] * warm_environments
    cold = 0
    for arrival in sorted(arrivals, key=lambda a: a.offset_s):
        idle = [n for n, at in enumerate(free_at) if at <= arrival.offset_s]
        if idle:
            free_at[idle[0]] = arrival.offset_s + arrival.warm_s
        else:
            free_at.append(arrival.offset_s + arrival.cold_s)
            cold += 1
    return cold, len(free_at)


def hourly_share(per_cycle: Decimal, cycles_per_hour: int) -> Decimal:
    """A metric's billed share of an hour (CloudWatch prorates metrics by the hour): the chance that at
    least one of the hour's cycles emits it, when each does with chance ``per_cycle``."""
    return 1 - (1 - per_cycle) ** cycles_per_hour
