"""The machine under a Docker engine: where its state is kept, what it could leave behind (network links,
iptables rules, ``ip_forward``, mounts), and the processes it starts."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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
            if any(is_under(Path(mount), root) for root in roots):
                found.append(f"mount {mount}")
        return found


def host_network_state() -> HostNetworkState:
    """Read network links, iptables rules (filter and nat), ``ip_forward`` and mount points."""
    links = frozenset(os.listdir("/sys/class/net")) if os.path.isdir("/sys/class/net") else frozenset()
    rules: set[str] = set()
    iptables = shutil.which("iptables", path=sbin_path())
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


def is_under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def unmount_under(root: Path) -> list[str]:
    """Unmount (deepest first) every mount point at or under ``root``; return what was unmounted."""
    done: list[str] = []
    for point in sorted((p for p in mount_points() if is_under(Path(p), root)), key=len, reverse=True):
        proc = subprocess.run(["umount", point], capture_output=True, text=True, check=False, timeout=30)
        if proc.returncode != 0:
            proc = subprocess.run(
                ["umount", "-l", point], capture_output=True, text=True, check=False, timeout=30
            )
        if proc.returncode == 0:
            done.append(point)
    return done


def sbin_path() -> str:
    return os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])


# --------------------------------------------------------------------------------------------------------
# Processes.


def cmdline(pid: int) -> str:
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


def mentions(pid: int, needles: tuple[str, ...]) -> bool:
    cmd = cmdline(pid)
    return any(needle in cmd for needle in needles)


def pids_mentioning(*needles: str) -> list[int]:
    """PIDs of processes whose command line contains one of ``needles`` (e.g. our exec root)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            cmd = cmdline(int(entry))
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
