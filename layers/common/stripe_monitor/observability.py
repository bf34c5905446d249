"""The one place that creates the Powertools Logger, Tracer and Metrics (names come from the environment)."""

import json
import logging
import os
from collections.abc import Generator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

from stripe_monitor.redaction import scrub


def _scrubbed_json(log: Any) -> str:
    # The last net for secrets: every log line, whatever it carries, is scrubbed as a whole.
    return scrub(json.dumps(log, default=str, separators=(",", ":")))


class _NoSegment(BaseSegment):
    def close(self, end_time: int | None = None) -> None: ...
    def add_subsegment(self, subsegment: Any) -> None: ...
    def remove_subsegment(self, subsegment: Any) -> None: ...
    def put_annotation(self, key: str, value: Any) -> None: ...
    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...
    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None: ...


class _NoTracing(BaseProvider):
    """Tracing off: Powertools' Tracer with this provider never imports or patches the X-Ray SDK, which
    its own ``disabled`` mode still does (17 ms of every cold start, docs/performance.md)."""

    @contextmanager
    def in_subsegment(self, name: Any = None, **kwargs: Any) -> Generator[BaseSegment]:
        yield _NoSegment()

    @asynccontextmanager
    async def in_subsegment_async(self, name: Any = None, **kwargs: Any) -> Any:
        yield _NoSegment()

    def put_annotation(self, key: str, value: Any) -> None: ...
    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...
    def patch(self, modules: Sequence[str]) -> None: ...
    def patch_all(self) -> None: ...


def _tracer() -> Tracer:
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() in ("1", "true"):
        return Tracer(provider=_NoTracing(), disabled=True, auto_patch=False)
    # Patch only what the monitor calls, boto3 (botocore) and urllib3 (httplib): all would cost cold start.
    return Tracer(patch_modules=("botocore", "httplib"))


logger = Logger(json_serializer=_scrubbed_json)
tracer = _tracer()
metrics = Metrics()

# botocore's DEBUG log prints response bodies, GetSecretValue's included (the Stripe key). Lambda turns the
# root logger to DEBUG when the function's log level is DEBUG, so botocore is held at INFO whatever it is.
logging.getLogger("botocore").setLevel(logging.INFO)
