"""``make deploy``: build for the architecture the stack runs on, then deploy, with the project's own SAM CLI
(``.venv-tools``) and Python 3.13 first on PATH (the makefile builds run ``python3.13``); says what it does.

The first deploy of a samconfig.toml environment is guided (``sam deploy --guided`` asks for the
parameters, with samconfig.toml's as defaults, and offers to save the answers); "first" means that
CloudFormation has no stack of the name samconfig.toml gives that environment, in its region. Later
deploys run ``sam deploy --config-env ENV``. ``--guided``/``--no-guided`` (GUIDED=1/0) decide instead.

    python -m tools.deploy [--config-env prod] [--schedule DISABLED] [--guided|--no-guided] [--dry-run]
"""

import argparse
import os
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

import botocore.session
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from tools.cli.api import CliError
from tools.cli.locate import NO_CREDENTIALS, PROJECT_SAMCONFIG, load_credentials, stack_from_samconfig
from tools.standins.template import load_template

ROOT = Path(__file__).resolve().parents[1]
SAM = ROOT / ".venv-tools" / "bin" / "sam"


def parameter_overrides(samconfig: Path, config_env: str) -> str:
    """The environment's ``deploy`` ``parameter_overrides``, as samconfig.toml writes them."""
    config = tomllib.loads(samconfig.read_text(encoding="utf-8"))
    value = config.get(config_env, {}).get("deploy", {}).get("parameters", {}).get("parameter_overrides", "")
    return value if isinstance(value, str) else " ".join(str(v) for v in value)


def overrides_dict(overrides: str) -> dict[str, str]:
    """``Key="Value" Other=Value`` -> {"Key": "Value", "Other": "Value"}."""
    return dict(token.split("=", 1) for token in shlex.split(overrides) if "=" in token)


def stack_exists(name: str, region: str, profile: str | None) -> bool:
    session = botocore.session.Session(profile=profile)
    load_credentials(session, profile)  # one clear line when there are none
    try:
        client = session.create_client("cloudformation", region_name=region)
        client.describe_stacks(StackName=name)
    except NoCredentialsError:
        raise CliError(NO_CREDENTIALS) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ValidationError" and "does not exist" in error.get("Message", ""):
            return False
        reason = f"{error.get('Code')}: {error.get('Message')}"
        raise CliError(
            f"cannot tell whether stack {name} exists in {region} ({reason});"
            " say GUIDED=1 for a first deploy or GUIDED=0 for a later one"
        ) from None
    except BotoCoreError as exc:
        raise CliError(f"could not ask CloudFormation about stack {name} in {region}: {exc}") from None
    return True


def python313_dir() -> str:
    found = subprocess.run(
        [str(ROOT / "tools" / "find-python313")], capture_output=True, text=True, check=False
    )
    if found.returncode != 0:
        raise CliError(found.stderr.strip() or "Python 3.13 not found")
    return str(Path(found.stdout.strip()).parent)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make deploy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-env", default="default", help="samconfig.toml environment (ENV=)")
    parser.add_argument(
        "--schedule", choices=("ENABLED", "DISABLED"), help="override ScheduleState (SCHEDULE=)"
    )
    parser.add_argument("--guided", action=argparse.BooleanOptionalAction, help="default: when no stack yet")
    parser.add_argument("--dry-run", action="store_true", help="say what would run, run nothing")
    parser.add_argument("--samconfig", type=Path, default=PROJECT_SAMCONFIG, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        return deploy(args)
    except CliError as exc:
        print(f"make deploy: {exc}", file=sys.stderr)
        return 1


def deploy(args: argparse.Namespace) -> int:
    env, samconfig = args.config_env, args.samconfig
    stack = stack_from_samconfig(samconfig, env)
    region = stack.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise CliError(f"samconfig.toml [{env}] names no region: add one, or set AWS_REGION")
    overrides = parameter_overrides(samconfig, env)
    values = overrides_dict(overrides)
    template_default = load_template()["Parameters"]["Architecture"]["Default"]
    architecture = values.get("Architecture", template_default)
    schedule = args.schedule or values.get("ScheduleState") or "ENABLED (the template's default)"
    say(f"Deploying stack {stack.name} ({samconfig.name} [{env}]) to {region}:")
    where = "samconfig.toml" if "Architecture" in values else "template.yaml's default"
    say(f"  architecture {architecture} ({where}): the build's wheels and bytecode are for it")
    note = (
        " for this deploy: the next 'make deploy' without it returns to samconfig.toml's"
        if args.schedule
        else ""
    )
    say(f"  scheduled checks: {schedule}{note}")
    guided = args.guided
    if guided is None:
        profile = os.environ.get("AWS_PROFILE") or stack.profile
        guided = not stack_exists(stack.name, region, profile)
        say(
            "  no such stack yet: this first deploy is guided (sam asks for the parameters; say Y to saving"
            " them so that later deploys are not)"
            if guided
            else "  the stack exists: sam shows the change set and asks before it applies it"
        )
    python_dir = python313_dir()
    tool_path = f"{python_dir}{os.pathsep}{SAM.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    say(f"  PATH starts with {python_dir} (python3.13, for the makefile builds) and .venv-tools/bin (sam)")
    build = [str(SAM), "build", "--config-env", env, "--parameter-overrides", f"Architecture={architecture}"]
    deploy_command = [str(SAM), "deploy", "--config-env", env, *(["--guided"] if guided else [])]
    if args.schedule:
        merged = f'{overrides} ScheduleState="{args.schedule}"'.strip()
        deploy_command += ["--parameter-overrides", merged]
    for command in (build, deploy_command):
        say(f"$ {shlex.join(command).replace(str(ROOT) + '/', '')}")
        if args.dry_run:
            continue
        done = subprocess.run(
            command, cwd=ROOT, env=os.environ | {"PATH": tool_path, "SAM_CLI_TELEMETRY": "0"}, check=False
        )
        if done.returncode != 0:
            return done.returncode
    return 0


def say(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
