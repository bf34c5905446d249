"""SigV4-signed requests to the monitor's API, and every way they can fail as one clear line."""

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

# The exit codes of every subcommand (argparse's own usage errors are 2 as well).
EXIT_OK = 0
EXIT_FAILED = 1  # the answer is bad: a destination is down, a ping failed or was not delivered
EXIT_USAGE = 2
EXIT_ERROR = 3  # no answer: credentials, access, stack, network, unknown destination, an API error

DEFAULT_TIMEOUT = 15.0


class CliError(Exception):
    """A failure the operator can act on: printed as one line (never a traceback), exit code 3."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


class MonitorApi:
    """The API at ``base_url`` (a stack's ``ApiUrl``, ``.../v1``), called with ``credentials`` for
    ``region``: anything with ``access_key``, ``secret_key`` and ``token``, as botocore's are."""

    def __init__(self, base_url: str, region: str, credentials: Any) -> None:
        self.base_url = base_url.rstrip("/")
        self.region = region
        self.credentials = credentials

    def answer(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Answer:
        """The API's answer, whatever its status; CliError when there is none."""
        url = self.base_url + path + (f"?{urlencode(query)}" if query else "")
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json", "User-Agent": "stripe-monitor-cli"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        signed = AWSRequest(method=method, url=url, data=data, headers=headers)
        SigV4Auth(self.credentials, "execute-api", self.region).add_auth(signed)
        request = urllib.request.Request(url, data=data, method=method, headers=dict(signed.headers.items()))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, raw = int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise CliError(f"cannot reach the monitor's API at {self.base_url}: {reason}") from None
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise CliError(f"{method} {self.base_url}{path} answered HTTP {status}, not with the API's JSON")
        return Answer(status, parsed)

    def call(self, method: str, path: str, **options: Any) -> dict[str, Any]:
        """The body of a successful answer; CliError for an error answer."""
        found = self.answer(method, path, **options)
        if "error" in found.body:
            raise self.error(method, path, found)
        return found.body

    def error(self, method: str, path: str, found: Answer) -> CliError:
        """An error answer (``{"error": {"code", "message"}}``, API Gateway's own included) as one line."""
        error = found.body.get("error")
        error = error if isinstance(error, dict) else {}
        code, message = str(error.get("code") or "error"), str(error.get("message") or "").strip()
        route = f"{method} {path.split('?')[0]}"
        if code == "access_denied":
            return CliError(
                f"access denied: these AWS credentials are not allowed execute-api:Invoke on {route}"
                f" (grant execute-api:Invoke on the monitor's API; API Gateway said: {message})"
            )
        if code == "invalid_signature":
            return CliError(
                f"the API refused the request's signature: check the AWS credentials and the region"
                f" (signed for {self.region}; API Gateway said: {message})"
            )
        if code == "expired_token":
            return CliError(
                "the AWS credentials have expired: refresh them (e.g. aws sso login) and try again"
            )
        if code == "missing_authentication_token":
            return CliError(
                f"no route {route} at {self.base_url}: is that the stack's ApiUrl output (ending in /v1)?"
            )
        if code == "unknown_destination":
            return CliError(f"unknown destination: {message}")
        if code == "throttled":
            return CliError("the API is throttling requests: try again in a moment")
        return CliError(f"{route} failed with HTTP {found.status} {code}: {message}")
