"""The Stripe stand-in's state: its destinations, the events it made and the requests it saw, and the
delivery of ping events. Thread-safe; the HTTP handler (``server``) reads and changes it."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from tools.standins.stripe.delivery import eventbridge_envelope, post_to_webhook, thin_event
from tools.standins.stripe.faults import FaultScripts
from tools.standins.stripe.model import (
    DEFAULT_API_KEY,
    PING_EVENT_TYPE,
    Destination,
    DestinationType,
    Fault,
    RequestRecord,
    make_event,
)


class StandInState(FaultScripts):
    """Everything the stand-in knows, without the server; ``StripeStandIn`` adds that."""

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        destinations: Iterable[Destination | Mapping[str, Any]] = (),
    ) -> None:
        super().__init__()
        self._api_key = api_key
        self._connections: set[socket.socket] = set()
        self._workers: set[threading.Thread] = set()
        self._destinations: dict[str, Destination] = {}
        self._events: dict[str, dict[str, Any]] = {}
        self._idempotency: dict[str, tuple[str, str]] = {}  # key -> (destination id, event id)
        self._events_created: Counter[str] = Counter()
        self._records: list[RequestRecord] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self.errors: list[BaseException] = []  # unexpected handler exceptions, for tests to assert on
        self.on_eventbridge: Callable[[dict[str, Any]], object] | None = None
        self.eventbridge_outbox: list[dict[str, Any]] = []
        self.deliveries: list[tuple[str, str, int | None]] = []  # (destination id, event id, HTTP status)
        for destination in destinations:
            self.put_destination(destination)

    @property
    def api_key(self) -> str:
        return self._api_key

    @api_key.setter
    def api_key(self, value: str) -> None:
        """Accept only this key from now on (a rotated key, as after a secret rotation)."""
        self._api_key = value

    # -- configuration ---------------------------------------------------------------------------

    def put_destination(self, destination: Destination | Mapping[str, Any]) -> Destination:
        """Add or replace (keeping list position) a destination."""
        if not isinstance(destination, Destination):
            destination = Destination.from_dict(destination)
        with self._lock:
            self._destinations[destination.id] = destination
        return destination

    def add_destination(
        self,
        destination_id: str,
        *,
        status: Literal["enabled", "disabled"] = "enabled",
        disabled_reason: str | None = None,
        type: DestinationType = "webhook_endpoint",  # named like the API field
        event_source_status: str | None = None,
        url: str | None = None,
        **more: Any,
    ) -> Destination:
        return self.put_destination(
            Destination(
                id=destination_id,
                status=status,
                disabled_reason=disabled_reason,
                type=type,
                event_source_status=event_source_status,
                url=url,
                **more,
            )
        )

    def remove_destination(self, destination_id: str) -> None:
        with self._lock:
            self._destinations.pop(destination_id, None)

    @property
    def destinations(self) -> list[Destination]:
        with self._lock:
            return list(self._destinations.values())

    def load_config(self, path: str | os.PathLike[str]) -> None:
        """Load destinations, faults and latency from JSON (format in ``_apply_config``)."""
        self._apply_config(json.loads(Path(path).read_text(encoding="utf-8")))

    def _apply_config(self, config: Any) -> None:
        # Either a list of destinations or {"destinations": [...], "latency": s, "list_faults": [...],
        # "list_faults_forever": bool}. Each destination may carry "faults", "faults_forever", "latency".
        if isinstance(config, list):
            config = {"destinations": config}
        if not isinstance(config, dict):
            raise ValueError("config must be a list of destinations or an object with 'destinations'")
        for raw in config.get("destinations", []):
            entry = dict(raw)
            faults = [Fault.from_dict(f) for f in entry.pop("faults", [])]
            forever = bool(entry.pop("faults_forever", False))
            latency = entry.pop("latency", None)
            destination = self.put_destination(entry)
            if faults:
                self.script(destination.id, faults, forever=forever)
            if latency is not None:
                self.set_latency(destination.id, float(latency))
        if config.get("latency") is not None:
            self.set_latency(float(config["latency"]))
        if config.get("list_faults"):
            list_faults = [Fault.from_dict(f) for f in config["list_faults"]]
            self.script_list(list_faults, forever=bool(config.get("list_faults_forever", False)))

    def reset(self) -> None:
        """Forget requests, scripts, latency, events and idempotency keys; destinations stay.
        Requests still sleeping in a hang or latency lose their connection, so none leaks into a next test."""
        with self._lock:
            self._wake.set()
            self._wake = threading.Event()
            self._scripts.clear()
            self._latency.clear()
            self._events.clear()
            self._idempotency.clear()
            self._events_created.clear()
            self._records.clear()
            self._max_in_flight = self._in_flight
            self.errors.clear()
            self.eventbridge_outbox.clear()
            self.deliveries.clear()
            self.on_eventbridge = None

    # -- observability ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def ping_count(self, destination_id: str) -> int:
        """Authorized ping requests naming this destination, faulted and replayed ones included."""
        return sum(
            1
            for r in self.requests
            if r.route == "ping" and r.destination_id == destination_id and r.authorized
        )

    def event_count(self, destination_id: str) -> int:
        """Distinct ping events created (idempotent replays and faulted answers do not count)."""
        with self._lock:
            return self._events_created[destination_id]

    def event(self, event_id: str) -> dict[str, Any] | None:
        with self._lock:
            stored = self._events.get(event_id)
            return None if stored is None else json.loads(json.dumps(stored))

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._max_in_flight

    # -- used by the handler ---------------------------------------------------------------------

    def _begin(self, record: RequestRecord) -> int:
        with self._lock:
            self._records.append(record)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            return len(self._records) - 1

    def _finish(self, index: int, record: RequestRecord) -> None:
        with self._lock:
            self._in_flight -= 1
            # reset() may have cleared the log while this request was in flight.
            if index < len(self._records) and self._records[index].request_id == record.request_id:
                self._records[index] = record

    def _destination(self, destination_id: str) -> Destination | None:
        with self._lock:
            return self._destinations.get(destination_id)

    def _ping_event(
        self, destination_id: str, request_id: str, idempotency_key: str | None, *, commit: bool
    ) -> tuple[dict[str, Any], bool] | None:
        """The ping event and whether it is a replay; None when the key belongs to another destination."""
        with self._lock:
            if commit and idempotency_key is not None and idempotency_key in self._idempotency:
                owner, event_id = self._idempotency[idempotency_key]
                return (self._events[event_id], True) if owner == destination_id else None
            event = make_event(destination_id, PING_EVENT_TYPE, request_id, idempotency_key)
            if commit:
                self._events[event["id"]] = event
                self._events_created[destination_id] += 1
                if idempotency_key is not None:
                    self._idempotency[idempotency_key] = (destination_id, event["id"])
            return event, False

    def deliver_event(self, destination_id: str, event: Mapping[str, Any]) -> None:
        """Deliver an event as Stripe would (a test's stand-in for a Workbench or dashboard ping)."""
        destination = self._destination(destination_id)
        if destination is None:
            raise KeyError(destination_id)
        self._deliver(destination, dict(event))

    def _deliver(self, destination: Destination, event: dict[str, Any]) -> None:
        if destination.delivery == "drop":
            return
        thin = thin_event(event)
        copies = 2 if destination.delivery == "duplicate" else 1

        def send() -> None:
            if not self._sleep(destination.delivery_delay):
                return
            for _ in range(copies):
                if destination.type == "amazon_eventbridge":
                    self._deliver_to_eventbridge(destination, thin)
                elif destination.url and destination.signing_secret:
                    self._deliver_to_webhook(destination, thin)

        threading.Thread(target=send, name=f"deliver-{event['id']}", daemon=True).start()

    def _deliver_to_webhook(self, destination: Destination, thin: dict[str, Any]) -> None:
        status = post_to_webhook(destination, thin)
        with self._lock:
            self.deliveries.append((destination.id, thin["id"], status))

    def _deliver_to_eventbridge(self, destination: Destination, thin: dict[str, Any]) -> None:
        envelope = eventbridge_envelope(destination, thin)
        with self._lock:
            self.eventbridge_outbox.append(envelope)
            self.deliveries.append((destination.id, thin["id"], None))
        if self.on_eventbridge is not None:
            self.on_eventbridge(envelope)

    def _other_destination_id(self, destination_id: str) -> str:
        with self._lock:
            others = [d for d in self._destinations if d != destination_id]
        return others[0] if others else "ed_test_someoneelse000000000000000000000000"

    def _stored_event(self, event_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._events.get(event_id)

    def _list_page(self, offset: int, limit: int) -> tuple[list[Destination], int]:
        with self._lock:
            every = list(self._destinations.values())
        return every[offset : offset + limit], len(every)

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
                self._workers.add(threading.current_thread())
            else:
                self._connections.discard(conn)
                self._workers.discard(threading.current_thread())
