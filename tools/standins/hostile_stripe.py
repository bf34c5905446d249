"""Whatever answers at the Stripe API base, at its worst: a raw-socket HTTP server on 127.0.0.1 that sends
exactly the bytes a test scripts — headers that echo the key, bodies of any size or depth, a status line
that never ends, an answer trickled out one byte at a time — to prove the monitor's client survives them.

    with HostileStripe() as hostile:
        hostile.script(Answer(200, body=b'{"id": "evt_..."}', headers={"Request-Id": "..."}))
        ... point STRIPE_API_BASE at hostile.url ...
"""

import socket
import threading
from dataclasses import dataclass, field
from typing import Self

from tools.standins.service import Service


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    seconds_per_byte: float = 0.0  # > 0: the answer trickles out, a byte at a time
    head_at_once: bool = (
        False  # with seconds_per_byte: status line and headers at once, then the body trickles
    )


class HostileStripe(Service):
    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._answers: list[Answer] = [Answer()]
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.requests: list[bytes] = []  # each request's head and body, as received

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def script(self, *answers: Answer) -> None:
        """The next answers in order; the last one repeats."""
        with self._lock:
            self._answers = list(answers)

    def start(self) -> Self:
        threading.Thread(target=self._serve, name="hostile-stripe", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            request = _read_request(conn)
            if request is None:
                return
            with self._lock:
                self.requests.append(request)
                answer = self._answers.pop(0) if len(self._answers) > 1 else self._answers[0]
            head = [
                f"HTTP/1.1 {answer.status} Hostile",
                f"Content-Length: {len(answer.body)}",
                "Connection: close",
            ]
            head += [f"{name}: {value}" for name, value in answer.headers.items()]
            raw = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + answer.body
            try:
                if answer.seconds_per_byte <= 0:
                    conn.sendall(raw)
                    return
                start = len(raw) - len(answer.body) if answer.head_at_once else 0
                conn.sendall(raw[:start])
                for index in range(start, len(raw)):
                    if self._stopped.wait(answer.seconds_per_byte):
                        return
                    conn.sendall(raw[index : index + 1])
            except OSError:  # the client gave up (what a deadline is for)
                return


def _read_request(conn: socket.socket) -> bytes | None:
    data = b""
    conn.settimeout(10)
    try:
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        while len(body) < length:
            body += conn.recv(65536)
        return head + b"\r\n\r\n" + body
    except (OSError, ValueError):
        return None
