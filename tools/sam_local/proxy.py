"""``HostNetworkProxy``: a Docker-API proxy (unix socket) that puts every new container on the host network.

``sam local`` has no way to put the Lambda container on the host network: ``--docker-network host`` only
skips connecting the container to an extra network, the container still gets the default network (with
``--bridge=none``: an empty network namespace) and sam reaches the emulator through a published port. The
proxy rewrites every ``POST /containers/create`` (``rewrite_container_create``) so that the container runs
with ``NetworkMode=host``, drops the port bindings, and tells the Runtime Interface Emulator to listen on
exactly the 127.0.0.1 port that sam had published (``--runtime-interface-emulator-address``) and to serve
its Runtime API on a free 127.0.0.1 port. It can also add environment variables and labels to the
container. Everything else is passed through byte for byte.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from tools.sam_local.host import DockerUnavailableError, free_loopback_port
from tools.sam_local.http_framing import Reader, parse_head, pump, with_content_length

#: Labels put on every container created through ``DockerEngine.host_network_proxy``: the value of
#: ``RUN_LABEL`` identifies the proxy (one sam command), that of ``ENGINE_LABEL`` the engine object.
RUN_LABEL = "stripe-monitor.sam-local.run"
ENGINE_LABEL = "stripe-monitor.sam-local.engine"

_RIE_PATH_SUFFIX = "aws-lambda-rie"
_CREATE_PATH = re.compile(r"^(/v[0-9.]+)?/containers/create$")


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
        back = threading.Thread(target=pump, args=(upstream, client), name="docker-proxy-back", daemon=True)
        back.start()
        reader = Reader(client)
        try:
            while (head := reader.head()) is not None:
                method, target, headers = parse_head(head)
                if method == "POST" and _CREATE_PATH.match(urlsplit(target).path):
                    raw = bytearray()
                    reader.body(headers, raw.extend, decode=True)
                    rewritten = rewrite_container_create(
                        json.loads(bytes(raw) or b"{}"), extra_env=self.extra_env, labels=self.labels
                    )
                    payload = json.dumps(rewritten).encode()
                    upstream.sendall(with_content_length(head, len(payload)) + payload)
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
