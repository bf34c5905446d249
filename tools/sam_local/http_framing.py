"""Just enough HTTP/1.1 framing over raw sockets for the Docker-API proxy: find where requests begin and end
(``Content-Length`` or chunked bodies), rewrite a head's length, and pump bytes one way."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator, Mapping

MAX_HEAD_BYTES = 1 << 20


class Reader:
    """Buffered reads from a socket, with enough HTTP/1.1 framing to find request boundaries."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()
        self.eof = False

    def _fill(self) -> bool:
        data = self._sock.recv(65536)
        if not data:
            self.eof = True
            return False
        self._buf += data
        return True

    def head(self) -> bytes | None:
        while b"\r\n\r\n" not in self._buf:
            if len(self._buf) > MAX_HEAD_BYTES or not self._fill():
                return None
        end = self._buf.index(b"\r\n\r\n") + 4
        out = bytes(self._buf[:end])
        del self._buf[:end]
        return out

    def line(self) -> bytes:
        while b"\r\n" not in self._buf:
            if not self._fill():
                raise ConnectionError("connection closed inside a chunked body")
        end = self._buf.index(b"\r\n") + 2
        out = bytes(self._buf[:end])
        del self._buf[:end]
        return out

    def exactly(self, size: int) -> bytes:
        while len(self._buf) < size:
            if not self._fill():
                raise ConnectionError("connection closed inside a body")
        out = bytes(self._buf[:size])
        del self._buf[:size]
        return out

    def pieces(self, size: int) -> Iterator[bytes]:
        """Yield exactly ``size`` bytes, in pieces as they arrive."""
        while size > 0:
            if not self._buf and not self._fill():
                raise ConnectionError("connection closed inside a body")
            piece = bytes(self._buf[:size])
            del self._buf[: len(piece)]
            size -= len(piece)
            yield piece

    def body(self, headers: Mapping[str, str], sink: Callable[[bytes], None], *, decode: bool) -> None:
        """Pass the request body to ``sink``: raw framing, or (``decode``) the decoded payload."""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size_line = self.line()
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if not decode:
                    sink(size_line)
                if size == 0:
                    while True:  # trailers, up to the empty line
                        trailer = self.line()
                        if not decode:
                            sink(trailer)
                        if trailer == b"\r\n":
                            return
                for piece in self.pieces(size):
                    sink(piece)
                crlf = self.exactly(2)
                if not decode:
                    sink(crlf)
        elif headers.get("content-length"):
            for piece in self.pieces(int(headers["content-length"])):
                sink(piece)

    def rest(self) -> Iterator[bytes]:
        if self._buf:
            yield bytes(self._buf)
            self._buf.clear()
        while self._fill():
            yield bytes(self._buf)
            self._buf.clear()


def parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = [*lines[0].split(" ", 2), "", ""][:3]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return method.upper(), target, headers


def with_content_length(head: bytes, length: int) -> bytes:
    lines = head.decode("latin-1").split("\r\n")[:-2]
    kept = [lines[0]] + [
        line
        for line in lines[1:]
        if line.split(":", 1)[0].strip().lower() not in ("content-length", "transfer-encoding")
    ]
    kept.append(f"Content-Length: {length}")
    return ("\r\n".join(kept) + "\r\n\r\n").encode("latin-1")


def pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
