"""Fixtures for the ``sam local`` tests, and ``SamLocal``, the runner they use.

* ``docker_engine`` (session): a ``DockerEngine`` (private ``dockerd``, no bridge, no iptables), stopped at
  the end of the session, pass or fail; teardown fails if it left a bridge, iptables rule or mount behind.
* ``lambda_image`` (session): the image for ``--invoke-image`` (the official one, or the Debian stand-in).
* ``sam_local`` (session): a ``SamLocal`` bound to both.

When Docker cannot be used here the tests are *skipped with the reason* (``pytest -ra`` prints it); set
``STRIPE_MONITOR_REQUIRE_DOCKER=1`` to make that a failure instead.

Typical use, e.g. for the real ``PingFunction`` (``sam_build`` comes from tests/conftest.py)::

    result = sam_local.invoke(
        "PingFunction",
        template=sam_build / "template.yaml",
        event=EVENTS / "invoke.json",
        env_vars=EVENTS / "env.local.json",
        container_env={"AWS_ENDPOINT_URL": aws.endpoint_url},  # not declared in the template: see below
        parameter_overrides={"Architecture": "x86_64"},
    )
    assert result.check().payload == {...}

    with sam_local.start_api(template=..., env_vars=..., container_env=..., parameter_overrides=...) as api:
        response = api.get("/ping")
        assert response.status == 200, response.text

``env_vars`` reaches only variables that the template declares (sam's rule). ``container_env`` is added
to the Lambda container by the Docker proxy, so it reaches the function whatever the template declares.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Self

import pytest

from tools.sam_local.docker_engine import (
    DockerEngine,
    DockerUnavailableError,
    HostNetworkProxy,
    free_loopback_port,
    sam_environment,
)
from tools.sam_local.lambda_image import LambdaImageUnavailableError, ensure_lambda_image, find_python313

REPO_ROOT = Path(__file__).resolve().parents[2]
SAM = REPO_ROOT / ".venv-tools" / "bin" / "sam"
REQUIRE_ENV_VAR = "STRIPE_MONITOR_REQUIRE_DOCKER"
AUDIT_LOG_ENV_VAR = "STRIPE_MONITOR_NET_AUDIT_LOG"

# Loaded into the sam process (as sitecustomize) for local commands: records every DNS lookup of, and
# every connection to, an address that is not loopback, so the tests can prove nothing left 127.0.0.1.
NETWORK_AUDIT = """\
import ipaddress
import os
import sys

_LOG = os.environ.get("STRIPE_MONITOR_NET_AUDIT_LOG")


def _loopback(host):
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _audit(event, args):
    if event == "socket.getaddrinfo":
        host = args[0]
    elif event == "socket.connect" and isinstance(args[1], tuple) and args[1]:
        host = args[1][0]
    else:
        return
    if not _loopback(host):
        with open(_LOG, "a") as log:
            log.write(f"{os.getpid()} {event} {host!r}\\n")


if _LOG:
    sys.addaudithook(_audit)
"""


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_ENV_VAR) == "1":
        pytest.fail(f"{reason} (and {REQUIRE_ENV_VAR}=1)", pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------------------------------------
# Results.


@dataclass
class SamResult:
    """A finished sam command."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> Self:
        """Raise (with sam's output) unless sam exited 0."""
        if self.returncode != 0:
            raise AssertionError(
                f"sam exited {self.returncode}: {' '.join(self.args[1:4])} ...\n"
                f"--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-5000:]}"
            )
        return self

    @property
    def payload(self) -> Any:
        """The function's response: ``sam local invoke`` prints it as the last line of stdout."""
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        if not lines:
            raise AssertionError(f"sam printed no response; stderr:\n{self.stderr[-5000:]}")
        return json.loads(lines[-1])


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RunningApi:
    """A running ``sam local start-api`` on 127.0.0.1."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    proxy: HostNetworkProxy
    engine: DockerEngine
    exit_code: int | None = None
    #: Containers of this run that sam had not removed 10 s after it exited (the runner then removes them).
    leftover_containers: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | str | Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> HttpResponse:
        sent_headers = dict(headers or {})
        if isinstance(body, Mapping):
            body = json.dumps(body)
            sent_headers.setdefault("Content-Type", "application/json")
        data = body.encode() if isinstance(body, str) else body
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=sent_headers)
            response = conn.getresponse()
            return HttpResponse(response.status, dict(response.getheaders()), response.read())
        finally:
            conn.close()

    def get(self, path: str, **kwargs: Any) -> HttpResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> HttpResponse:
        return self.request("POST", path, **kwargs)

    def container_ids(self) -> list[str]:
        """This run's containers (with ``--warm-containers EAGER``: one per function, from the start)."""
        return self.engine.containers(self.proxy.run_id)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


# --------------------------------------------------------------------------------------------------------
# The runner.


class SamLocal:
    """Runs ``sam build`` / ``sam local invoke`` / ``sam local start-api`` against a ``DockerEngine``.

    Every local command gets ``--invoke-image IMAGE --skip-pull-image --docker-network host
    --container-host 127.0.0.1`` and runs with ``DOCKER_HOST`` set to a fresh ``HostNetworkProxy``, so the
    Lambda container shares the host's network and reaches stand-ins on 127.0.0.1. sam runs in
    ``sam_environment`` (no version check, no telemetry, fake AWS credentials, AWS endpoints on loopback),
    and the local commands are audited: ``non_loopback_traffic()`` lists any lookup of or connection to a
    non-loopback address that the sam process made.
    """

    def __init__(self, *, sam: Path, engine: DockerEngine, image: str, workdir: Path) -> None:
        self.sam = sam
        self.engine = engine
        self.image = image
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._counter = 0
        audit_dir = workdir / "network-audit"
        audit_dir.mkdir(exist_ok=True)
        (audit_dir / "sitecustomize.py").write_text(NETWORK_AUDIT)
        self.audit_log = workdir / "network-audit.log"
        self._base_env = sam_environment(workdir)
        self._base_env["PATH"] = f"{find_python313().parent}{os.pathsep}{self._base_env.get('PATH', '')}"
        self._local_env = dict(self._base_env)
        self._local_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(audit_dir), self._base_env.get("PYTHONPATH", "")) if p
        )
        self._local_env[AUDIT_LOG_ENV_VAR] = str(self.audit_log)

    def non_loopback_traffic(self) -> list[str]:
        """DNS lookups of / connections to non-loopback addresses made by sam local so far (should be [])."""
        return self.audit_log.read_text().splitlines() if self.audit_log.exists() else []

    def _file(self, stem: str, content: Path | Mapping[str, Any] | None) -> Path | None:
        if content is None or isinstance(content, Path):
            return None if content is None else content.resolve()  # sam runs in the template's directory
        self._counter += 1
        path = self.workdir / f"{stem}-{self._counter}.json"
        path.write_text(json.dumps(content))
        return path

    def _local_args(
        self, template: Path, env_vars: Path | None, parameter_overrides: Mapping[str, str] | None
    ) -> list[str]:
        args = [
            "--template-file", str(template.resolve()),
            "--invoke-image", self.image,
            "--skip-pull-image",
            "--docker-network", "host",
            "--container-host", "127.0.0.1",
            "--container-host-interface", "127.0.0.1",
            "--layer-cache-basedir", str(self.workdir / "layer-cache"),
        ]  # fmt: skip
        if env_vars is not None:
            args += ["--env-vars", str(env_vars)]
        if parameter_overrides:
            args += ["--parameter-overrides", *(f"{k}={v}" for k, v in parameter_overrides.items())]
        return args

    def run(
        self, *args: str, docker_host: str | None = None, cwd: Path | None = None, timeout: float = 600.0
    ) -> SamResult:
        """Run ``sam ARGS`` (not checked: call ``.check()``). With ``docker_host``: audited (see above)."""
        env = dict(self._base_env)
        if docker_host:
            env = dict(self._local_env, DOCKER_HOST=docker_host)
        command = [str(self.sam), *args]
        proc = subprocess.run(
            command,
            cwd=cwd or self.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        return SamResult(command, proc.returncode, proc.stdout, proc.stderr)

    def build(
        self,
        template: Path,
        *,
        build_dir: Path | None = None,
        parameter_overrides: Mapping[str, str] | None = None,
        timeout: float = 600.0,
    ) -> Path:
        """``sam build`` (no container); returns the built template."""
        build_dir = build_dir or template.parent / ".aws-sam" / "build"
        args = ["build", "--template-file", str(template), "--build-dir", str(build_dir)]
        if parameter_overrides:
            args += ["--parameter-overrides", *(f"{k}={v}" for k, v in parameter_overrides.items())]
        self.run(*args, cwd=template.parent, timeout=timeout).check()
        return build_dir / "template.yaml"

    def invoke(
        self,
        function_id: str,
        *,
        template: Path,
        event: Path | Mapping[str, Any] | None = None,
        env_vars: Path | Mapping[str, Any] | None = None,
        container_env: Mapping[str, str] | None = None,
        parameter_overrides: Mapping[str, str] | None = None,
        timeout: float = 300.0,
    ) -> SamResult:
        """``sam local invoke FUNCTION``; the result's ``payload`` is the function's response."""
        args = ["local", "invoke", function_id]
        args += self._local_args(template, self._file("env-vars", env_vars), parameter_overrides)
        event_file = self._file("event", event)
        if event_file is not None:
            args += ["--event", str(event_file)]
        with self.engine.host_network_proxy(extra_env=container_env) as proxy:
            return self.run(*args, docker_host=proxy.docker_host, cwd=template.parent, timeout=timeout)

    @contextlib.contextmanager
    def start_api(
        self,
        *,
        template: Path,
        env_vars: Path | Mapping[str, Any] | None = None,
        container_env: Mapping[str, str] | None = None,
        parameter_overrides: Mapping[str, str] | None = None,
        warm_containers: str = "EAGER",
        port: int | None = None,
        startup_timeout: float = 180.0,
        stop_timeout: float = 60.0,
    ) -> Iterator[RunningApi]:
        """Run ``sam local start-api`` on 127.0.0.1 until the block ends; stop it (its process group) after.

        On exit, ``api.exit_code`` is sam's exit code and ``api.leftover_containers`` what sam had not
        removed itself (removed then by the runner).
        """
        port = port or free_loopback_port()
        args = ["local", "start-api", "--host", "127.0.0.1", "--port", str(port)]
        args += ["--warm-containers", warm_containers]
        args += self._local_args(template, self._file("env-vars", env_vars), parameter_overrides)
        self._counter += 1
        log_path = self.workdir / f"start-api-{self._counter}.log"
        with self.engine.host_network_proxy(extra_env=container_env) as proxy:
            env = dict(self._local_env, DOCKER_HOST=proxy.docker_host)
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    [str(self.sam), *args],
                    cwd=template.parent,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            api = RunningApi(port=port, process=process, log_path=log_path, proxy=proxy, engine=self.engine)
            try:
                _wait_for_http(api, startup_timeout)
                yield api
            finally:
                api.exit_code = _stop_process_group(process, stop_timeout)
                api.leftover_containers = _containers_left(api, grace=10.0)
                self.engine.remove_containers(api.leftover_containers)


def _wait_for_http(api: RunningApi, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.process.poll() is not None:
            raise AssertionError(
                f"sam local start-api exited with {api.process.returncode}:\n{api.log()[-5000:]}"
            )
        try:
            api.get("/", timeout=5)  # any HTTP answer (403/404 for "/") means it is serving
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"sam local start-api did not answer within {timeout:.0f} s:\n{api.log()[-5000:]}")


def _containers_left(api: RunningApi, grace: float) -> list[str]:
    """The run's containers still there after ``grace`` seconds: sam asks Docker to remove them as it
    exits, and on a loaded machine Docker may finish that a little after sam is gone."""
    give_up = time.monotonic() + grace
    while (left := api.container_ids()) and time.monotonic() < give_up:
        time.sleep(0.2)
    return left


def _stop_process_group(process: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGINT (what Ctrl-C sends: sam then removes its containers), then SIGTERM, then SIGKILL."""
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        if process.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait)
    # Anything sam started in its group (it starts none that outlive it, but be sure).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    return process.wait(timeout=10)


# --------------------------------------------------------------------------------------------------------
# Fixtures.


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    engine = DockerEngine()
    try:
        engine.start()
    except DockerUnavailableError as exc:
        _unavailable(f"sam local tests need Docker: {exc.reason}")
    try:
        yield engine
    finally:
        engine.stop()
    assert not engine.leftovers, f"the Docker engine left traces on this machine: {engine.leftovers}"


@pytest.fixture(scope="session")
def lambda_image(docker_engine: DockerEngine) -> str:
    try:
        return ensure_lambda_image(docker_engine)
    except LambdaImageUnavailableError as exc:
        _unavailable(f"no Lambda image for sam local: {exc.reason}")


@pytest.fixture(scope="session")
def sam_local(
    docker_engine: DockerEngine, lambda_image: str, tmp_path_factory: pytest.TempPathFactory
) -> SamLocal:
    if not SAM.exists():
        pytest.fail(f"{SAM} is missing: run 'make .venv-tools/.installed'", pytrace=False)
    return SamLocal(
        sam=SAM, engine=docker_engine, image=lambda_image, workdir=tmp_path_factory.mktemp("sam-local")
    )
