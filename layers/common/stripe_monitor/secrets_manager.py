"""The only module that reads Secrets Manager: the Stripe secret key and the webhook signing secrets, through
Powertools Parameters (cached per execution environment). Raises ``ConfigError`` naming the problem; a
secret's value never appears in it."""

import json
import re

import boto3
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

from stripe_monitor.errors import ConfigError, InvalidDestinationIdError
from stripe_monitor.model.ids import validate_destination_id
from stripe_monitor.model.receipt import SigningSecrets
from stripe_monitor.redaction import remember_secret

SECRET_CACHE_SECONDS = 300
_SEPARATORS = re.compile(r"[\s,]+")


def get_stripe_api_key(secret_id: str, *, force_fetch: bool = False) -> str:
    """The key, from a plain-string secret or a JSON secret with an ``api_key`` field."""
    text = _read(secret_id, force_fetch, what="secret")
    key = _key_from_secret_text(text)
    if not key.startswith(("sk_", "rk_")) or any(ch.isspace() for ch in key):
        raise ConfigError(f"secret {secret_id!r} does not hold a Stripe secret key (sk_... or rk_...)")
    remember_secret(key)
    if key.startswith("sk_org_"):
        raise ConfigError(
            "organization keys (sk_org_...) need a Stripe-Context header on every request, which the monitor"
            " does not send yet: use a secret key of the account"
        )
    return key


def get_signing_secrets(secret_id: str, *, force_fetch: bool = False) -> SigningSecrets:
    """The secret holds the secrets separated by commas or whitespace, or a JSON object: each destination's
    own, ``{"ed_...": ["whsec_...", ...], ...}``, and ``"signing_secrets": [...]`` for any other."""
    text = _read(secret_id, force_fetch, what="webhook signing secret")
    if not text.startswith("{"):
        return SigningSecrets(shared=_whsec_values(_SEPARATORS.split(text)))
    try:
        document = json.loads(text)
    except ValueError:
        raise ConfigError("webhook signing secret looks like JSON but cannot be parsed") from None
    if not isinstance(document, dict):
        raise ConfigError("webhook signing secret JSON must be an object")
    shared: tuple[str, ...] = ()
    by_destination: dict[str, tuple[str, ...]] = {}
    for name, values in document.items():
        listed = [values] if isinstance(values, str) else values
        if not isinstance(listed, list):
            raise ConfigError(f"webhook signing secret JSON: {name!r} needs a list of whsec_... values")
        if name == "signing_secrets":
            shared = _whsec_values(listed)
        else:
            try:
                by_destination[validate_destination_id(name)] = _whsec_values(listed)
            except InvalidDestinationIdError:
                raise ConfigError(
                    "webhook signing secret JSON: keys are destination ids (ed_...) or 'signing_secrets'"
                ) from None
    if not shared and not by_destination:
        raise ConfigError("webhook signing secret JSON holds no secret")
    return SigningSecrets(shared=shared, by_destination=by_destination)


def _whsec_values(values: list[object]) -> tuple[str, ...]:
    found = tuple(v for v in values if v)
    if not found or not all(isinstance(v, str) and v.startswith("whsec_") for v in found):
        raise ConfigError("webhook signing secrets must be whsec_... values")
    for value in found:
        remember_secret(str(value))
    return tuple(str(v) for v in found)


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
