"""``StripeStandIn``: the stand-in's state (``state``) served over HTTP (``server``) on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Self

from tools.standins.service import Service
from tools.standins.stripe.model import DEFAULT_API_KEY, Destination
from tools.standins.stripe.server import _Server
from tools.standins.stripe.state import StandInState


class StripeStandIn(StandInState, Service):
    """Thread-safe in-process server; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        destinations: Iterable[Destination | Mapping[str, Any]] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(api_key, destinations)
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("stand-in already started")
        self._server = _Server(self._address, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="stripe-standin",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._wake.set()  # releases hang faults and latency sleeps
        server.shutdown()
        server.server_close()
        with self._lock:
            connections, workers = list(self._connections), list(self._workers)
        for conn in connections:  # idle keep-alive connections would otherwise block their threads in recv
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for worker in workers:
            worker.join(timeout=2)
        if self._thread is not None:
            self._thread.join(timeout=2)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("stand-in is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._address[0]}:{self.port}"

    @classmethod
    def from_config(
        cls,
        path: str | os.PathLike[str],
        *,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> StripeStandIn:
        """A stand-in (not started) with the destinations, faults and latency of a JSON file."""
        standin = cls(api_key, host=host, port=port)
        standin.load_config(path)
        return standin
