"""Helpers the tests share (fixtures are in the conftest.py files): the committed events and API Gateway
events made from them, the fake Lambda context, and loading a module from its file.

Deliberately light (the standard library and tools/ only): the load tests' worker processes import it.
"""

import copy
import importlib.util
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from tools.lambda_context import FakeLambdaContext

__all__ = [
    "EVENTS",
    "ROOT",
    "FakeLambdaContext",
    "api_event",
    "history_event",
    "load_event",
    "load_module_by_path",
    "ping_event",
    "receipt_app",
    "run_time",
    "run_time_ms",
    "schedule_event",
]

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"


# A scheduled run is accepted only at a time EventBridge Scheduler could send it (within the last day): the
# tests' runs start 12 hours before the session, on the hour, and go on in 10-minute steps.
RUN_TIME = (datetime.now(UTC) - timedelta(hours=12)).replace(minute=0, second=0, microsecond=0)


def run_time(minutes: int = 0) -> datetime:
    return RUN_TIME + timedelta(minutes=minutes)


def run_time_ms(minutes: int = 0) -> str:
    """``run_time`` as records store it (``2026-11-27T04:00:00.000Z``)."""
    return f"{run_time(minutes):%Y-%m-%dT%H:%M:%S}.000Z"


def schedule_event(minutes: int = 0) -> dict[str, Any]:
    """events/schedule.json with a time of this session."""
    return load_event("schedule.json", scheduled_time=f"{run_time(minutes):%Y-%m-%dT%H:%M:%S}Z")


def load_module_by_path(name: str, path: Path) -> ModuleType:
    """The module in ``path``, imported as ``name``: a function's handler (each function's file is app.py,
    so only one of them can be ``import app``) or a docs snippet. Loaded once per name and then taken from
    ``sys.modules``."""
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


def receipt_app() -> ModuleType:
    """ReceiptFunction's handler module (PingFunction's is ``import app``)."""
    return load_module_by_path("receipt_app", ROOT / "functions" / "receipt" / "app.py")


def load_event(name: str, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    event.update(overrides)
    return event


# API Gateway REST proxy events derived from the committed events/ files (IAM-authorised context kept).


def api_event(
    method: str,
    path: str,
    *,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    event = copy.deepcopy(load_event("api_ping.json"))
    event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    event["path"] = path
    event["requestContext"]["path"] = f"/v1{path}"
    event["headers"] = {k: v for k, v in event["headers"].items() if k != "Idempotency-Key"} | (headers or {})
    event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
    parts = path.strip("/").split("/")
    event["pathParameters"] = {"destination_id": parts[1]} if len(parts) > 2 else None
    return event


def ping_event(destination_id: str, idempotency_key: str | None = None) -> dict[str, Any]:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    return api_event("POST", f"/destinations/{destination_id}/ping", headers=headers)


def history_event(destination_id: str, **query: str) -> dict[str, Any]:
    return api_event("GET", f"/destinations/{destination_id}/pings", query=query or None)
