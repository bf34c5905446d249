"""Report a Stripe ping receipt to the destination monitor (dependency-free: Python standard library only).

Call ``report_ping_receipt(event)`` from your webhook handler after you verified Stripe's signature, for
events of type ``v2.core.event_destination.ping``. It signs the request with SigV4 using the usual AWS
environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) and MONITOR_API_URL
(the stack's ApiUrl output). The caller needs execute-api:Invoke on POST /receipts.
"""

import datetime
import hashlib
import hmac
import json
import os
import urllib.parse
import urllib.request
from typing import Any


def report_ping_receipt(
    event: dict[str, Any], api_url: str | None = None, region: str | None = None
) -> dict[str, Any]:
    """``event`` is the verified thin event Stripe sent you."""
    body = json.dumps(
        {
            "event_id": event["id"],
            "destination_id": event["related_object"]["id"],
            "received_at": datetime.datetime.now(datetime.UTC).isoformat(),
        }
    ).encode()
    url = (api_url or os.environ["MONITOR_API_URL"]).rstrip("/") + "/receipts"
    if not url.startswith(("https://", "http://127.0.0.1")):
        raise ValueError("MONITOR_API_URL must be an https:// URL")
    region = region or os.environ.get("AWS_REGION") or os.environ["AWS_DEFAULT_REGION"]
    headers = _sigv4_headers("POST", url, body, region)
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310 (checked)
    with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
        answer_body: dict[str, Any] = json.loads(answer.read())
        return answer_body


def _sigv4_headers(method: str, url: str, body: bytes, region: str) -> dict[str, str]:
    access_key, secret_key = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    token = os.environ.get("AWS_SESSION_TOKEN")
    now = datetime.datetime.now(datetime.UTC)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    parts = urllib.parse.urlsplit(url)
    headers = {"content-type": "application/json", "host": parts.netloc, "x-amz-date": amz_date}
    if token:
        headers["x-amz-security-token"] = token
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            method,
            urllib.parse.quote(parts.path or "/", safe="/-_.~"),
            parts.query,
            "".join(f"{name}:{headers[name]}\n" for name in sorted(headers)),
            signed,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{day}/{region}/execute-api/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret_key}".encode()
    for part in (day, region, "execute-api", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    return headers
