"""``make bench``: the build that is measured (``sam build``), its sizes, and the Python that runs it."""

import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from bench.run_settings import ROOT


def python313() -> str:
    found = subprocess.run(
        [str(ROOT / "tools" / "find-python313")], capture_output=True, text=True, check=True
    )
    return found.stdout.strip()


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def zipped_bytes(path: Path) -> int:
    """The size of the zip that ``sam deploy`` uploads (deflate, like SAM's own packaging)."""
    with tempfile.TemporaryFile() as raw:
        with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                archive.write(file, file.relative_to(path))
        return raw.tell()


def sam_build(build_dir: Path) -> None:
    """``sam build`` for x86_64 (this machine), with Python 3.13 first on PATH, as ``make build`` does."""
    sam = ROOT / ".venv-tools" / "bin" / "sam"
    if not sam.exists():
        sys.exit(f"{sam} is missing: run 'make bench' (it creates the tools environment)")
    env = os.environ | {
        "PATH": f"{Path(python313()).parent}:{os.environ['PATH']}",
        "SAM_CLI_TELEMETRY": "0",
    }
    started = time.monotonic()
    done = subprocess.run(
        [str(sam), "build", "--template-file", str(ROOT / "template.yaml"), "--build-dir", str(build_dir),
         "--parameter-overrides", "Architecture=x86_64"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode:
        sys.exit(f"sam build failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    print(f"sam build (x86_64) -> {build_dir.relative_to(ROOT)} in {time.monotonic() - started:.1f} s")


def sizes(build_dir: Path) -> dict[str, Any]:
    layer, function = build_dir / "CommonLayer", build_dir / "PingFunction"
    return {
        "layer_unzipped_mib": tree_bytes(layer) / 2**20,
        "layer_zipped_mib": zipped_bytes(layer) / 2**20,
        "function_unzipped_kib": tree_bytes(function) / 1024,
        "function_zipped_kib": zipped_bytes(function) / 1024,
        "layer_files": sum(1 for p in layer.rglob("*") if p.is_file()),
        "layer_pyc_files": sum(1 for _ in layer.rglob("*.pyc")),
    }
