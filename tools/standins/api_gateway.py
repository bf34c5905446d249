"""A local stand-in for the REST API in front of the functions: real HTTP on 127.0.0.1, SigV4 checked.

Requests become API Gateway REST proxy events (with the IAM identity in ``requestContext``) and go to the
Lambda handler of their route; the answer goes back as HTTP. IAM routes verify the caller's SigV4
signature with botocore's signer and the stand-in's credentials; a missing or wrong signature is a 403,
as API Gateway answers, and so is a valid signature of a principal that has no ``execute-api:Invoke``
(``not_allowed``: API Gateway's ``ACCESS_DENIED``). Used by the receipt tests (a signed webhook delivery
from the Stripe stand-in, the application snippet's SigV4 call), the local run and the CLI's tests.

Routes are chosen as API Gateway chooses them: among the routes whose path matches and whose method is the
request's or ``ANY``, the most specific path wins (a literal segment over ``{param}`` over ``{proxy+}``),
then the route's own method over ``ANY``. ``template_routes`` builds the routes from ``template.yaml``'s
``Api`` events (its catch-alls included, so unknown routes reach a handler as in AWS), and the stand-in's
own answers (no route, no or a wrong signature) use the template's ``GatewayResponses``.
"""

import base64
import hmac
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tools.lambda_context import FakeLambdaContext
from tools.standins.service import LoopbackHttpServer
from tools.standins.template import load_template

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
STAGE = "v1"
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request,"
    r"\s*SignedHeaders=(?P<signed>[^,]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)


# API Gateway's status for the answers the stand-in makes itself (a GatewayResponse may override it).
_GATEWAY_STATUS = {"MISSING_AUTHENTICATION_TOKEN": 403, "INVALID_SIGNATURE": 403, "ACCESS_DENIED": 403}
_INVALID_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)


@dataclass(frozen=True)
class Route:
    method: str  # GET, POST, ... or ANY
    template: str  # e.g. /destinations/{destination_id}/ping, or /{proxy+} (greedy: one or more segments)
    handler: Handler
    iam: bool = True

    def match(self, path: str) -> dict[str, str] | None:
        pattern = re.escape(self.template)
        pattern = re.sub(r"\\{(\w+)\\\+\\}", r"(?P<\1>.+)", pattern)
        pattern = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", pattern)
        found = re.fullmatch(pattern, path)
        return found.groupdict() if found else None

    @property
    def specificity(self) -> tuple[int, ...]:
        """Per path segment: literal 2, ``{param}`` 1, ``{proxy+}`` 0; the larger tuple is preferred."""
        segments = self.template.split("/")[1:]
        return tuple(0 if s.endswith("+}") else 1 if s.startswith("{") else 2 for s in segments)


def _context() -> FakeLambdaContext:
    return FakeLambdaContext(
        remaining_ms=25_000,
        function_name="local",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:local",
        aws_request_id="local-api-gateway",
    )


def template_routes(
    handlers: Mapping[str, Handler], template: Mapping[str, Any] | None = None
) -> list[Route]:
    """The ``Api`` events of the template's functions as routes, each to the handler of its function
    (``handlers`` by logical id, e.g. ``{"PingFunction": ..., "ReceiptFunction": ...}``): every function
    with API events needs one, so that no path falls to another function's catch-all."""
    resources = (template or load_template())["Resources"]
    routes = []
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        events = resource["Properties"].get("Events", {}).values()
        for event in (e["Properties"] for e in events if e["Type"] == "Api"):
            if logical_id not in handlers:
                raise ValueError(f"no handler for {logical_id}, which serves {event['Path']}")
            iam = event.get("Auth", {}).get("Authorizer", "AWS_IAM") != "NONE"
            routes.append(Route(event["Method"].upper(), event["Path"], handlers[logical_id], iam=iam))
    return routes


class LocalApiGateway(LoopbackHttpServer):
    def __init__(
        self,
        routes: Sequence[Route],
        *,
        access_key: str = "testing",
        secret_key: str = "testing",
        region: str = "us-east-1",
        port: int = 0,
        template: Mapping[str, Any] | None = None,
        not_allowed: Mapping[str, str] | None = None,
    ) -> None:
        """``access_key``/``secret_key`` may call every route; ``not_allowed`` (access key -> secret key)
        are principals whose signatures are valid but whose policies do not allow execute-api:Invoke."""
        self.routes = list(routes)
        api = (template or load_template())["Resources"]["MonitorApi"]["Properties"]
        self.gateway_responses: dict[str, Any] = api.get("GatewayResponses", {})
        self.credentials = Credentials(access_key, secret_key)
        self.not_allowed = {key: Credentials(key, secret) for key, secret in (not_allowed or {}).items()}
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

            do_POST = do_DELETE = do_PUT = do_PATCH = do_OPTIONS = do_GET

        super().__init__(Handler, port=port, name="api-gateway")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{STAGE}"

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        split = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(min(length, 10 * 1024 * 1024))
        path = split.path.removeprefix(f"/{STAGE}") or "/"
        matched = self._route(request.command, path)
        route, parameters = matched if matched else (None, {})
        identity = None
        if route is not None:
            identity = self._verified_identity(request, body) if route.iam else {}
        if route is None or (identity is None and not request.headers.get("Authorization")):
            # No route, or unsigned: API Gateway cannot tell a caller which.
            status, headers, payload = self.gateway_response(
                "MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token"
            )
        elif identity is None:
            status, headers, payload = self.gateway_response("INVALID_SIGNATURE", _INVALID_SIGNATURE)
        elif identity.get("accessKey") in self.not_allowed:
            resource = f"arn:aws:execute-api:{self.region}:********9012:local/{STAGE}/{request.command}{path}"
            message = (
                f"User: {identity['userArn']} is not authorized to perform: execute-api:Invoke on resource:"
                f" {resource}"
            )
            status, headers, payload = self.gateway_response("ACCESS_DENIED", message)
        else:
            event = self._event(request, route, path, split.query, parameters, body, identity)
            answer = route.handler(event, _context())
            status = int(answer["statusCode"])
            headers = {k: v for k, v in (answer.get("headers") or {}).items()}
            headers |= {k: v[-1] for k, v in (answer.get("multiValueHeaders") or {}).items() if v}
            raw = answer.get("body") or ""
            payload = base64.b64decode(raw) if answer.get("isBase64Encoded") else raw.encode()
        self.requests.append((request.command, path, status))
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, str(value))
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    def _route(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route API Gateway would take: the most specific path, then its own method over ANY."""
        candidates = [
            (route, parameters)
            for route in self.routes
            if route.method in (method, "ANY") and (parameters := route.match(path)) is not None
        ]
        if not candidates:
            return None
        return max(candidates, key=lambda found: (found[0].specificity, found[0].method != "ANY"))

    def gateway_response(self, response_type: str, message: str) -> tuple[int, dict[str, str], bytes]:
        """An answer API Gateway makes itself, through the template's GatewayResponses (or its default)."""
        status = _GATEWAY_STATUS[response_type]
        default = self.gateway_responses.get("DEFAULT_4XX" if status < 500 else "DEFAULT_5XX")
        response = self.gateway_responses.get(response_type, default)
        if response is None:
            return status, {"Content-Type": "application/json"}, json.dumps({"message": message}).encode()
        body = response["ResponseTemplates"]["application/json"]
        for variable, value in (
            ("$context.error.messageString", json.dumps(message)),
            ("$context.error.message", message),
            ("$context.error.responseType", response_type),
        ):
            body = body.replace(variable, value)
        return int(response.get("StatusCode", status)), {"Content-Type": "application/json"}, body.encode()

    def _verified_identity(self, request: BaseHTTPRequestHandler, body: bytes) -> dict[str, Any] | None:
        """The caller's identity if the SigV4 signature is right for our credentials, else None."""
        found = _AUTHORIZATION.fullmatch(request.headers.get("Authorization", "").strip())
        amz_date = request.headers.get("X-Amz-Date", "")
        if not found or found["service"] != "execute-api":
            return None
        known = {self.credentials.access_key: self.credentials, **self.not_allowed}
        credentials = known.get(found["key"])
        if credentials is None:
            return None
        if found["region"] != self.region or not amz_date.startswith(found["date"]):
            return None
        signed = found["signed"].split(";")
        headers = {name: request.headers.get(name, "") for name in signed}
        url = f"http://{request.headers.get('Host', '')}{request.path}"
        aws_request = AWSRequest(method=request.command, url=url, data=body, headers=headers)
        aws_request.context["timestamp"] = amz_date
        signer = SigV4Auth(credentials, "execute-api", self.region)
        canonical = signer.canonical_request(aws_request)
        expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
        if not hmac.compare_digest(expected, found["signature"]):
            return None
        user = "local-caller" if credentials is self.credentials else found["key"]
        return {
            "accessKey": found["key"],
            "caller": found["key"],
            "userArn": f"arn:aws:iam::123456789012:user/{user}",
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
