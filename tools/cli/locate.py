"""Where the monitor's API is, which region to sign for, and the AWS credentials to sign with.

The API URL comes from ``--api-url``; else from the ``ApiUrl`` output of the stack named by ``--stack``;
else of the stack that ``samconfig.toml`` names for ``--config-env`` (the file in the current folder, or
the project's). Credentials and the region come from botocore's standard chain (environment, profiles,
SSO, container and instance roles); ``--profile`` and ``--region`` choose.
"""

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound

from tools.cli.api import CliError

PROJECT_SAMCONFIG = Path(__file__).resolve().parents[2] / "samconfig.toml"
DEFAULT_REGION = "us-east-1"
_EXECUTE_API_HOST = re.compile(r"^https://[^/]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?(/|$)")
NO_CREDENTIALS = (
    "no AWS credentials found: set AWS_PROFILE (or pass --profile), export AWS_ACCESS_KEY_ID and"
    " AWS_SECRET_ACCESS_KEY, or run 'aws configure' / 'aws sso login'"
)


@dataclass(frozen=True)
class Target:
    url: str
    region: str
    credentials: Any  # botocore's frozen credentials: access_key, secret_key, token


@dataclass(frozen=True)
class StackRef:
    name: str
    region: str | None
    source: str  # where the name came from, for messages
    profile: str | None = None  # samconfig.toml's, if it names one


def find_target(
    *,
    api_url: str | None,
    stack: str | None,
    config_env: str,
    samconfig: Path | None,
    region: str | None,
    profile: str | None,
) -> Target:
    session = _session(profile)
    credentials = load_credentials(session, profile)
    if api_url:
        url = api_url.rstrip("/")
        found = _EXECUTE_API_HOST.match(url)
        signing_region = region or (found.group(1) if found else None) or _region(session) or DEFAULT_REGION
        return Target(url, signing_region, credentials)
    ref = StackRef(stack, None, "--stack") if stack else stack_from_samconfig(samconfig, config_env)
    stack_region = region or ref.region or _region(session)
    if not stack_region:
        raise CliError(f"no AWS region for stack {ref.name}: pass --region or set AWS_DEFAULT_REGION")
    return Target(stack_api_url(session, ref, stack_region), stack_region, credentials)


def stack_from_samconfig(path: Path | None, config_env: str) -> StackRef:
    """The stack name and region ``samconfig.toml`` gives ``config_env`` (deploy's, else global's)."""
    if path is None:
        local = Path.cwd() / "samconfig.toml"
        path = local if local.is_file() else PROJECT_SAMCONFIG
    if not path.is_file():
        raise CliError(f"no API to talk to: pass --api-url URL or --stack NAME ({path} does not exist)")
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from None
    environments = sorted(k for k, v in config.items() if isinstance(v, dict))
    if config_env not in environments:
        raise CliError(f"{path} has no [{config_env}] environment (it has: {', '.join(environments)})")
    found: dict[str, Any] = {}
    for command in ("global", "deploy"):  # deploy's parameters win, as in sam itself
        section = config[config_env].get(command, {}).get("parameters", {})
        found |= {
            k: section[k] for k in ("stack_name", "region", "profile") if isinstance(section.get(k), str)
        }
    if "stack_name" not in found:
        raise CliError(f"{path} names no stack_name for [{config_env}]: pass --stack NAME or --api-url URL")
    return StackRef(
        found["stack_name"], found.get("region"), f"{path.name} [{config_env}]", found.get("profile")
    )


def stack_api_url(session: Any, ref: StackRef, region: str) -> str:
    """The stack's ``ApiUrl`` output, from CloudFormation."""
    try:
        client = session.create_client("cloudformation", region_name=region)
        stacks = client.describe_stacks(StackName=ref.name)["Stacks"]
    except NoCredentialsError:
        raise CliError(NO_CREDENTIALS) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", ""), error.get("Message", "")
        if code == "ValidationError" and "does not exist" in message:
            raise CliError(
                f"stack {ref.name} ({ref.source}) not found in {region}: deploy it with 'make deploy',"
                " or pass --stack, --region or --api-url"
            ) from None
        if "AccessDenied" in code or "not authorized" in message:
            raise CliError(
                f"access denied: these AWS credentials are not allowed cloudformation:DescribeStacks on"
                f" stack {ref.name} in {region} (grant it, or pass --api-url)"
            ) from None
        raise CliError(f"CloudFormation could not describe stack {ref.name}: {code}: {message}") from None
    except BotoCoreError as exc:
        raise CliError(f"could not ask CloudFormation for stack {ref.name} in {region}: {exc}") from None
    outputs = {o.get("OutputKey"): o.get("OutputValue") for o in stacks[0].get("Outputs", [])}
    url = outputs.get("ApiUrl")
    if not isinstance(url, str) or not url:
        status = stacks[0].get("StackStatus", "unknown")
        raise CliError(f"stack {ref.name} has no ApiUrl output (status {status}): is it the monitor's stack?")
    return url


def _session(profile: str | None) -> Any:
    try:
        return botocore.session.Session(profile=profile)
    except BotoCoreError as exc:
        raise CliError(f"AWS configuration could not be read: {exc}") from None


def load_credentials(session: Any, profile: str | None) -> Any:
    try:
        credentials = session.get_credentials()
        frozen = credentials.get_frozen_credentials() if credentials is not None else None
    except ProfileNotFound:
        raise CliError(
            f"AWS profile {profile or session.profile!r} not found in ~/.aws/config or ~/.aws/credentials"
        ) from None
    except BotoCoreError as exc:
        raise CliError(f"AWS credentials could not be loaded: {exc}") from None
    if frozen is None or not frozen.access_key or not frozen.secret_key:
        raise CliError(NO_CREDENTIALS)
    return frozen


def _region(session: Any) -> str | None:
    """The profile's or AWS_DEFAULT_REGION (botocore's), else AWS_REGION (what Lambda and other SDKs set)."""
    try:
        region = session.get_config_variable("region")
    except BotoCoreError:
        region = None
    return region if isinstance(region, str) and region else os.environ.get("AWS_REGION") or None
