"""The one place that creates the Powertools Logger, Tracer and Metrics (names come from the environment)."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
# Patch only what the monitor calls, boto3 (botocore) and urllib3 (httplib): patching all costs cold start.
tracer = Tracer(patch_modules=("botocore", "httplib"))
metrics = Metrics()
