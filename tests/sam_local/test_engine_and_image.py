"""Tests of the sam local infrastructure itself: the Docker proxy, the private engine, the Lambda image,
and ``sam local invoke`` / ``start-api`` with a tiny throwaway SAM app.

The tests marked ``docker`` need a Docker engine (they are skipped, with the reason, without one); the
others run anywhere.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sam_local.conftest import SamLocal
from tools.sam_local.docker_engine import (
    DockerEngine,
    DockerUnavailableError,
    HostNetworkProxy,
    host_network_state,
    pid_alive,
    pids_mentioning,
    rewrite_container_create,
)
from tools.sam_local.lambda_image import (
    OFFICIAL_IMAGE,
    StandinRecipe,
    debian_mirror,
    ensure_lambda_image,
)

# --------------------------------------------------------------------------------------------------------
# The container-create rewrite (no Docker needed).

SAM_CREATE_BODY: dict[str, Any] = {
    "Image": "repo:rapid-x86_64",
    "Entrypoint": ["/var/rapid/aws-lambda-rie", "--log-level", "error"],
    "Cmd": [],
    "Env": ["GREETING=hi", "AWS_ENDPOINT_URL=http://example.invalid"],
    "ExposedPorts": {"8080/tcp": {}},
    "Labels": {"sam.cli.container.type": "lambda"},
    "HostConfig": {
        "NetworkMode": "default",
        "PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "5123"}]},
        "Binds": ["/build/Fn:/var/task:ro,delegated"],
    },
}


def test_rewrite_puts_the_emulator_on_the_host_network_and_on_loopback() -> None:
    original = json.loads(json.dumps(SAM_CREATE_BODY))
    out = rewrite_container_create(
        SAM_CREATE_BODY,
        extra_env={"AWS_ENDPOINT_URL": "http://127.0.0.1:5001", "EXTRA": "1"},
        labels={"run": "abc"},
        free_port=lambda: 6001,
    )
    assert out["HostConfig"] == {"NetworkMode": "host", "Binds": ["/build/Fn:/var/task:ro,delegated"]}
    assert "ExposedPorts" not in out
    assert out["Entrypoint"] == [
        "/var/rapid/aws-lambda-rie",
        "--runtime-interface-emulator-address",
        "127.0.0.1:5123",  # the port sam published and will connect to
        "--runtime-api-address",
        "127.0.0.1:6001",
        "--log-level",
        "error",
    ]
    assert out["Env"] == ["GREETING=hi", "AWS_ENDPOINT_URL=http://127.0.0.1:5001", "EXTRA=1"]
    assert out["Labels"] == {"sam.cli.container.type": "lambda", "run": "abc"}
    assert original == SAM_CREATE_BODY  # the input is not modified


def test_rewrite_leaves_other_containers_entrypoints_alone() -> None:
    body = {"Image": "busybox", "Cmd": ["sleep", "1"], "HostConfig": {"PortBindings": {"80/tcp": []}}}
    out = rewrite_container_create(body)
    assert out == {"Image": "busybox", "Cmd": ["sleep", "1"], "HostConfig": {"NetworkMode": "host"}}


# --------------------------------------------------------------------------------------------------------
# The proxy's HTTP handling, against a fake Docker API on a unix socket (no Docker needed).


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(self._path)
        self.sock = sock


class _FakeDockerApi(http.server.ThreadingHTTPServer):
    address_family = socket.AF_UNIX

    def __init__(self, path: Path) -> None:
        self.received: list[tuple[str, str, bytes]] = []
        super().__init__(str(path), _FakeDockerHandler)  # type: ignore[arg-type]

    def server_bind(self) -> None:
        self.socket.bind(self.server_address)  # no getfqdn() on a unix path


class _FakeDockerHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _FakeDockerApi

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.received.append((self.command, self.path, body))
        reply = json.dumps({"path": self.path, "length": len(body)}).encode()
        self.send_response(201 if "/containers/create" in self.path else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = _answer

    def address_string(self) -> str:
        return "unix"

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_proxy_rewrites_create_and_passes_everything_else_through(tmp_path: Path) -> None:
    upstream = _FakeDockerApi(tmp_path / "docker.sock")
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        with HostNetworkProxy(
            f"unix://{tmp_path / 'docker.sock'}", tmp_path / "proxy.sock", extra_env={"X": "1"}
        ) as proxy:
            conn = _UnixHTTPConnection(str(tmp_path / "proxy.sock"))
            conn.request("GET", "/_ping")  # keep-alive: all three requests share one connection
            assert conn.getresponse().read() == b'{"path": "/_ping", "length": 0}'

            chunks = iter(
                [json.dumps(SAM_CREATE_BODY).encode()[:40], json.dumps(SAM_CREATE_BODY).encode()[40:]]
            )
            conn.request(
                "POST",
                "/v1.41/containers/create?name=x",
                body=chunks,
                headers={"Content-Type": "application/json"},
            )  # an iterable body is sent chunked
            created = conn.getresponse()
            assert created.status == 201
            assert json.loads(created.read())["path"] == "/v1.41/containers/create?name=x"

            conn.request("POST", "/v1.41/build?t=x", body=b"tar bytes" * 1000)
            assert json.loads(conn.getresponse().read()) == {"path": "/v1.41/build?t=x", "length": 9000}
            conn.close()
            assert proxy.created == 1
    finally:
        upstream.shutdown()
        upstream.server_close()

    (_, _, ping_body), (_, create_path, create_body), (_, _, build_body) = upstream.received
    assert ping_body == b""
    assert create_path == "/v1.41/containers/create?name=x"
    created = json.loads(create_body)
    assert created["HostConfig"]["NetworkMode"] == "host"
    assert created["Env"][-1] == "X=1"
    assert created["Entrypoint"][1:3] == ["--runtime-interface-emulator-address", "127.0.0.1:5123"]
    assert build_body == b"tar bytes" * 1000


# --------------------------------------------------------------------------------------------------------
# Engine errors, recipe and mirror (no Docker needed).


def test_engine_that_cannot_start_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, script in {
        "dockerd": "echo 'failed to start daemon: fake failure for the test' >&2; exit 1",
        "docker": "exit 1",
    }.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{script}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    engine = DockerEngine(cache_dir=tmp_path / "cache", mode="own", start_timeout=10)
    with pytest.raises(DockerUnavailableError) as raised:
        engine.start()
    if os.geteuid() == 0:
        assert "fake failure for the test" in raised.value.reason
        assert engine.pid is not None and not pid_alive(engine.pid)
    else:
        assert "root" in raised.value.reason


def test_recipe_hash_names_the_image_and_changes_with_the_recipe() -> None:
    recipe = StandinRecipe(python_prefix="/root/.pyenv/versions/3.13.0", python_version="3.13.0 (main)")
    same = StandinRecipe(python_prefix="/root/.pyenv/versions/3.13.0", python_version="3.13.0 (main)")
    other_pin = StandinRecipe(
        python_prefix="/root/.pyenv/versions/3.13.0",
        python_version="3.13.0 (main)",
        runtime_requirements=("awslambdaric==4.2.2", "boto3==1.44.9"),
    )
    assert recipe.image == same.image
    assert recipe.image.startswith("stripe-monitor/lambda-python3.13-standin-") and recipe.image.endswith(
        ":x86_64"
    )
    assert other_pin.image != recipe.image
    assert other_pin.base_digest() == recipe.base_digest()  # the debootstrap tarball is reused


def test_debian_mirror_follows_this_machines_apt_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = debian_mirror()
    assert mirror.startswith(("http://", "https://", "file:/")), mirror
    monkeypatch.setenv("STRIPE_MONITOR_DEBIAN_MIRROR", "http://mirror.example/debian")
    assert debian_mirror() == "http://mirror.example/debian"


# --------------------------------------------------------------------------------------------------------
# The private engine, the image, sam local (Docker needed).


def _tiny_image(tar_path: Path) -> None:
    """A two-megabyte image: this machine's ``sleep`` and the libraries it loads."""
    sleep = Path(shutil.which("sleep") or "/bin/sleep").resolve()
    ldd = subprocess.run(["ldd", str(sleep)], capture_output=True, text=True, check=True).stdout
    libraries = [word for line in ldd.splitlines() for word in line.split() if word.startswith("/")]
    with tarfile.open(tar_path, "w") as tar:
        tar.add(sleep, arcname="bin/sleep")
        for library in libraries:
            tar.add(os.path.realpath(library), arcname=library.lstrip("/"))


@pytest.mark.docker
def test_private_engine_stops_everything_and_leaves_no_trace(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    """A second engine (own cache dir) next to the session's: it must clean up only what is its own."""
    before = host_network_state()
    engine = DockerEngine(cache_dir=tmp_path / "cache", mode="own")
    try:
        engine.start()
    except DockerUnavailableError as exc:
        pytest.skip(f"cannot start a private dockerd: {exc.reason}")
    with engine:
        assert engine.pid is not None
        during = host_network_state()
        assert during.links == before.links, "dockerd created a network link"
        assert during.iptables == before.iptables, "dockerd changed iptables"
        assert during.ip_forward == before.ip_forward
        _tiny_image(tmp_path / "tiny.tar")
        engine.docker("import", str(tmp_path / "tiny.tar"), "tiny:1")
        container = engine.docker(
            "run", "-d", "--network", "host", "tiny:1", "/bin/sleep", "600"
        ).stdout.strip()
        sleeper = int(engine.docker("inspect", "--format", "{{.State.Pid}}", container).stdout)
        processes = [engine.pid, sleeper, *pids_mentioning(str(engine.runtime_dir))]
        assert len(processes) >= 4  # dockerd, the container, containerd, the container's shim
    assert engine.leftovers == []
    assert [pid for pid in processes if pid_alive(pid)] == []
    after = host_network_state()
    assert (after.links, after.iptables, after.ip_forward) == (
        before.links,
        before.iptables,
        before.ip_forward,
    )
    assert [m for m in after.mounts if m.startswith(str(tmp_path))] == []
    assert not Path(str(engine.runtime_dir)).exists()
    assert docker_engine.docker("info", "--format", "{{.ServerVersion}}").returncode == 0  # still serving


@pytest.mark.docker
def test_lambda_image_is_cached_and_runs_python_313(docker_engine: DockerEngine, lambda_image: str) -> None:
    started = time.monotonic()
    assert ensure_lambda_image(docker_engine) == lambda_image
    assert time.monotonic() - started < 5, "a second call must find the image and return at once"
    check = "import sys, awslambdaric, boto3, ssl, sqlite3, zoneinfo; print(sys.version.split()[0])"
    version = docker_engine.docker(
        "run", "--rm", "--network", "host", "--env", "PYTHONPATH=/var/runtime", "--entrypoint",
        "/var/lang/bin/python3.13", lambda_image, "-c", check,
    ).stdout.strip()  # fmt: skip
    assert version.startswith("3.13.")
    if lambda_image != OFFICIAL_IMAGE:
        labels = docker_engine.docker("inspect", "--format", "{{json .Config.Labels}}", lambda_image).stdout
        assert "For local smoke tests only" in labels


TINY_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Description: throwaway app for the sam local infrastructure tests
Resources:
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.13
      Architectures: [x86_64]
      Handler: app.handler
      CodeUri: src/
      Timeout: 15
      Environment:
        Variables:
          GREETING: from-template
          PROBE_URL: ""
      Events:
        Hello:
          Type: Api
          Properties: {Path: "/hello/{name}", Method: get}
        Echo:
          Type: Api
          Properties: {Path: /echo, Method: post}
"""

TINY_HANDLER = """\
import json
import os
import sys
import urllib.request


def handler(event, context):
    info = {
        "greeting": os.environ.get("GREETING"),
        "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
        "python": sys.version.split()[0],
        "function": context.function_name,
        "credentials": [os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_REGION")],
    }
    if os.environ.get("PROBE_URL"):
        with urllib.request.urlopen(os.environ["PROBE_URL"], timeout=5) as response:
            info["probe"] = response.read().decode()
    if "httpMethod" not in event:
        return {**info, "event": event}
    info["name"] = (event.get("pathParameters") or {}).get("name")
    info["body"] = json.loads(event["body"]) if event.get("body") else None
    status = 201 if event["httpMethod"] == "POST" else 200
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(info)}
"""


class _Probe(http.server.ThreadingHTTPServer):
    hits = 0


class _ProbeHandler(http.server.BaseHTTPRequestHandler):
    server: _Probe

    def do_GET(self) -> None:
        self.server.hits += 1
        self.send_response(200)
        self.send_header("Content-Length", "8")
        self.end_headers()
        self.wfile.write(b"probe-ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def probe() -> Iterator[_Probe]:
    """An HTTP server on 127.0.0.1 that the function calls: proof that it shares the host's loopback."""
    server = _Probe(("127.0.0.1", 0), _ProbeHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: _Probe) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/probe"


@pytest.fixture(scope="module")
def tiny_app(sam_local: SamLocal, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The throwaway app, built with ``sam build``; returns the built template."""
    app = tmp_path_factory.mktemp("tiny-app")
    (app / "src").mkdir()
    (app / "src" / "app.py").write_text(TINY_HANDLER)
    (app / "template.yaml").write_text(TINY_TEMPLATE)
    return sam_local.build(app / "template.yaml")


@pytest.mark.docker
def test_sam_local_invoke(sam_local: SamLocal, tiny_app: Path, probe: _Probe) -> None:
    env_vars = {
        "EchoFunction": {
            "GREETING": "from-env-vars",
            "PROBE_URL": _url(probe),
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9/never",  # not declared in the template: sam drops it
        }
    }
    plain = sam_local.invoke("EchoFunction", template=tiny_app, event={"hello": "world"}, env_vars=env_vars)
    assert plain.check().payload == {
        "greeting": "from-env-vars",
        "endpoint": None,
        "python": plain.payload["python"],
        "function": "EchoFunction",
        "credentials": ["testing", plain.payload["credentials"][1]],
        "probe": "probe-ok",
        "event": {"hello": "world"},
    }
    assert plain.payload["python"].startswith("3.13.")

    injected = sam_local.invoke(
        "EchoFunction",
        template=tiny_app,
        event={"n": 2},
        env_vars=env_vars,
        container_env={"AWS_ENDPOINT_URL": "http://127.0.0.1:5001"},
    ).check()
    assert injected.payload["endpoint"] == "http://127.0.0.1:5001"
    assert injected.payload["event"] == {"n": 2}
    assert probe.hits >= 2
    assert sam_local.engine.containers() == [], "sam local invoke left a container behind"
    assert sam_local.non_loopback_traffic() == []


def _listening_sockets() -> set[tuple[str, str]]:
    """(address, port) in /proc's hex notation for every listening TCP socket on this host."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for line in fh.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":
                    address, port = fields[1].split(":")
                    found.add((address, port))
    return found


def _is_loopback(hex_address: str) -> bool:
    if len(hex_address) == 8:
        return hex_address.endswith("7F")  # little-endian 127.x.x.x
    return hex_address == "00000000000000000000000001000000" or (
        hex_address.startswith("0000000000000000FFFF0000") and hex_address.endswith("7F")
    )


@pytest.mark.docker
def test_sam_local_start_api(sam_local: SamLocal, tiny_app: Path, probe: _Probe) -> None:
    listening_before = _listening_sockets()
    with sam_local.start_api(
        template=tiny_app,
        env_vars={"EchoFunction": {"PROBE_URL": _url(probe)}},
        container_env={"AWS_ENDPOINT_URL": "http://127.0.0.1:5001"},
    ) as api:
        containers = api.container_ids()
        assert len(containers) == 1, "--warm-containers EAGER starts the function's container up front"
        network = sam_local.engine.docker("inspect", "--format", "{{.HostConfig.NetworkMode}}", *containers)
        assert network.stdout.strip() == "host"

        hello = api.get("/hello/bob")
        assert hello.status == 200, hello.text
        assert hello.json() | {"python": "x"} == {
            "greeting": "from-template",
            "endpoint": "http://127.0.0.1:5001",
            "python": "x",
            "function": "EchoFunction",
            "credentials": hello.json()["credentials"],
            "probe": "probe-ok",
            "name": "bob",
            "body": None,
        }
        echo = api.post("/echo", body={"answer": 42})
        assert (echo.status, echo.json()["body"]) == (201, {"answer": 42})
        assert api.get("/no/such/route").status in (403, 404)

        started = time.monotonic()
        for i in range(5):
            assert api.get(f"/hello/n{i}").json()["name"] == f"n{i}"
        assert time.monotonic() - started < 10, "warm containers should answer quickly"

        opened = _listening_sockets() - listening_before
        assert [s for s in opened if not _is_loopback(s[0])] == [], "something listens beyond 127.0.0.1"
        assert api.container_ids() == containers, "the warm container served every request"

    assert api.exit_code is not None
    assert api.leftover_containers == [], "sam local start-api did not remove its containers"
    assert sam_local.engine.containers(api.proxy.run_id) == []
    assert sam_local.non_loopback_traffic() == []
