"""The Stripe stand-in is only useful if it is honest: these tests drive it with the official stripe SDK
(an independent client) and with raw urllib3, over real sockets."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import stripe
import urllib3
from stripe.events import V2CoreEventDestinationPingEvent
from stripe.v2 import ListObject
from stripe.v2.core import EventDestination

from tools.standins.stripe import Fault, FaultKind, StripeStandIn
from tools.standins.stripe.server import _Handler

KEY = "sk_test_standin_4eC39HqLyjWDarjtT1zdp7dc"
AUTH = {"Authorization": f"Bearer {KEY}"}
RFC3339_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
EVENT_FIELDS = {"id", "object", "context", "created", "data", "livemode", "reason", "related_object", "type"}
DESTINATION_FIELDS = {
    "id", "object", "created", "updated", "description", "enabled_events", "event_payload", "events_from",
    "livemode", "metadata", "name", "snapshot_api_version", "status", "status_details", "type",
    "amazon_eventbridge", "azure_event_grid", "webhook_endpoint",
}  # fmt: skip
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def standin() -> Iterator[StripeStandIn]:
    destinations: list[dict[str, Any]] = [
        {"id": "ed_test_hook", "url": "https://example.com/hook"},
        {"id": "ed_test_other"},
        {
            "id": "ed_test_bridge",
            "type": "amazon_eventbridge",
            "status": "disabled",
            "disabled_reason": "no_aws_event_source_exists",
            "event_source_status": "deleted",
        },
    ]
    with StripeStandIn(api_key=KEY, destinations=destinations) as server:
        yield server
    assert server.errors == []


@pytest.fixture
def client(standin: StripeStandIn) -> stripe.StripeClient:
    return stripe.StripeClient(KEY, base_addresses={"api": standin.url})


@pytest.fixture
def http() -> Iterator[urllib3.PoolManager]:
    with urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2, read=5)) as pool:
        yield pool


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK sleeps at least 0.5 s between retries; its retry decisions are what is under test.
    monkeypatch.setattr(stripe._http_client.HTTPClient, "_sleep_time_seconds", lambda self, n: 0.0)


def ping(client: stripe.StripeClient, ed: str, key: str | None = None) -> V2CoreEventDestinationPingEvent:
    event = client.v2.core.event_destinations.ping(ed, options={"idempotency_key": key} if key else None)
    assert isinstance(event, V2CoreEventDestinationPingEvent)
    return event


def raw_body(obj: stripe.StripeObject) -> dict[str, Any]:
    assert obj.last_response is not None
    body: dict[str, Any] = json.loads(obj.last_response.body)
    return body


def error_code(error: stripe.StripeError) -> str:
    assert isinstance(error.json_body, dict)
    return str(error.json_body["error"]["code"])


def raw_ping(
    http: urllib3.PoolManager, standin: StripeStandIn, ed: str, **kw: Any
) -> urllib3.BaseHTTPResponse:
    url = f"{standin.url}/v2/core/event_destinations/{ed}/ping"
    return http.request("POST", url, body=kw.pop("body", b"{}"), headers=AUTH, **kw)


def raw_get(http: urllib3.PoolManager, standin: StripeStandIn, path: str) -> urllib3.BaseHTTPResponse:
    return http.request("GET", standin.url + path, headers=AUTH)


# -- honest answers ---------------------------------------------------------------------------------


def test_ping_parses_into_a_typed_ping_event(standin: StripeStandIn, client: stripe.StripeClient) -> None:
    event = ping(client, "ed_test_hook", key="k-1")

    assert re.fullmatch(r"evt_test_[A-Za-z0-9]+", event.id)
    assert RFC3339_MS.fullmatch(event.created)
    assert (event.object, event.type, event.livemode, event.context) == (
        "v2.core.event",
        "v2.core.event_destination.ping",
        False,
        None,
    )
    assert event.related_object.id == "ed_test_hook"
    assert event.related_object.type == "v2.core.event_destination"
    assert event.related_object.url == "/v2/core/event_destinations/ed_test_hook"
    body = raw_body(event)
    assert set(body) == EVENT_FIELDS
    assert body["data"] is None
    assert event.last_response is not None
    assert event.last_response.headers["Content-Type"] == "application/json"
    request_id = event.last_response.request_id
    assert (request_id or "").startswith("req_")
    assert event.reason is not None
    assert event.reason.type == "request"
    assert event.reason.request is not None
    assert (event.reason.request.id, event.reason.request.idempotency_key) == (request_id, "k-1")
    # Stored, so GET /v2/core/events/{id} finds it.
    assert client.v2.core.events.retrieve(event.id).id == event.id
    assert standin.event_count("ed_test_hook") == 1
    assert standin.ping_count("ed_test_hook") == 1
    (record,) = [r for r in standin.requests if r.route == "ping"]
    assert (record.body, record.content_type, record.status, record.idempotency_key, record.authorized) == (
        b"{}",
        "application/json",
        200,
        "k-1",
        True,
    )
    assert record.stripe_version
    assert (record.user_agent or "").startswith("Stripe/v2")
    assert record.ended is not None
    assert record.ended >= record.started


def test_ping_accepts_an_empty_body_without_idempotency_key(
    standin: StripeStandIn, http: urllib3.PoolManager
) -> None:
    response = raw_ping(http, standin, "ed_test_hook", body=b"")
    assert response.status == 200
    assert response.json()["reason"] is None  # the spec's reason.request requires a key
    assert raw_ping(http, standin, "ed_test_hook", body=b'{"x": 1}').status == 400
    assert standin.event_count("ed_test_hook") == 1


def test_retrieve_returns_every_field(client: stripe.StripeClient) -> None:
    hook = client.v2.core.event_destinations.retrieve("ed_test_hook")
    assert isinstance(hook, EventDestination)
    assert set(raw_body(hook)) == DESTINATION_FIELDS
    assert (hook.status, hook.status_details, hook.type, hook.amazon_eventbridge, hook.azure_event_grid) == (
        "enabled",
        None,
        "webhook_endpoint",
        None,
        None,
    )
    assert hook.webhook_endpoint is not None
    assert (hook.webhook_endpoint.url, hook.webhook_endpoint.signing_secret) == (None, None)
    assert RFC3339_MS.fullmatch(hook.created)
    assert RFC3339_MS.fullmatch(hook.updated)
    with_url = client.v2.core.event_destinations.retrieve(
        "ed_test_hook", {"include": ["webhook_endpoint.url"]}
    )
    assert with_url.webhook_endpoint is not None
    assert with_url.webhook_endpoint.url == "https://example.com/hook"

    bridge = client.v2.core.event_destinations.retrieve("ed_test_bridge")
    assert set(raw_body(bridge)) == DESTINATION_FIELDS
    assert (bridge.status, bridge.webhook_endpoint) == ("disabled", None)
    assert bridge.status_details is not None
    assert bridge.status_details.disabled is not None
    assert bridge.status_details.disabled.reason == "no_aws_event_source_exists"
    assert bridge.amazon_eventbridge is not None
    assert bridge.amazon_eventbridge.aws_event_source_status == "deleted"
    assert bridge.amazon_eventbridge.aws_event_source_arn.endswith("/aws.partner/stripe.com/ed_test_bridge")


def test_list_paginates_with_opaque_tokens(standin: StripeStandIn, client: stripe.StripeClient) -> None:
    for n in range(22):
        standin.add_destination(f"ed_test_{n:02d}")
    expected = [d.id for d in standin.destinations]
    assert len(expected) == 25

    first = client.v2.core.event_destinations.list({"limit": 10})
    assert isinstance(first, ListObject)
    assert set(raw_body(first)) == {"data", "next_page_url", "previous_page_url"}  # no `object` in v2
    assert raw_body(first)["previous_page_url"] is None
    assert len(first.data) == 10
    assert (first.next_page_url or "").startswith("/v2/core/event_destinations?")
    assert [d.id for d in first.auto_paging_iter()] == expected
    assert all(isinstance(d, EventDestination) for d in first.auto_paging_iter())
    assert [r.status for r in standin.requests if r.route == "list"][:3] == [200, 200, 200]

    assert first.next_page_url is not None
    second = json.loads(client.raw_request("get", first.next_page_url).body)
    assert [d["id"] for d in second["data"]] == expected[10:20]
    assert second["previous_page_url"] is not None
    assert second["next_page_url"] is not None
    assert len(client.v2.core.event_destinations.list().data) == 10  # default page size


@pytest.mark.parametrize("key", ["include[0]", "include", "include[]", "include%5B0%5D"])
def test_list_accepts_every_include_form(standin: StripeStandIn, http: urllib3.PoolManager, key: str) -> None:
    response = raw_get(http, standin, f"/v2/core/event_destinations?{key}=webhook_endpoint.url")
    assert response.status == 200
    assert response.json()["data"][0]["webhook_endpoint"]["url"] == "https://example.com/hook"


def test_list_rejects_out_of_range_limits(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v2.core.event_destinations.list({"limit": 101})
    assert caught.value.http_status == 400
    assert len(client.v2.core.event_destinations.list({"limit": 100}).data) == 3


# -- errors -----------------------------------------------------------------------------------------


def test_wrong_key_is_rejected_without_echo(standin: StripeStandIn) -> None:
    wrong = "sk_test_wrong_ZZZZZZZZZZZZZZZZ"
    client = stripe.StripeClient(wrong, base_addresses={"api": standin.url})
    with pytest.raises(stripe.AuthenticationError) as caught:
        client.v2.core.event_destinations.ping("ed_test_hook")
    assert caught.value.http_status == 401
    assert error_code(caught.value) == "api_key_invalid"
    assert wrong not in str(caught.value)
    assert wrong not in (caught.value.http_body or "")
    assert (caught.value.request_id or "").startswith("req_")
    (record,) = standin.requests
    assert (record.authorized, record.status) == (False, 401)
    assert wrong not in repr(standin.requests)
    assert KEY not in repr(standin.requests)
    assert (standin.ping_count("ed_test_hook"), standin.event_count("ed_test_hook")) == (0, 0)


def test_unknown_ids_are_v2_not_found(client: stripe.StripeClient) -> None:
    for call in (
        lambda: client.v2.core.event_destinations.ping("ed_test_nope"),
        lambda: client.v2.core.event_destinations.retrieve("ed_test_nope"),
        lambda: client.v2.core.events.retrieve("evt_test_nope"),
    ):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            call()
        assert (caught.value.http_status, caught.value.code) == (404, "not_found")
        assert caught.value.error is not None
        assert caught.value.error.message


def test_unknown_route_and_wrong_method(standin: StripeStandIn, http: urllib3.PoolManager) -> None:
    missing = raw_get(http, standin, "/v2/core/nothing_here")
    assert missing.status == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert missing.headers["Request-Id"].startswith("req_")
    wrong = raw_get(http, standin, "/v2/core/event_destinations/ed_test_hook/ping")
    assert (wrong.status, wrong.headers["Allow"]) == (405, "POST")
    assert wrong.json()["error"]["code"] == "method_not_allowed"


def test_idempotent_replay_returns_the_same_event(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    first = ping(client, "ed_test_hook", key="replay-1")
    again = ping(client, "ed_test_hook", key="replay-1")
    assert again.id == first.id
    assert raw_body(again) == raw_body(first)
    assert again.last_response is not None
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert (standin.event_count("ed_test_hook"), standin.ping_count("ed_test_hook")) == (1, 2)

    with pytest.raises(stripe.APIError) as caught:  # a spec-shaped 409 has no `type`: the SDK says APIError
        ping(client, "ed_test_other", key="replay-1")
    assert caught.value.http_status == 409
    assert error_code(caught.value) == "idempotency_error"
    assert standin.event_count("ed_test_other") == 0


# -- faults -----------------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_backoff")
def test_scripted_faults_run_in_order_then_normal(standin: StripeStandIn) -> None:
    standin.script("ed_test_hook", [Fault("status", 500), Fault("status", 503, error_code="unavailable")])
    client = stripe.StripeClient(KEY, base_addresses={"api": standin.url}, max_network_retries=2)

    event = ping(client, "ed_test_hook")

    assert event.related_object.id == "ed_test_hook"
    pings = [r for r in standin.requests if r.route == "ping"]
    assert [(r.status, r.fault) for r in pings] == [(500, "status"), (503, "status"), (200, None)]
    assert len({r.idempotency_key for r in pings}) == 1
    assert event.reason is not None
    assert event.reason.request is not None
    assert event.reason.request.idempotency_key == pings[0].idempotency_key
    assert (standin.event_count("ed_test_hook"), standin.ping_count("ed_test_hook")) == (1, 3)


@pytest.mark.usefixtures("no_backoff")
def test_sticky_fault_with_should_retry_false(standin: StripeStandIn) -> None:
    fault = Fault("status", 503, headers={"Stripe-Should-Retry": "false", "Retry-After": "1"})
    standin.script("ed_test_hook", [fault], forever=True)
    client = stripe.StripeClient(KEY, base_addresses={"api": standin.url}, max_network_retries=2)
    for _ in range(2):
        with pytest.raises(stripe.APIError) as caught:
            ping(client, "ed_test_hook")
        assert caught.value.http_status == 503
        assert (caught.value.headers or {})["Retry-After"] == "1"
    assert standin.ping_count("ed_test_hook") == 2  # the header stopped the SDK's retries
    assert ping(client, "ed_test_other").related_object.id == "ed_test_other"


def test_list_faults(standin: StripeStandIn, client: stripe.StripeClient) -> None:
    standin.script_list([Fault("status", 429, error_code="rate_limit", error_type="rate_limit")])
    with pytest.raises(stripe.RateLimitError):
        client.v2.core.event_destinations.list()
    assert len(client.v2.core.event_destinations.list().data) == 3
    with pytest.raises(ValueError, match="ping route"):
        standin.script_list([Fault("other_destination")])
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("explode")  # type: ignore[arg-type]


def test_hang_trips_a_client_read_timeout(standin: StripeStandIn, http: urllib3.PoolManager) -> None:
    standin.script("ed_test_hook", [Fault("hang", seconds=30), Fault("hang", seconds=0.05)])
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        raw_ping(http, standin, "ed_test_hook", timeout=urllib3.Timeout(connect=1, read=0.2))
    response = raw_ping(http, standin, "ed_test_hook")  # a short hang then answers normally
    assert response.status == 200
    assert response.json()["related_object"]["id"] == "ed_test_hook"
    standin.reset()  # releases the 30 s hang at once, as stop() would


def test_reset_fault_breaks_the_connection(
    standin: StripeStandIn, http: urllib3.PoolManager, client: stripe.StripeClient
) -> None:
    standin.script("ed_test_hook", [Fault("reset"), Fault("reset")])
    with pytest.raises(urllib3.exceptions.ProtocolError):
        raw_ping(http, standin, "ed_test_hook")
    with pytest.raises(stripe.APIConnectionError):
        client.v2.core.event_destinations.ping("ed_test_hook")
    assert [(r.status, r.fault) for r in standin.requests] == [(None, "reset"), (None, "reset")]
    assert standin.event_count("ed_test_hook") == 0
    assert raw_ping(http, standin, "ed_test_hook").status == 200


@pytest.mark.parametrize(
    ("kind", "status", "content_type"),
    [
        ("non_json", 200, "text/plain"),
        ("html_502", 502, "text/html"),
        ("truncated_json", 200, "application/json"),
        ("wrong_shape", 200, "application/json"),
        ("wrong_event_type", 200, "application/json"),
        ("other_destination", 200, "application/json"),
        ("huge_body", 200, "application/json"),
    ],
)
def test_payload_faults(
    standin: StripeStandIn, http: urllib3.PoolManager, kind: FaultKind, status: int, content_type: str
) -> None:
    standin.script("ed_test_hook", [Fault(kind)])
    response = raw_ping(http, standin, "ed_test_hook")
    assert (response.status, response.headers["Content-Type"]) == (status, content_type)
    assert len(response.data) == int(response.headers["Content-Length"])
    if kind in ("non_json", "html_502", "truncated_json"):
        with pytest.raises(json.JSONDecodeError):
            json.loads(response.data)
    elif kind == "wrong_shape":
        assert response.json() == {"hello": "world"}
    elif kind == "wrong_event_type":
        assert response.json()["type"] == "v2.core.event_destination.updated"
    elif kind == "other_destination":
        assert response.json()["type"] == "v2.core.event_destination.ping"
        assert response.json()["related_object"]["id"] == "ed_test_other"
    else:
        assert len(response.data) > 5_000_000
        assert response.json()["related_object"]["id"] == "ed_test_hook"
    assert raw_ping(http, standin, "ed_test_hook").json()["related_object"]["id"] == "ed_test_hook"


# -- concurrency, keep-alive, configuration --------------------------------------------------------


def test_latency_and_peak_concurrency(standin: StripeStandIn, http: urllib3.PoolManager) -> None:
    standin.set_latency("ed_test_hook", 0.3)
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(lambda _: raw_ping(http, standin, "ed_test_hook").status, range(4)))
    assert statuses == [200] * 4
    assert standin.max_in_flight > 1
    assert all(r.ended is not None and r.ended - r.started >= 0.3 for r in standin.requests)
    standin.reset()
    assert (standin.requests, standin.max_in_flight) == ([], 0)


def test_keep_alive_reuses_one_connection(standin: StripeStandIn) -> None:
    assert _Handler.disable_nagle_algorithm is True
    assert _Handler.protocol_version == "HTTP/1.1"
    with urllib3.HTTPConnectionPool("127.0.0.1", standin.port, maxsize=1, retries=False) as pool:
        for path in [
            "/v2/core/event_destinations",
            "/v2/core/nope",
            "/v2/core/event_destinations/ed_test_hook",
        ]:
            pool.request("GET", path, headers=AUTH)
        pool.request("POST", "/v2/core/event_destinations/ed_test_hook/ping", body=b"{}")  # a 401
        assert (pool.num_connections, pool.num_requests) == (1, 4)


def _write_config(tmp_path: Path) -> Path:
    path = tmp_path / "destinations.json"
    config = [
        {
            "id": "ed_test_file",
            "faults": [{"kind": "status", "status": 502, "headers": {"Retry-After": "2"}}],
        },
        {
            "id": "ed_test_slow",
            "type": "amazon_eventbridge",
            "event_source_status": "pending",
            "latency": 0.05,
        },
    ]
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def test_config_file(tmp_path: Path, http: urllib3.PoolManager) -> None:
    with StripeStandIn.from_config(_write_config(tmp_path), api_key=KEY) as standin:
        first = raw_ping(http, standin, "ed_test_file")
        assert (first.status, first.headers["Retry-After"]) == (502, "2")
        assert first.json()["error"]["code"] == "api_error"
        assert raw_ping(http, standin, "ed_test_file").status == 200
        bridge = raw_get(http, standin, "/v2/core/event_destinations/ed_test_slow").json()
        assert bridge["amazon_eventbridge"]["aws_event_source_status"] == "pending"
        (slow,) = [r for r in standin.requests if r.destination_id == "ed_test_slow"]
        assert slow.ended is not None
        assert slow.ended - slow.started >= 0.05


def test_command_line(tmp_path: Path, http: urllib3.PoolManager) -> None:
    command = [sys.executable, "-m", "tools.standins.stripe", "--port", "0", "--api-key", KEY]
    command += ["--destinations", str(_write_config(tmp_path))]
    with subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
            response = http.request(
                "POST", f"{url}/v2/core/event_destinations/ed_test_slow/ping", headers=AUTH
            )
            assert response.json()["related_object"]["id"] == "ed_test_slow"
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=5)
    assert proc.returncode == 0
    assert stderr == ""  # nothing noisy, so never a key either
