"""A local stand-in for the REST API in front of the functions: real HTTP on 127.0.0.1, SigV4 checked.

Requests become API Gateway REST proxy events (with the IAM identity in ``requestContext``) and go to the
Lambda handler of their route; the answer goes back as HTTP. IAM routes verify the caller's SigV4
signature with botocore's signer and the stand-in's credentials; a missing or wrong signature is a 403,
as API Gateway answers. Used by the receipt tests (a signed webhook delivery from the Stripe stand-in, the
application snippet's SigV4 call) and by the local run.
"""

import base64
import hmac
import re
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
STAGE = "v1"
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request,"
    r"\s*SignedHeaders=(?P<signed>[^,]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # e.g. /destinations/{destination_id}/ping
    handler: Handler
    iam: bool = True

    def match(self, path: str) -> dict[str, str] | None:
        pattern = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(self.template))
        found = re.fullmatch(pattern, path)
        return found.groupdict() if found else None


class _Context:
    function_name = "local"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:local"
    aws_request_id = "local-api-gateway"

    def get_remaining_time_in_millis(self) -> int:
        return 25_000


class LocalApiGateway:
    def __init__(
        self,
        routes: Sequence[Route],
        *,
        access_key: str = "testing",
        secret_key: str = "testing",
        region: str = "us-east-1",
        port: int = 0,
    ) -> None:
        self.routes = list(routes)
        self.credentials = Credentials(access_key, secret_key)
        self.region = region
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                gateway._serve(self)

            do_POST = do_DELETE = do_PUT = do_GET

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="api-gateway", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{STAGE}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        split = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(min(length, 10 * 1024 * 1024))
        path = split.path.removeprefix(f"/{STAGE}")
        status, headers, payload = (
            403,
            {"Content-Type": "application/json"},
            b'{"message":"Missing Authentication Token"}',
        )
        for route in self.routes:
            parameters = route.match(path)
            if parameters is None or route.method != request.command:
                continue
            identity = self._verified_identity(request, body) if route.iam else {}
            if identity is None:
                payload = b'{"message":"The request signature we calculated does not match."}'
                break
            event = self._event(request, route, path, split.query, parameters, body, identity)
            answer = route.handler(event, _Context())
            status = int(answer["statusCode"])
            headers = {k: v for k, v in (answer.get("headers") or {}).items()}
            headers |= {k: v[-1] for k, v in (answer.get("multiValueHeaders") or {}).items() if v}
            raw = answer.get("body") or ""
            payload = base64.b64decode(raw) if answer.get("isBase64Encoded") else raw.encode()
            break
        self.requests.append((request.command, path, status))
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, str(value))
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    def _verified_identity(self, request: BaseHTTPRequestHandler, body: bytes) -> dict[str, Any] | None:
        """The caller's identity if the SigV4 signature is right for our credentials, else None."""
        found = _AUTHORIZATION.fullmatch(request.headers.get("Authorization", "").strip())
        amz_date = request.headers.get("X-Amz-Date", "")
        if not found or found["key"] != self.credentials.access_key or found["service"] != "execute-api":
            return None
        if found["region"] != self.region or not amz_date.startswith(found["date"]):
            return None
        signed = found["signed"].split(";")
        headers = {name: request.headers.get(name, "") for name in signed}
        url = f"http://{request.headers.get('Host', '')}{request.path}"
        aws_request = AWSRequest(method=request.command, url=url, data=body, headers=headers)
        aws_request.context["timestamp"] = amz_date
        signer = SigV4Auth(self.credentials, "execute-api", self.region)
        canonical = signer.canonical_request(aws_request)
        expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
        if not hmac.compare_digest(expected, found["signature"]):
            return None
        return {
            "accessKey": found["key"],
            "caller": found["key"],
            "userArn": "arn:aws:iam::123456789012:user/local-caller",
            "sourceIp": "127.0.0.1",
        }

    def _event(
        self,
        request: BaseHTTPRequestHandler,
        route: Route,
        path: str,
        query: str,
        parameters: dict[str, str],
        body: bytes,
        identity: dict[str, Any],
    ) -> dict[str, Any]:
        headers = {k: v for k, v in request.headers.items()}
        pairs = parse_qsl(query, keep_blank_values=True)
        try:
            text, encoded = body.decode(), False
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode(), True
        return {
            "resource": route.template,
            "path": path,
            "httpMethod": request.command,
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": dict(pairs) or None,
            "multiValueQueryStringParameters": {k: [v for kk, v in pairs if kk == k] for k, _ in pairs}
            or None,
            "pathParameters": parameters or None,
            "stageVariables": None,
            "requestContext": {
                "resourcePath": route.template,
                "httpMethod": request.command,
                "path": f"/{STAGE}{path}",
                "stage": STAGE,
                "requestId": str(uuid.uuid4()),
                "domainName": request.headers.get("Host", "127.0.0.1"),
                "accountId": "123456789012",
                "apiId": "local",
                "identity": identity,
            },
            "body": text or None,
            "isBase64Encoded": encoded,
        }
