"""``make cost``: what a sample records: each cycle's invocations of the functions, its requests to the API,
and the AWS requests of the whole sample (with their DynamoDB units)."""

import math
from dataclasses import dataclass, field
from typing import Any

from bench.cost_reference import Channel
from bench.dynamodb_replay import TableSize, Units
from tools.standins.aws_faults import ProxyRecord


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
