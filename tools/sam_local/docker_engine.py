"""A Docker engine for the ``sam local`` tests that keeps everything on 127.0.0.1.

Two pieces:

``DockerEngine``
    Starts a private ``dockerd`` (its own data root, exec root, socket, pid file and config file) with no
    bridge and no iptables/ip-forward/masquerade changes, waits until ``docker info`` answers, and on exit
    removes the containers that were created through it and stops ``dockerd`` and every process it
    started, by PID, then unmounts what it left mounted and checks the host for ``docker0``, ``DOCKER``
    iptables chains and ``ip_forward`` changes. With ``mode="existing"`` (or ``"auto"`` when one answers)
    it uses an already running engine instead and only removes its own containers.

``HostNetworkProxy``
    A small Docker-API proxy on a unix socket. ``sam local`` has no way to put the Lambda container on the
    host network: ``--docker-network host`` only skips connecting the container to an extra network, the
    container still gets the default network (with ``--bridge=none``: an empty network namespace) and
    sam reaches the emulator through a published port. The proxy rewrites every ``POST
    /containers/create`` so that the container runs with ``NetworkMode=host``, drops the port bindings,
    and tells the Runtime Interface Emulator to listen on exactly the 127.0.0.1 port that sam had
    published (``--runtime-interface-emulator-address``) and to serve its Runtime API on a free 127.0.0.1
    port. It can also add environment variables and labels to the container. Everything else is passed
    through byte for byte.

Both raise ``DockerUnavailableError`` (with a human-readable ``reason``) when Docker cannot be used here, so
that fixtures can skip with that reason instead of passing silently.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from tools.standins.service import Service

EngineMode = Literal["auto", "own", "existing"]

#: Environment variable that chooses the engine: ``auto`` (default), ``own`` or ``existing``.
MODE_ENV_VAR = "STRIPE_MONITOR_DOCKER"
#: Labels put on every container created through ``DockerEngine.host_network_proxy``: the value of
#: ``RUN_LABEL`` identifies the proxy (one sam command), that of ``ENGINE_LABEL`` the engine object.
RUN_LABEL = "stripe-monitor.sam-local.run"
ENGINE_LABEL = "stripe-monitor.sam-local.engine"

_RIE_PATH_SUFFIX = "aws-lambda-rie"
_CREATE_PATH = re.compile(r"^(/v[0-9.]+)?/containers/create$")
_MAX_HEAD_BYTES = 1 << 20
_DOCKER_LINK = re.compile(r"^(docker\d*|br-[0-9a-f]{12}|veth[0-9a-f]+)$")


class DockerUnavailableError(RuntimeError):
    """Docker cannot be used on this machine. ``reason`` says why; tests skip with it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def default_cache_dir() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/stripe-monitor``: outside the work tree, so it survives a fresh clone."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stripe-monitor"


# --------------------------------------------------------------------------------------------------------
# Host state: what dockerd could leave behind.


@dataclass(frozen=True)
class HostNetworkState:
    """A snapshot of the host state that a Docker engine may change."""

    links: frozenset[str]
    iptables: frozenset[str]
    ip_forward: str
    mounts: frozenset[str]

    def docker_traces(self, *roots: Path) -> list[str]:
        """What here looks like Docker's work: bridges/veths, DOCKER chains, mounts under ``roots``."""
        found = [f"network link {name}" for name in sorted(self.links) if _DOCKER_LINK.match(name)]
        found += [f"iptables {rule}" for rule in sorted(self.iptables) if "DOCKER" in rule]
        for mount in sorted(self.mounts):
            if any(_is_under(Path(mount), root) for root in roots):
                found.append(f"mount {mount}")
        return found


def host_network_state() -> HostNetworkState:
    """Read network links, iptables rules (filter and nat), ``ip_forward`` and mount points."""
    links = frozenset(os.listdir("/sys/class/net")) if os.path.isdir("/sys/class/net") else frozenset()
    rules: set[str] = set()
    iptables = shutil.which("iptables", path=_sbin_path())
    if iptables:
        for table in ("filter", "nat"):
            proc = subprocess.run(
                [iptables, "-w", "5", "-t", table, "-S"],
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            )
            if proc.returncode == 0:
                rules.update(f"{table}: {line}" for line in proc.stdout.splitlines() if line.strip())
    try:
        ip_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
    except OSError:
        ip_forward = "?"
    return HostNetworkState(links, frozenset(rules), ip_forward, frozenset(mount_points()))


def mount_points() -> list[str]:
    points: list[str] = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) > 4:
                points.append(fields[4].encode().decode("unicode_escape"))
    return points


def _is_under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def unmount_under(root: Path) -> list[str]:
    """Unmount (deepest first) every mount point at or under ``root``; return what was unmounted."""
    done: list[str] = []
    for point in sorted((p for p in mount_points() if _is_under(Path(p), root)), key=len, reverse=True):
        proc = subprocess.run(["umount", point], capture_output=True, text=True, check=False, timeout=30)
        if proc.returncode != 0:
            proc = subprocess.run(
                ["umount", "-l", point], capture_output=True, text=True, check=False, timeout=30
            )
        if proc.returncode == 0:
            done.append(point)
    return done


def _sbin_path() -> str:
    return os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])


# --------------------------------------------------------------------------------------------------------
# Processes.


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive for our purposes.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat[stat.rfind(")") + 2 :].startswith("Z"):
            return False
    return True


def _mentions(pid: int, needles: tuple[str, ...]) -> bool:
    cmd = _cmdline(pid)
    return any(needle in cmd for needle in needles)


def pids_mentioning(*needles: str) -> list[int]:
    """PIDs of processes whose command line contains one of ``needles`` (e.g. our exec root)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            cmd = _cmdline(int(entry))
            if any(needle in cmd for needle in needles):
                pids.append(int(entry))
    return pids


def terminate_pid(pid: int, *, timeout: float = 10.0, still_ours: Callable[[], bool] | None = None) -> None:
    """SIGTERM ``pid``, wait up to ``timeout`` s, then SIGKILL. ``still_ours`` guards against PID reuse."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not pid_alive(pid) or (still_ours is not None and not still_ours()):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and pid_alive(pid):
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)


def free_loopback_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------------------------
# The Docker-API proxy.


def rewrite_container_create(
    body: dict[str, Any],
    *,
    extra_env: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    free_port: Callable[[], int] = free_loopback_port,
) -> dict[str, Any]:
    """Rewrite a ``POST /containers/create`` body so that the container runs on the host network.

    * ``HostConfig.NetworkMode`` becomes ``host``; port bindings, exposed ports, networking config and DNS
      settings (all meaningless or rejected on the host network) are dropped.
    * If the entrypoint is the Lambda Runtime Interface Emulator (as with every ``sam local`` container),
      it is told to listen on the 127.0.0.1 address that sam had published for container port 8080, and to
      serve the Runtime API on a free 127.0.0.1 port instead of the fixed 9001.
    * ``extra_env`` is added to (and overrides) ``Env``; ``labels`` are added to ``Labels``.
    """
    body = json.loads(json.dumps(body))  # deep copy
    host_config: dict[str, Any] = body.get("HostConfig") or {}
    bindings: dict[str, Any] = host_config.pop("PortBindings", None) or {}
    host_config["NetworkMode"] = "host"
    for key in ("Dns", "DnsOptions", "DnsSearch", "Links"):
        host_config.pop(key, None)
    body["HostConfig"] = host_config
    for key in ("ExposedPorts", "NetworkingConfig", "Hostname", "Domainname", "MacAddress"):
        body.pop(key, None)

    entrypoint = body.get("Entrypoint")
    if isinstance(entrypoint, list) and entrypoint and str(entrypoint[0]).endswith(_RIE_PATH_SUFFIX):
        rie_address = "127.0.0.1:8080"
        for key in ("8080/tcp", "8080"):
            published = bindings.get(key) or []
            if published and published[0].get("HostPort"):
                rie_address = f"127.0.0.1:{published[0]['HostPort']}"
                break
        body["Entrypoint"] = [
            entrypoint[0],
            "--runtime-interface-emulator-address",
            rie_address,
            "--runtime-api-address",
            f"127.0.0.1:{free_port()}",
            *entrypoint[1:],
        ]

    if extra_env:
        env = [item for item in body.get("Env") or [] if item.split("=", 1)[0] not in extra_env]
        env += [f"{key}={value}" for key, value in extra_env.items()]
        body["Env"] = env
    if labels:
        body["Labels"] = {**(body.get("Labels") or {}), **labels}
    return body


class _Reader:
    """Buffered reads from a socket, with enough HTTP/1.1 framing to find request boundaries."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()
        self.eof = False

    def _fill(self) -> bool:
        data = self._sock.recv(65536)
        if not data:
            self.eof = True
            return False
        self._buf += data
        return True

    def head(self) -> bytes | None:
        while b"\r\n\r\n" not in self._buf:
            if len(self._buf) > _MAX_HEAD_BYTES or not self._fill():
                return None
        end = self._buf.index(b"\r\n\r\n") + 4
        out = bytes(self._buf[:end])
        del self._buf[:end]
        return out

    def line(self) -> bytes:
        while b"\r\n" not in self._buf:
            if not self._fill():
                raise ConnectionError("connection closed inside a chunked body")
        end = self._buf.index(b"\r\n") + 2
        out = bytes(self._buf[:end])
        del self._buf[:end]
        return out

    def exactly(self, size: int) -> bytes:
        while len(self._buf) < size:
            if not self._fill():
                raise ConnectionError("connection closed inside a body")
        out = bytes(self._buf[:size])
        del self._buf[:size]
        return out

    def pieces(self, size: int) -> Iterator[bytes]:
        """Yield exactly ``size`` bytes, in pieces as they arrive."""
        while size > 0:
            if not self._buf and not self._fill():
                raise ConnectionError("connection closed inside a body")
            piece = bytes(self._buf[:size])
            del self._buf[: len(piece)]
            size -= len(piece)
            yield piece

    def body(self, headers: Mapping[str, str], sink: Callable[[bytes], None], *, decode: bool) -> None:
        """Pass the request body to ``sink``: raw framing, or (``decode``) the decoded payload."""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size_line = self.line()
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if not decode:
                    sink(size_line)
                if size == 0:
                    while True:  # trailers, up to the empty line
                        trailer = self.line()
                        if not decode:
                            sink(trailer)
                        if trailer == b"\r\n":
                            return
                for piece in self.pieces(size):
                    sink(piece)
                crlf = self.exactly(2)
                if not decode:
                    sink(crlf)
        elif headers.get("content-length"):
            for piece in self.pieces(int(headers["content-length"])):
                sink(piece)

    def rest(self) -> Iterator[bytes]:
        if self._buf:
            yield bytes(self._buf)
            self._buf.clear()
        while self._fill():
            yield bytes(self._buf)
            self._buf.clear()


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = [*lines[0].split(" ", 2), "", ""][:3]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return method.upper(), target, headers


def _with_content_length(head: bytes, length: int) -> bytes:
    lines = head.decode("latin-1").split("\r\n")[:-2]
    kept = [lines[0]] + [
        line
        for line in lines[1:]
        if line.split(":", 1)[0].strip().lower() not in ("content-length", "transfer-encoding")
    ]
    kept.append(f"Content-Length: {length}")
    return ("\r\n".join(kept) + "\r\n\r\n").encode("latin-1")


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


class HostNetworkProxy:
    """A Docker-API proxy (unix socket) that puts every new container on the host network.

    See ``rewrite_container_create`` for the rewrite; all other requests and all responses pass through
    unchanged (including hijacked ``attach`` streams).
    """

    def __init__(
        self,
        upstream: str,
        listen_path: Path,
        *,
        extra_env: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.upstream = upstream
        self.listen_path = listen_path
        self.extra_env = dict(extra_env or {})
        self.labels = dict(labels or {})
        self.created = 0
        self._server: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()

    @property
    def docker_host(self) -> str:
        """The value for ``DOCKER_HOST``."""
        return f"unix://{self.listen_path}"

    @property
    def run_id(self) -> str:
        """The value of ``RUN_LABEL`` on the containers created through this proxy ("" if none)."""
        return self.labels.get(RUN_LABEL, "")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.listen_path.unlink()
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.listen_path))
        os.chmod(self.listen_path, 0o600)
        server.listen(64)
        self._server = server
        thread = threading.Thread(target=self._accept_loop, name="docker-proxy-accept", daemon=True)
        thread.start()
        self._threads.append(thread)

    def close(self) -> None:
        self._closed.set()
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        for thread in self._threads:
            thread.join(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            self.listen_path.unlink()

    def _connect_upstream(self) -> socket.socket:
        parts = urlsplit(self.upstream)
        if parts.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(parts.path)
            return sock
        if parts.scheme in ("tcp", "http"):
            return socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 2375))
        raise DockerUnavailableError(f"unsupported DOCKER_HOST for the proxy: {self.upstream}")

    def _track(self, *socks: socket.socket, add: bool = True) -> None:
        with self._lock:
            for sock in socks:
                if add:
                    self._conns.add(sock)
                else:
                    self._conns.discard(sock)

    def _accept_loop(self) -> None:
        assert self._server is not None
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            thread = threading.Thread(
                target=self._serve, args=(client,), name="docker-proxy-conn", daemon=True
            )
            thread.start()
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = self._connect_upstream()
        except OSError:
            client.close()
            return
        self._track(client, upstream)
        back = threading.Thread(target=_pump, args=(upstream, client), name="docker-proxy-back", daemon=True)
        back.start()
        reader = _Reader(client)
        try:
            while (head := reader.head()) is not None:
                method, target, headers = _parse_head(head)
                if method == "POST" and _CREATE_PATH.match(urlsplit(target).path):
                    raw = bytearray()
                    reader.body(headers, raw.extend, decode=True)
                    rewritten = rewrite_container_create(
                        json.loads(bytes(raw) or b"{}"), extra_env=self.extra_env, labels=self.labels
                    )
                    payload = json.dumps(rewritten).encode()
                    upstream.sendall(_with_content_length(head, len(payload)) + payload)
                    self.created += 1
                else:
                    upstream.sendall(head)
                    reader.body(headers, upstream.sendall, decode=False)
                if "upgrade" in headers or "upgrade" in headers.get("connection", "").lower():
                    for data in reader.rest():  # hijacked stream (attach/exec): raw from now on
                        upstream.sendall(data)
                    break
        except (OSError, ValueError):
            pass
        finally:
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_WR)
            back.join(timeout=600)
            self._track(client, upstream, add=False)
            client.close()
            upstream.close()


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
# The engine.


def _ping(docker_host: str, timeout: float = 2.0) -> bool:
    """True when the Docker API at ``docker_host`` answers ``GET /_ping`` with 200."""
    parts = urlsplit(docker_host)
    try:
        if parts.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(parts.path)
        elif parts.scheme in ("tcp", "http"):
            sock = socket.create_connection(
                (parts.hostname or "127.0.0.1", parts.port or 2375), timeout=timeout
            )
        else:
            return False
        with sock:
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return sock.recv(64).startswith((b"HTTP/1.0 200", b"HTTP/1.1 200"))
    except OSError:
        return False


class DockerEngine(Service):
    """A Docker engine for ``sam local``: a private ``dockerd`` (``own``) or a running one (``existing``).

    Use as a context manager. ``docker_host`` is the engine's own socket (for the ``docker`` CLI);
    ``host_network_proxy()`` gives the ``DOCKER_HOST`` to hand to ``sam`` so its containers run on the host
    network. After ``stop()``, ``cleanup_report`` lists what had to be cleaned up and ``leftovers`` what
    could not be (both should normally be empty).
    """

    def __init__(
        self,
        cache_dir: Path | None = None,
        *,
        mode: EngineMode | None = None,
        start_timeout: float = 60.0,
        stop_timeout: float = 30.0,
        lock_timeout: float = 900.0,
    ) -> None:
        chosen = mode or os.environ.get(MODE_ENV_VAR, "auto")
        if chosen not in ("auto", "own", "existing"):
            raise ValueError(f"{MODE_ENV_VAR} must be auto, own or existing, not {chosen!r}")
        self.mode: EngineMode = chosen  # type: ignore[assignment]
        self.cache_dir = cache_dir or default_cache_dir()
        self.state_dir = self.cache_dir / "docker"
        self.data_root = self.state_dir / "data-root"
        self.pidfile = self.state_dir / "dockerd.pid"
        self.log_path = self.state_dir / "dockerd.log"
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.lock_timeout = lock_timeout
        self.run_id = uuid.uuid4().hex[:12]
        self.owned = False
        self.docker_host = ""
        self.runtime_dir: Path | None = None
        self.exec_root: Path | None = None
        self.cleanup_report: list[str] = []
        self.leftovers: list[str] = []
        self.state_before: HostNetworkState | None = None
        self.state_after: HostNetworkState | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None
        self._started = False
        self._stopped = False

    @property
    def runtime_parent(self) -> Path:
        """Where this cache dir's runs keep their exec root and sockets (short paths: unix sockets)."""
        tag = hashlib.sha256(str(self.state_dir.resolve()).encode()).hexdigest()[:8]
        return Path(tempfile.gettempdir()) / f"stripe-monitor-docker-{tag}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # -- start ----------------------------------------------------------------------------------------
    def start(self) -> Self:
        if self._started:
            return self
        self._stopped = False
        docker_cli = shutil.which("docker")
        if docker_cli is None:
            raise DockerUnavailableError("the docker CLI is not installed (apt-get install docker.io)")
        self._docker_cli = docker_cli
        if self.mode in ("auto", "existing"):
            existing = self._find_existing_engine()
            if existing:
                self.docker_host = existing
                self.runtime_dir = Path(tempfile.mkdtemp(prefix="stripe-monitor-docker-proxy-"))
                self._started = True
                return self
            if self.mode == "existing":
                raise DockerUnavailableError(
                    "no running Docker engine answers at $DOCKER_HOST or /var/run/docker.sock"
                )
        self._start_own()
        self._started = True
        return self

    @staticmethod
    def _find_existing_engine() -> str | None:
        candidates = [os.environ["DOCKER_HOST"]] if os.environ.get("DOCKER_HOST") else []
        candidates.append("unix:///var/run/docker.sock")
        for candidate in candidates:
            if _ping(candidate):
                return candidate
        return None

    def _start_own(self) -> None:
        if os.geteuid() != 0:
            raise DockerUnavailableError(
                "starting a private dockerd needs root (rootless Docker is not set up here)"
            )
        dockerd = shutil.which("dockerd", path=_sbin_path())
        if dockerd is None:
            raise DockerUnavailableError(
                "dockerd is not installed (tools/install-sam-local-deps installs docker.io)"
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()
        try:
            self._clean_stale_state()
            self.state_before = host_network_state()
            parent = self.runtime_parent
            parent.mkdir(mode=0o700, exist_ok=True)
            self.runtime_dir = Path(tempfile.mkdtemp(prefix="run-", dir=parent))
            self.exec_root = self.runtime_dir / "exec"
            socket_path = self.runtime_dir / "docker.sock"
            config = self.state_dir / "daemon.json"
            config.write_text("{}\n")  # so that /etc/docker/daemon.json cannot add a bridge or iptables rules
            self.data_root.mkdir(parents=True, exist_ok=True)
            command = [
                dockerd,
                "--config-file", str(config),
                "--data-root", str(self.data_root),
                "--exec-root", str(self.exec_root),
                "--pidfile", str(self.pidfile),
                "--host", f"unix://{socket_path}",
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-forward=false",
                "--ip-masq=false",
                "--userland-proxy=false",
                "--log-level", "warn",
            ]  # fmt: skip
            with open(self.log_path, "wb") as log:
                self._process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.owned = True
            self.docker_host = f"unix://{socket_path}"
            self._wait_until_ready()
            # Containers from an earlier run that was killed before it could clean up.
            stale = self.docker("ps", "-aq", check=False).stdout.split()
            if stale:
                self.docker("rm", "-f", *stale, check=False)
                self.cleanup_report.append(f"removed {len(stale)} stale container(s) at start")
        except BaseException:
            self.stop()
            raise

    def _acquire_lock(self) -> None:
        fd = os.open(self.state_dir / "engine.lock", os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise DockerUnavailableError(
                        f"another test run holds {self.state_dir / 'engine.lock'} "
                        f"(waited {self.lock_timeout:.0f} s)"
                    ) from None
                time.sleep(0.5)
        self._lock_fd = fd

    def _clean_stale_state(self) -> None:
        """Undo what a killed earlier run left: its dockerd (by the PID in our pid file) and mounts."""
        if self.pidfile.exists():
            with contextlib.suppress(ValueError, OSError):
                pid = int(self.pidfile.read_text().strip())
                if pid_alive(pid) and str(self.data_root) in _cmdline(pid):
                    terminate_pid(pid, timeout=self.stop_timeout)
                    self.cleanup_report.append(f"stopped a stale dockerd (pid {pid})")
            with contextlib.suppress(FileNotFoundError):
                self.pidfile.unlink()
        parent = self.runtime_parent
        for pid in pids_mentioning(str(parent) + "/", str(self.data_root)):
            terminate_pid(pid, timeout=5)
            self.cleanup_report.append(f"stopped a stale process {pid}")
        for root in (self.data_root, parent):
            unmounted = unmount_under(root)
            if unmounted:
                self.cleanup_report.append(f"unmounted stale {unmounted}")
        if parent.is_dir():
            for old in parent.iterdir():
                if not any(_is_under(Path(m), old) for m in mount_points()):
                    shutil.rmtree(old, ignore_errors=True)

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise DockerUnavailableError(
                    f"dockerd exited with code {self._process.returncode}: {self._log_tail()}"
                )
            if _ping(self.docker_host, timeout=1.0):
                info = self.docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=30)
                if info.returncode == 0:
                    return
            time.sleep(0.1)
        raise DockerUnavailableError(
            f"dockerd did not answer within {self.start_timeout:.0f} s: {self._log_tail()}"
        )

    def _log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"

    # -- use --------------------------------------------------------------------------------------------
    def docker(
        self, *args: str, check: bool = True, timeout: float = 300.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI against this engine (not through the proxy)."""
        if not self.docker_host:
            raise RuntimeError("the engine is not started")
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env["DOCKER_HOST"] = self.docker_host
        proc = subprocess.run(
            [self._docker_cli, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, proc.args, proc.stdout, proc.stderr)
        return proc

    def image_exists(self, ref: str) -> bool:
        return self.docker("image", "inspect", "--format", "{{.Id}}", ref, check=False).returncode == 0

    def containers(self, run_id: str | None = None) -> list[str]:
        """IDs of containers created through this engine's proxies: all, or one proxy's (``run_id``)."""
        return self._containers_with(f"{RUN_LABEL}={run_id}" if run_id else f"{ENGINE_LABEL}={self.run_id}")

    def _containers_with(self, label: str) -> list[str]:
        return self.docker(
            "ps", "-aq", "--no-trunc", "--filter", f"label={label}", check=False
        ).stdout.split()

    def remove_containers(self, ids: list[str]) -> None:
        if ids:
            self.docker("rm", "-f", *ids, check=False, timeout=120)

    @contextlib.contextmanager
    def host_network_proxy(
        self, *, extra_env: Mapping[str, str] | None = None, run_id: str | None = None
    ) -> Iterator[HostNetworkProxy]:
        """A ``HostNetworkProxy`` in front of this engine; pass ``proxy.docker_host`` to sam as DOCKER_HOST.

        Containers created through it carry the label ``RUN_LABEL=<run_id>``; any still present when the
        block exits are removed.
        """
        if self.runtime_dir is None:
            raise RuntimeError("the engine is not started")
        label_value = run_id or f"{self.run_id}-{uuid.uuid4().hex[:8]}"
        path = self.runtime_dir / f"proxy-{label_value}.sock"
        labels = {RUN_LABEL: label_value, ENGINE_LABEL: self.run_id}
        with HostNetworkProxy(self.docker_host, path, extra_env=extra_env, labels=labels) as proxy:
            try:
                yield proxy
            finally:
                self.remove_containers(self.containers(label_value))

    # -- stop -------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Remove our containers, stop dockerd and what it started (by PID), unmount, check the host."""
        if self._stopped or (not self._started and self._process is None and self._lock_fd is None):
            return
        self._stopped = True
        try:
            if self.docker_host and _ping(self.docker_host):
                # Our own engine: every container is ours. Someone else's engine: only those created
                # through this engine object's proxies.
                mine = (
                    self.docker("ps", "-aq", check=False).stdout.split()
                    if self.owned
                    else self._containers_with(f"{ENGINE_LABEL}={self.run_id}")
                )
                self.remove_containers(mine)
                if self.owned:
                    self.docker("image", "prune", "-f", check=False, timeout=120)
            if self.owned:
                self._stop_own()
        finally:
            if self.runtime_dir is not None and not any(
                _is_under(Path(m), self.runtime_dir) for m in mount_points()
            ):
                shutil.rmtree(self.runtime_dir, ignore_errors=True)
                if self.owned:
                    with contextlib.suppress(OSError):
                        self.runtime_parent.rmdir()  # only if no other run of this cache dir is there
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
            self._started = False

    def _stop_own(self) -> None:
        assert self.runtime_dir is not None
        needles = (str(self.runtime_dir) + "/", str(self.data_root))
        children = pids_mentioning(*needles)  # containerd and shims, found before dockerd goes away
        if self._process is not None:
            pid = self._process.pid
            if self._process.poll() is None:
                self._process.send_signal(signal.SIGTERM)
                try:
                    self._process.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait(timeout=10)
                    self.cleanup_report.append(f"dockerd (pid {pid}) needed SIGKILL")
        for pid in sorted(set(children + pids_mentioning(*needles))):
            if pid_alive(pid):
                terminate_pid(pid, timeout=5, still_ours=functools.partial(_mentions, pid, needles))
                self.cleanup_report.append(f"stopped leftover process {pid}")
        unmounted = unmount_under(self.runtime_dir) + unmount_under(self.data_root)
        if unmounted:
            self.cleanup_report.append(f"unmounted {', '.join(unmounted)}")
        with contextlib.suppress(FileNotFoundError):
            self.pidfile.unlink()
        self.state_after = host_network_state()
        self.leftovers = [
            f"process {pid} ({_cmdline(pid)[:80]})" for pid in pids_mentioning(*needles) if pid_alive(pid)
        ]
        self.leftovers += self.state_after.docker_traces(self.runtime_dir, self.data_root)
        if self.state_before is not None:
            if self.state_after.ip_forward != self.state_before.ip_forward:
                self.leftovers.append(
                    f"ip_forward changed {self.state_before.ip_forward} -> {self.state_after.ip_forward}"
                )
            new_rules = self.state_after.iptables - self.state_before.iptables
            self.leftovers += [f"new iptables rule {rule}" for rule in sorted(new_rules)]
            new_links = self.state_after.links - self.state_before.links
            self.leftovers += [f"new network link {link}" for link in sorted(new_links)]


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
                from .lambda_image import ensure_lambda_image

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
