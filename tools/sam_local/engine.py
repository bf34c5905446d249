"""``DockerEngine``: a Docker engine for ``sam local`` that keeps everything on 127.0.0.1.

It starts a private ``dockerd`` (its own data root, exec root, socket, pid file and config file) with no
bridge and no iptables/ip-forward/masquerade changes, waits until ``docker info`` answers, and on exit
removes the containers that were created through it and stops ``dockerd`` and every process it started,
by PID, then unmounts what it left mounted and checks the host for ``docker0``, ``DOCKER`` iptables chains
and ``ip_forward`` changes. With ``mode="existing"`` (or ``"auto"`` when one answers) it uses an already
running engine instead and only removes its own containers.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from tools.sam_local.host import (
    DockerUnavailableError,
    HostNetworkState,
    cmdline,
    default_cache_dir,
    host_network_state,
    is_under,
    mentions,
    mount_points,
    pid_alive,
    pids_mentioning,
    sbin_path,
    terminate_pid,
    unmount_under,
)
from tools.sam_local.proxy import ENGINE_LABEL, RUN_LABEL, HostNetworkProxy
from tools.standins.service import Service

EngineMode = Literal["auto", "own", "existing"]

#: Environment variable that chooses the engine: ``auto`` (default), ``own`` or ``existing``.
MODE_ENV_VAR = "STRIPE_MONITOR_DOCKER"


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
        dockerd = shutil.which("dockerd", path=sbin_path())
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
                if pid_alive(pid) and str(self.data_root) in cmdline(pid):
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
                if not any(is_under(Path(m), old) for m in mount_points()):
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
                is_under(Path(m), self.runtime_dir) for m in mount_points()
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
                terminate_pid(pid, timeout=5, still_ours=functools.partial(mentions, pid, needles))
                self.cleanup_report.append(f"stopped leftover process {pid}")
        unmounted = unmount_under(self.runtime_dir) + unmount_under(self.data_root)
        if unmounted:
            self.cleanup_report.append(f"unmounted {', '.join(unmounted)}")
        with contextlib.suppress(FileNotFoundError):
            self.pidfile.unlink()
        self.state_after = host_network_state()
        self.leftovers = [
            f"process {pid} ({cmdline(pid)[:80]})" for pid in pids_mentioning(*needles) if pid_alive(pid)
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
