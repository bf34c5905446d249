"""``stripe-monitor``'s arguments, and its exit codes: 0 all well, 1 the answer is bad (a destination down,
a ping failed), 2 a usage error, 3 no answer (credentials, access, stack, network, unknown destination)."""

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from tools.cli.api import MonitorApi

PROG = "stripe-monitor"
MAX_WAIT = 25  # the API's limit for ?wait=
MAX_LIMIT = 1000
EPILOG = """\
The API: --api-url, else the ApiUrl output of --stack, else of the stack samconfig.toml names for
--config-env (default: "default", the dev stack). Requests are SigV4-signed with the standard AWS
credential chain (AWS_PROFILE or --profile, environment variables, SSO, instance roles); the caller needs
execute-api:Invoke on the API, and cloudformation:DescribeStacks to find it by stack.

exit codes: 0 all well; 1 the answer is bad (a destination is down, a ping failed or was not delivered);
2 usage error; 3 no answer (no credentials, access denied, stack not found, unknown destination, ...).

examples:
  stripe-monitor status                          the dev stack of samconfig.toml
  stripe-monitor --config-env prod status --json
  stripe-monitor ping ed_61Abc --wait 20         exit code says whether it arrived
  stripe-monitor mute ed_61Abc --for 2h
  stripe-monitor --api-url http://127.0.0.1:3000 status   the local stack (run_local --serve)
"""
EXIT_ERROR = 3  # tools.cli.api's, kept here so that --help and usage errors import nothing heavy
Command = Callable[["MonitorApi", argparse.Namespace, TextIO], int]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog=PROG,
        description="Operate a deployed Stripe destination monitor: health, pings, history, mutes.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--api-url", metavar="URL", help="the API's base URL (the stack's ApiUrl output)")
    top.add_argument("--stack", metavar="NAME", help="find the API URL in this CloudFormation stack")
    top.add_argument("--config-env", default="default", metavar="ENV", help="samconfig.toml environment")
    top.add_argument("--samconfig", type=Path, metavar="PATH", help="default: ./samconfig.toml, else ours")
    top.add_argument("--region", help="AWS region (default: the stack's in samconfig.toml, or AWS_REGION)")
    top.add_argument("--profile", help="AWS profile (default: AWS_PROFILE, or the default chain)")
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, parents=[output])

    command("status", "every destination's health; exit 1 if any is down")
    ping = command("ping", "ping a destination now; exit 1 if it failed")
    ping.add_argument("destination_id", metavar="ID")
    ping.add_argument(
        "--wait",
        type=_bounded(1, MAX_WAIT),
        metavar="N",
        help=f"wait up to N seconds (1-{MAX_WAIT}) for the delivery receipt; exit 1 if none came",
    )
    for name, help in (
        ("history", "a destination's checks, newest first"),
        ("transitions", "a destination's health changes, newest first"),
    ):
        listing = command(name, help)
        listing.add_argument("destination_id", metavar="ID")
        listing.add_argument(
            "--limit", type=_bounded(1, MAX_LIMIT), default=20, metavar="N", help="default 20"
        )
    mute = command("mute", "no alerts for a destination until a time (checks go on)")
    mute.add_argument("destination_id", metavar="ID")
    when = mute.add_mutually_exclusive_group(required=True)
    when.add_argument("--until", type=_typed(parse_until), metavar="TIME", help="ISO-8601; UTC if no zone")
    span = _typed(parse_duration)
    when.add_argument("--for", dest="duration", type=span, metavar="SPAN", help="e.g. 90m, 2h, 7d")
    unmute = command("unmute", "alert a destination's health changes again")
    unmute.add_argument("destination_id", metavar="ID")
    return top


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = parser().parse_args(argv)
    stdout = out or sys.stdout
    from tools.cli import commands  # botocore and all: only once the arguments are right
    from tools.cli.api import CliError, MonitorApi
    from tools.cli.locate import find_target

    try:
        target = find_target(
            api_url=args.api_url,
            stack=args.stack,
            config_env=args.config_env,
            samconfig=args.samconfig,
            region=args.region,
            profile=args.profile,
        )
        run: Command = getattr(commands, args.command)
        return run(MonitorApi(target.url, target.region, target.credentials), args, stdout)
    except CliError as exc:
        stdout.flush()
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `stripe-monitor status --json | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def parse_duration(text: str) -> timedelta:
    """``90m``, ``2h``, ``1h30m``, ``7d``: a positive duration; ValueError otherwise."""
    units = {"d": 86_400, "h": 3600, "m": 60, "s": 1}
    total, number = 0, ""
    for char in text.strip().lower():
        if char.isascii() and char.isdigit():
            number += char
        elif char in units and number:
            total, number = total + int(number) * units[char], ""
        else:
            raise ValueError(f"not a duration: {text!r} (e.g. 90m, 2h, 1h30m, 7d)")
    if number or total <= 0:
        raise ValueError(f"not a duration: {text!r} (e.g. 90m, 2h, 1h30m, 7d)")
    return timedelta(seconds=total)


def parse_until(text: str) -> datetime:
    """An ISO-8601 time; one without a zone is UTC."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not an ISO-8601 time: {text!r} (e.g. 2026-12-24T09:00Z)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _bounded(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}")
        return int(text)

    return parse


def _typed(parse: Callable[[str], object]) -> Callable[[str], object]:
    def checked(text: str) -> object:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return checked


if __name__ == "__main__":
    sys.exit(main())
