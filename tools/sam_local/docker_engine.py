"""A Docker engine for ``sam local`` that keeps everything on 127.0.0.1, and the command that runs sam on it.

The pieces (this module re-exports their public names):

``engine.DockerEngine``
    A private ``dockerd`` (no bridge, no iptables/ip-forward/masquerade changes), or an already running
    engine; on exit it removes its containers, stops what it started and checks the host for leftovers.
``proxy.HostNetworkProxy``
    A Docker-API proxy on a unix socket that puts every container sam creates on the host network.
``host``
    What an engine could leave behind on the machine, and the processes it starts.

Both raise ``DockerUnavailableError`` (with a human-readable ``reason``) when Docker cannot be used here, so
that fixtures can skip with that reason instead of passing silently.

This module adds ``sam_environment`` (an environment in which sam itself stays on 127.0.0.1) and the
command line: ``python -m tools.sam_local.docker_engine -- <sam command>``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tools.sam_local.engine import MODE_ENV_VAR, DockerEngine, EngineMode
from tools.sam_local.host import (
    DockerUnavailableError,
    HostNetworkState,
    default_cache_dir,
    free_loopback_port,
    host_network_state,
    mount_points,
    pid_alive,
    pids_mentioning,
    terminate_pid,
    unmount_under,
)
from tools.sam_local.lambda_image import ensure_lambda_image
from tools.sam_local.proxy import ENGINE_LABEL, RUN_LABEL, HostNetworkProxy, rewrite_container_create

__all__ = [
    "ENGINE_LABEL",
    "MODE_ENV_VAR",
    "RUN_LABEL",
    "DockerEngine",
    "DockerUnavailableError",
    "EngineMode",
    "HostNetworkProxy",
    "HostNetworkState",
    "default_cache_dir",
    "free_loopback_port",
    "host_network_state",
    "main",
    "mount_points",
    "pid_alive",
    "pids_mentioning",
    "rewrite_container_create",
    "sam_environment",
    "terminate_pid",
    "unmount_under",
]


# --------------------------------------------------------------------------------------------------------
# The environment for the sam process.


def sam_environment(workdir: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment for ``sam`` in which nothing it does leaves 127.0.0.1 (``DOCKER_HOST`` not set).

    * its own config dir (``__SAM_CLI_APP_DIR``) saying "version checked just now, no telemetry": sam
      would otherwise ask PyPI for a newer version once a week;
    * an empty ``DOCKER_CONFIG``, so no proxy settings from ``~/.docker/config.json`` reach containers;
    * ``sam local`` asks STS for the account id before every run. Fake credentials, no profile, no
      instance metadata, and all AWS endpoints of the sam process on a closed loopback port make that fail
      at once ("No current session found") without reaching AWS. sam passes these fake credentials and
      the region into the Lambda container (and nothing else of this environment).
    """
    source = dict(os.environ if base is None else base)
    dropped = ("DOCKER_", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL")
    env = {key: value for key, value in source.items() if not key.startswith(dropped)}
    app_dir = workdir / "sam-app-dir"
    app_dir.mkdir(parents=True, exist_ok=True)
    metadata = {"lastVersionCheck": time.time(), "telemetryEnabled": False}
    (app_dir / "metadata.json").write_text(json.dumps(metadata))
    (workdir / "docker-config").mkdir(exist_ok=True)
    no_proxy = ",".join(p for p in (source.get("NO_PROXY", ""), "127.0.0.1,localhost") if p)
    env.update(
        {
            "SAM_CLI_TELEMETRY": "0",
            "__SAM_CLI_APP_DIR": str(app_dir),
            "DOCKER_CONFIG": str(workdir / "docker-config"),
            "NO_PROXY": no_proxy,
            "no_proxy": no_proxy,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": source.get("AWS_DEFAULT_REGION") or source.get("AWS_REGION") or "us-east-1",
            "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "no-aws-credentials"),
            "AWS_CONFIG_FILE": str(workdir / "no-aws-config"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_loopback_port()}",
            "AWS_MAX_ATTEMPTS": "1",
        }
    )
    return env


# --------------------------------------------------------------------------------------------------------
# Command line: run sam (or anything) against the engine, through the proxy.

USAGE_EXAMPLE = """\
example (stand-ins on 127.0.0.1 as in events/env.local.json):
  .venv/bin/python -m tools.sam_local.docker_engine --env AWS_ENDPOINT_URL=http://127.0.0.1:5001 -- \\
    .venv-tools/bin/sam local invoke PingFunction -e events/api_ping.json --env-vars events/env.local.json \\
    --parameter-overrides Architecture=x86_64 --invoke-image {image} --skip-pull-image \\
    --container-host 127.0.0.1
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.sam_local.docker_engine",
        description=(
            "Run COMMAND with DOCKER_HOST set to a proxy that puts sam's Lambda containers on the host "
            "network (so they reach stand-ins on 127.0.0.1), in an environment where sam itself stays on "
            "127.0.0.1. Uses a running Docker engine, or starts a private dockerd and stops it afterwards. "
            "'{image}' in COMMAND becomes the Lambda image for --invoke-image (built on first use)."
        ),
        epilog=USAGE_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--engine", choices=["auto", "own", "existing"], help=f"default: ${MODE_ENV_VAR} or auto"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="add to the Lambda container's environment, whatever the template declares (repeatable)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    command: list[str] = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no COMMAND given")
    if any("=" not in item for item in args.env):
        parser.error("--env takes KEY=VALUE")
    extra_env = dict(item.split("=", 1) for item in args.env)
    try:
        with DockerEngine(mode=args.engine) as engine:
            if any("{image}" in arg for arg in command):
                image = ensure_lambda_image(engine)
                command = [arg.replace("{image}", image) for arg in command]
            assert engine.runtime_dir is not None
            with engine.host_network_proxy(extra_env=extra_env) as proxy:
                env = sam_environment(engine.runtime_dir / "sam")
                env["DOCKER_HOST"] = proxy.docker_host
                process = subprocess.Popen(command, env=env)
                try:
                    return process.wait()
                except KeyboardInterrupt:  # the terminal sent SIGINT to COMMAND too: let it finish
                    return process.wait()
    except DockerUnavailableError as exc:
        print(f"error: Docker is not usable here: {exc.reason}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
