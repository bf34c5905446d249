"""The container image that ``sam local`` runs the Python 3.13 functions in.

``ensure_lambda_image(engine)`` returns an image reference for ``sam local ... --invoke-image REF
--skip-pull-image``:

1. the official AWS base image ``public.ecr.aws/lambda/python:3.13-x86_64`` (the tag sam itself uses for a
   python3.13 x86_64 function) if the engine already has it or can pull it;
2. otherwise a locally built **stand-in**, made without any container registry:

   * a Debian root filesystem from ``debootstrap --variant=minbase`` (Debian's packages, from the mirror
     this machine's apt is configured with), plus the shared libraries CPython needs;
   * this machine's Python 3.13 copied to the *same path* inside (pyenv builds it with
     ``--enable-shared`` and an rpath to its prefix), without tests, tkinter, idlelib and site-packages;
   * ``awslambdaric`` (the open-source Lambda Runtime Interface Client, from PyPI) and ``boto3`` in
     ``/var/runtime``, and a ``/var/runtime/bootstrap`` that starts it;
   * loaded with ``docker import``. sam adds its own Runtime Interface Emulator on top.

   **The stand-in is Debian, not Amazon Linux 2023.** It is good for smoke tests of the handler, the layer
   packaging and the sam wiring; it is not proof that the code runs on the real Lambda runtime.

The stand-in's repository name carries a hash of the recipe, so a change to the recipe (or to the copied
Python) builds a new image; sam's derived ``<repo>:rapid-x86_64`` image follows it. The root filesystem
tarballs are cached next to the Docker data root (``${XDG_CACHE_HOME:-~/.cache}/stripe-monitor``), so a
second run returns at once, and a run with an empty Docker data root only re-imports (a few seconds).

``STRIPE_MONITOR_LAMBDA_IMAGE`` chooses: ``auto`` (default), ``official``, ``standin``, or any other value
as an image reference that must already exist in the engine.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tools.sam_local.engine import DockerEngine
from tools.sam_local.host import default_cache_dir, mount_points, unmount_under

#: The image sam would use for a python3.13 x86_64 function (``Runtime.get_image_name_tag``).
OFFICIAL_IMAGE = "public.ecr.aws/lambda/python:3.13-x86_64"
#: Repository prefix of the stand-in; the recipe hash and ``:x86_64`` follow.
STANDIN_REPOSITORY = "stripe-monitor/lambda-python3.13-standin"
POLICY_ENV_VAR = "STRIPE_MONITOR_LAMBDA_IMAGE"
MIRROR_ENV_VAR = "STRIPE_MONITOR_DEBIAN_MIRROR"
DEFAULT_MIRROR = "http://deb.debian.org/debian"

# Bump when the build steps change in a way the recipe fields do not capture.
RECIPE_VERSION = 1

DEBIAN_SUITE = "bookworm"
# What CPython's extension modules link against, plus CA certificates and time zones.
DEBIAN_PACKAGES = (
    "ca-certificates",
    "libssl3",
    "libffi8",
    "zlib1g",
    "libsqlite3-0",
    "liblzma5",
    "libbz2-1.0",
    "libreadline8",
    "libncursesw6",
    "libuuid1",
    "libexpat1",
    "tzdata",
)
# Removed from the root filesystem after debootstrap (apt caches and lists, docs, locales).
DEBOOTSTRAP_CLEANUP = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)
# Parts of the Python installation that a Lambda function never needs.
PYTHON_EXCLUDES = (
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "site-packages",
    "config-3.13-x86_64-linux-gnu",
)
RUNTIME_REQUIREMENTS = ("awslambdaric==4.2.2", "boto3==1.44.8")

BOOTSTRAP = """\
#!/bin/sh
# Stand-in Lambda runtime (Debian + this machine's CPython 3.13 + awslambdaric), for sam local smoke tests.
# The Runtime Interface Emulator starts this with _HANDLER set; sys.path follows the real runtime's order.
path="/var/task:/opt/python/lib/python3.13/site-packages:/opt/python:/var/runtime"
export PYTHONPATH="$path${PYTHONPATH:+:$PYTHONPATH}"
cd "${LAMBDA_TASK_ROOT:-/var/task}" || exit 1
exec /var/lang/bin/python3.13 -m awslambdaric "${_HANDLER:-$AWS_LAMBDA_FUNCTION_HANDLER}"
"""

IMAGE_CHANGES = (
    "ENV PATH=/var/lang/bin:/usr/local/bin:/usr/bin:/bin",
    "ENV LANG=C.UTF-8",
    "ENV TZ=:/etc/localtime",
    "ENV LAMBDA_TASK_ROOT=/var/task",
    "ENV LAMBDA_RUNTIME_DIR=/var/runtime",
    "WORKDIR /var/task",
    'LABEL org.opencontainers.image.description="Stand-in for the AWS Lambda python3.13 image: Debian '
    '+ CPython 3.13 + awslambdaric. For local smoke tests only; not Amazon Linux."',
)


class LambdaImageUnavailableError(RuntimeError):
    """No image can be had on this machine (missing tool, not root, ...). ``reason`` says why; tests skip."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LambdaImageBuildError(RuntimeError):
    """Building the stand-in failed although everything it needs is installed (a real error)."""


@dataclass(frozen=True)
class StandinRecipe:
    """Everything that determines the stand-in image; its hash names the image and the cached tarballs."""

    python_prefix: str
    python_version: str
    debian_suite: str = DEBIAN_SUITE
    debian_packages: tuple[str, ...] = DEBIAN_PACKAGES
    debootstrap_cleanup: tuple[str, ...] = DEBOOTSTRAP_CLEANUP
    python_excludes: tuple[str, ...] = PYTHON_EXCLUDES
    runtime_requirements: tuple[str, ...] = RUNTIME_REQUIREMENTS
    bootstrap: str = BOOTSTRAP
    image_changes: tuple[str, ...] = IMAGE_CHANGES
    recipe_version: int = RECIPE_VERSION
    arch: str = field(default="x86_64")

    @classmethod
    def for_this_machine(cls) -> StandinRecipe:
        python = find_python313()
        out = subprocess.run(
            [str(python), "-c", "import sys; print(sys.base_prefix); print(sys.version)"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.splitlines()
        return cls(python_prefix=out[0], python_version=" ".join(out[1:]))

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    def base_digest(self) -> str:
        """Hash of the debootstrap part only (its tarball is reused when only later steps change)."""
        base = [self.recipe_version, self.debian_suite, self.debian_packages, self.debootstrap_cleanup]
        return hashlib.sha256(json.dumps(base).encode()).hexdigest()

    @property
    def image(self) -> str:
        return f"{STANDIN_REPOSITORY}-{self.digest()[:12]}:{self.arch}"


def find_python313() -> Path:
    """The Python 3.13 to copy: this interpreter if it is 3.13, else what tools/find-python313 finds."""
    if sys.version_info[:2] == (3, 13):
        return Path(sys.executable)
    finder = Path(__file__).resolve().parents[2] / "tools" / "find-python313"
    proc = subprocess.run([str(finder)], capture_output=True, text=True, check=False, timeout=60)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise LambdaImageUnavailableError(f"no Python 3.13 on this machine: {proc.stderr.strip()}")
    return Path(proc.stdout.strip())


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (``STRIPE_MONITOR_DEBIAN_MIRROR`` overrides it)."""
    if os.environ.get(MIRROR_ENV_VAR):
        return os.environ[MIRROR_ENV_VAR]
    entries: list[tuple[str, list[str], list[str]]] = []  # (uri, suites, components)
    sources_dir = Path("/etc/apt/sources.list.d")
    files = [Path("/etc/apt/sources.list")] + (sorted(sources_dir.iterdir()) if sources_dir.is_dir() else [])
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.name.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if ":" in line and not line.lstrip().startswith("#"):
                        key, value = line.split(":", 1)
                        fields[key.strip().lower()] = value.strip()
                if (
                    fields.get("enabled", "yes").lower() == "no"
                    or "deb" not in fields.get("types", "").split()
                ):
                    continue
                for uri in fields.get("uris", "").split():
                    entries.append(
                        (uri, fields.get("suites", "").split(), fields.get("components", "").split())
                    )
        elif path.name.endswith(".list"):
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line).split()
                if len(words) >= 3 and words[0] == "deb":
                    entries.append((words[1], [words[2]], words[3:]))
    for uri, suites, components in entries:
        if "main" in components and any(s == DEBIAN_SUITE or s in ("stable", "oldstable") for s in suites):
            return uri.rstrip("/")
    for uri, _suites, components in entries:
        if "main" in components and uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    return DEFAULT_MIRROR


# --------------------------------------------------------------------------------------------------------


def ensure_lambda_image(
    engine: DockerEngine,
    *,
    policy: str | None = None,
    cache_dir: Path | None = None,
    pull_timeout: float = 300.0,
) -> str:
    """Return an image reference for ``--invoke-image`` (see the module docstring for the order)."""
    chosen = policy or os.environ.get(POLICY_ENV_VAR) or "auto"
    if chosen not in ("auto", "official", "standin"):
        if not engine.image_exists(chosen):
            raise LambdaImageUnavailableError(f"{POLICY_ENV_VAR}={chosen}: no such image in the engine")
        return chosen
    if chosen in ("auto", "official"):
        if engine.image_exists(OFFICIAL_IMAGE):
            return OFFICIAL_IMAGE
        try:
            pulled = engine.docker("pull", "--quiet", OFFICIAL_IMAGE, check=False, timeout=pull_timeout)
            if pulled.returncode == 0:
                return OFFICIAL_IMAGE
            why = pulled.stderr.strip().splitlines()[-1:] or ["unknown error"]
        except subprocess.TimeoutExpired:
            why = [f"timed out after {pull_timeout:.0f} s"]
        if chosen == "official":
            raise LambdaImageUnavailableError(f"cannot pull {OFFICIAL_IMAGE}: {why[0]}")
    return ensure_standin_image(engine, cache_dir=cache_dir)


def ensure_standin_image(engine: DockerEngine, *, cache_dir: Path | None = None) -> str:
    """Build (or re-import, or just find) the stand-in image and return its reference."""
    if platform.machine() not in ("x86_64", "AMD64"):
        raise LambdaImageUnavailableError(f"the stand-in image is x86_64 only; this is {platform.machine()}")
    recipe = StandinRecipe.for_this_machine()
    if engine.image_exists(recipe.image):
        return recipe.image
    image_dir = (cache_dir or default_cache_dir()) / "lambda-image"
    image_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(image_dir / "build.lock"):
        if engine.image_exists(recipe.image):
            return recipe.image
        for leftover in image_dir.glob("build-*"):  # from a build that was killed
            _remove_tree(leftover)
        for partial in image_dir.glob("*.partial"):
            partial.unlink()
        tarball = image_dir / f"standin-{recipe.digest()[:12]}.tar"
        if not tarball.exists():
            build_standin_tarball(recipe, tarball, image_dir)
        changes = [arg for change in recipe.image_changes for arg in ("--change", change)]
        engine.docker("import", *changes, str(tarball), recipe.image, timeout=600)
        _prune_old(engine, recipe, image_dir)
    return recipe.image


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float = 1800.0) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LambdaImageBuildError(f"{path} is still locked after {timeout:.0f} s") from None
                time.sleep(0.5)
        yield
    finally:
        os.close(fd)


def _run(command: list[str], what: str, timeout: float = 900.0) -> None:
    proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise LambdaImageBuildError(f"{what} failed (exit {proc.returncode}):\n{tail}")


def build_standin_tarball(recipe: StandinRecipe, tarball: Path, work_parent: Path) -> None:
    """Make the stand-in's root filesystem and write it as an uncompressed tar to ``tarball``."""
    if os.geteuid() != 0:
        raise LambdaImageUnavailableError("building the stand-in image needs root (debootstrap, chown)")
    debootstrap = shutil.which("debootstrap", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))
    if debootstrap is None:
        raise LambdaImageUnavailableError("debootstrap is not installed (tools/install-sam-local-deps)")
    if shutil.which("tar") is None:
        raise LambdaImageUnavailableError("tar is not installed")
    prefix = Path(recipe.python_prefix)
    if prefix in (Path("/"), Path("/usr")):
        raise LambdaImageUnavailableError(f"cannot copy a Python installed in {prefix} into the stand-in")

    work = Path(tempfile.mkdtemp(prefix="build-", dir=work_parent))
    rootfs = work / "rootfs"
    try:
        base = work_parent / f"debootstrap-{recipe.base_digest()[:12]}.tar"
        if base.exists():
            rootfs.mkdir()
            _run(["tar", "--numeric-owner", "-xpf", str(base), "-C", str(rootfs)], "unpacking the base")
        else:
            _run(
                [
                    debootstrap,
                    "--variant=minbase",
                    f"--include={','.join(recipe.debian_packages)}",
                    recipe.debian_suite,
                    str(rootfs),
                    debian_mirror(),
                ],
                "debootstrap",
            )
            for relative in recipe.debootstrap_cleanup:
                target = rootfs / relative
                if target.is_dir():
                    for child in target.iterdir():
                        if child.is_dir() and not child.is_symlink():
                            shutil.rmtree(child)
                        else:
                            child.unlink()
            _write_tar(rootfs, base)

        # This machine's CPython 3.13, at the same path (its rpath points at its prefix).
        inside = rootfs / prefix.relative_to("/")
        inside.parent.mkdir(parents=True, exist_ok=True)
        stdlib = "lib/python3.13"

        def ignore(directory: str, names: list[str]) -> set[str]:
            if Path(directory) == prefix / stdlib:
                return {name for name in names if name in recipe.python_excludes}
            if Path(directory) == prefix:
                return {name for name in names if name not in ("bin", "lib")}
            if Path(directory) == prefix / "lib":
                return {name for name in names if name == "pkgconfig"}
            return set()

        shutil.copytree(prefix, inside, symlinks=True, ignore=ignore)
        (inside / stdlib / "site-packages").mkdir(exist_ok=True)
        for name in ("root", "var/lang/bin", "var/runtime", "var/task", "opt"):
            (rootfs / name).mkdir(parents=True, exist_ok=True)
        (rootfs / "root").chmod(0o755)  # the copied Python lives under /root for pyenv
        (rootfs / "var/lang/bin/python3.13").symlink_to(prefix / "bin" / "python3.13")

        _run(
            [
                str(find_python313()),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
                "--root-user-action=ignore",
                "--only-binary=:all:",
                "--target",
                str(rootfs / "var/runtime"),
                *recipe.runtime_requirements,
            ],
            "pip install of the runtime client",
        )
        bootstrap = rootfs / "var/runtime/bootstrap"
        bootstrap.write_text(recipe.bootstrap)
        bootstrap.chmod(0o755)
        _write_tar(rootfs, tarball)
    finally:
        _remove_tree(work)


def _remove_tree(path: Path) -> None:
    """Delete a build directory, but never through a mount (debootstrap mounts /proc, /sys, maybe /dev)."""
    unmount_under(path)
    still = [m for m in mount_points() if Path(m) == path or path in Path(m).parents]
    if still:
        raise LambdaImageBuildError(f"cannot delete {path}: still mounted: {still}")
    shutil.rmtree(path, ignore_errors=True)


def _write_tar(rootfs: Path, destination: Path) -> None:
    partial = destination.with_suffix(".partial")
    _run(
        ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."], f"writing {destination.name}"
    )
    partial.rename(destination)


def _prune_old(engine: DockerEngine, recipe: StandinRecipe, image_dir: Path) -> None:
    """Remove stand-in images and tarballs of other recipes (and sam's rapid images built on them)."""
    current_repo = recipe.image.split(":")[0]
    listed = engine.docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout.split()
    stale = [
        ref for ref in listed if ref.startswith(STANDIN_REPOSITORY) and ref.split(":")[0] != current_repo
    ]
    if stale:
        engine.docker("rmi", "-f", *stale, check=False)
    keep = {f"standin-{recipe.digest()[:12]}.tar", f"debootstrap-{recipe.base_digest()[:12]}.tar"}
    for path in image_dir.glob("*.tar"):
        if path.name not in keep:
            path.unlink()
