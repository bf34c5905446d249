"""The one place that creates the Powertools Logger, Tracer and Metrics (names come from the environment)."""

import json
import logging
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

from stripe_monitor.redaction import scrub


def _scrubbed_json(log: Any) -> str:
    # The last net for secrets: every log line, whatever it carries, is scrubbed as a whole.
    return scrub(json.dumps(log, default=str, separators=(",", ":")))


logger = Logger(json_serializer=_scrubbed_json)
# Patch only what the monitor calls, boto3 (botocore) and urllib3 (httplib): patching all costs cold start.
tracer = Tracer(patch_modules=("botocore", "httplib"))
metrics = Metrics()

# botocore's DEBUG log prints response bodies, GetSecretValue's included (the Stripe key). Lambda turns the
# root logger to DEBUG when the function's log level is DEBUG, so botocore is held at INFO whatever it is.
logging.getLogger("botocore").setLevel(logging.INFO)
