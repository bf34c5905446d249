"""The only module that reads Secrets Manager: the Stripe secret key and the webhook signing secrets, through
Powertools Parameters (cached per execution environment). Raises ``ConfigError`` naming the problem; a
secret's value never appears in it."""

import json
import re

import boto3
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

from stripe_monitor.errors import ConfigError

SECRET_CACHE_SECONDS = 300
_SEPARATORS = re.compile(r"[\s,]+")


def get_stripe_api_key(secret_id: str, *, force_fetch: bool = False) -> str:
    """The key, from a plain-string secret or a JSON secret with an ``api_key`` field."""
    text = _read(secret_id, force_fetch, what="secret")
    key = _key_from_secret_text(text)
    if not key.startswith(("sk_", "rk_")) or any(ch.isspace() for ch in key):
        raise ConfigError(f"secret {secret_id!r} does not hold a Stripe secret key (sk_... or rk_...)")
    return key


def get_signing_secrets(secret_id: str, *, force_fetch: bool = False) -> list[str]:
    """The secret holds ``{"signing_secrets": ["whsec_...", ...]}`` or the secrets separated by commas or
    whitespace (several while one is rolled)."""
    text = _read(secret_id, force_fetch, what="webhook signing secret")
    if text.startswith("{"):
        try:
            values = json.loads(text).get("signing_secrets")
        except (ValueError, AttributeError):
            values = None
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ConfigError("webhook signing secret JSON needs a 'signing_secrets' list of strings")
    else:
        values = [v for v in _SEPARATORS.split(text) if v]
    if not values or not all(v.startswith("whsec_") for v in values):
        raise ConfigError("webhook signing secrets must be whsec_... values")
    return values


def _read(secret_id: str, force_fetch: bool, *, what: str) -> str:
    _share_boto3_session()
    try:
        raw = parameters.get_secret(secret_id, max_age=SECRET_CACHE_SECONDS, force_fetch=force_fetch)
    except parameters.exceptions.GetParameterError as exc:
        raise ConfigError(f"cannot read {what} {secret_id!r}: {_aws_error_code(exc)}") from None
    return (raw.decode() if isinstance(raw, bytes) else str(raw)).strip()


def _share_boto3_session() -> None:
    """Make ``parameters.get_secret`` use boto3's default session, as the other clients do.

    Powertools' own default provider opens a session of its own: a second botocore loader, endpoint
    resolver and credential chain, ~20 ms and ~9 MiB more at cold start (docs/performance.md). Registered
    as Powertools' default provider, ``parameters.clear_caches()`` still resets it.
    """
    if "secrets" not in DEFAULT_PROVIDERS:
        DEFAULT_PROVIDERS["secrets"] = parameters.SecretsProvider(boto3_client=boto3.client("secretsmanager"))


def _key_from_secret_text(text: str) -> str:
    if not text.startswith("{"):
        return text
    try:
        document = json.loads(text)
    except ValueError:
        raise ConfigError("secret looks like JSON but cannot be parsed") from None
    key = document.get("api_key") if isinstance(document, dict) else None
    if not isinstance(key, str):
        raise ConfigError("secret is JSON without a string 'api_key' field")
    return key


def _aws_error_code(exc: Exception) -> str:
    # GetParameterError wraps botocore's ClientError; its code (e.g. ResourceNotFoundException) says enough.
    cause = exc.__cause__ or exc.__context__
    response = getattr(cause, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "error"))
    return type(cause or exc).__name__
