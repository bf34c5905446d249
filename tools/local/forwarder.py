""" "Your application" in the local stack: the part of a webhook handler that forwards receipts.

Stripe delivers a ping event to the application's webhook URL; the application re-sends the raw body,
unchanged, with its ``Stripe-Signature`` header to ``POST <ApiUrl>/webhooks/stripe`` (the stack verifies
the signature with the destination's own signing secret), and answers Stripe 200.
"""

from http.server import BaseHTTPRequestHandler
from typing import Any

from tools.standins.service import LoopbackHttpServer, post

MAX_BODY = 64 * 1024
PATH = "/stripe/webhook"
REPLY = b'{"received": true}'


class ApplicationForwarder(LoopbackHttpServer):
    def __init__(self, port: int = 0) -> None:
        self.target: str | None = None  # <ApiUrl>/webhooks/stripe, set once the API runs
        self.forwarded: list[int | None] = []  # the stack's HTTP status for each forward (None: no answer)
        forwarder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, MAX_BODY))
                forwarder.forward(body, self.headers.get("Stripe-Signature"))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(REPLY)))
                self.end_headers()
                self.wfile.write(REPLY)

        super().__init__(Handler, port=port, name="your-application")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def forward(self, body: bytes, signature: str | None) -> None:
        if self.target is None:
            return
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if signature is not None:
            headers["Stripe-Signature"] = signature
        self.forwarded.append(post(self.target, body, headers))
