"""API Gateway REST proxy events derived from the committed events/ files (IAM-authorised context kept)."""

import copy
from typing import Any

from tests.conftest import load_event


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
