"""Reads the webhook signing secrets (``whsec_...``, several while one is rolled) from Secrets Manager."""

import json
import re

from aws_lambda_powertools.utilities import parameters

from stripe_monitor.settings import ConfigError
from stripe_monitor.stripe_key import share_boto3_session

SECRET_CACHE_SECONDS = 300
_SEPARATORS = re.compile(r"[\s,]+")


def get_signing_secrets(secret_id: str, *, force_fetch: bool = False) -> list[str]:
    """The secret holds ``{"signing_secrets": ["whsec_...", ...]}`` or the secrets separated by commas or
    whitespace. Raises ``ConfigError`` (never with a secret in it)."""
    share_boto3_session()
    try:
        raw = parameters.get_secret(secret_id, max_age=SECRET_CACHE_SECONDS, force_fetch=force_fetch)
    except parameters.exceptions.GetParameterError:
        raise ConfigError(f"cannot read the webhook signing secret {secret_id!r}") from None
    text = (raw.decode() if isinstance(raw, bytes) else str(raw)).strip()
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
