"""The with-statement for the test servers and engines: ``with X() as x`` starts x and stops it after; and
the loopback HTTP server and client that the local stand-ins share."""

import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self


class Service:
    """Subclasses define ``start`` (returning themselves) and ``stop`` (safe to call twice)."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class LoopbackHttpServer(Service):
    """A threaded HTTP server on 127.0.0.1 (``port`` 0: a free one), each request on a thread of its own."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, port: int = 0, name: str) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float = 10) -> int | None:
    """POST and return the answer's HTTP status, or None when no answer came."""
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None
