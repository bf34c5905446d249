"""What ``sam build`` ships: bytecode that Lambda uses as is, nothing unused, and the same bytes every time.

Lambda's code filesystem is read-only: without .pyc files in the package, Python compiles every module on
every cold start (docs/performance.md). The layer and the function are built by ``layers/common/Makefile``
and ``functions/Makefile`` (SAM's ``BuildMethod: makefile``).
"""

import hashlib
import importlib.util
import marshal
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import python313_bin_dir, sam_build_into
from tests.support import ROOT
from tools.standins.template import load_template

pytestmark = pytest.mark.sam

PYC_HEADER_SIZE = 16
UNCHECKED_HASH = 0b01  # hash-based (bit 0), source not checked (bit 1 clear): PEP 552
CACHE_TAG = sys.implementation.cache_tag  # cpython-313: the tests run on the Lambda runtime's Python
LAYER_MAKEFILE = ROOT / "layers" / "common" / "Makefile"
SOURCES = [ROOT / "layers" / "common" / "stripe_monitor", *sorted((ROOT / "functions").glob("*/"))]
# boto3.client("sns", ...) / boto3.resource("dynamodb") / session.client("...") in the code.
CLIENT_CALL = re.compile(r"""\.(?:client|resource)\(\s*["']([a-z0-9-]+)["']""")
# Powertools utilities that create a client for their service.
POWERTOOLS_SERVICES = {
    "parameters.get_secret": "secretsmanager",
    "SecretsProvider": "secretsmanager",
    "parameters.get_parameter": "ssm",
    "SSMProvider": "ssm",
    "parameters.get_app_config": "appconfigdata",
    "DynamoDBPersistenceLayer": "dynamodb",
}


def makefile_functions() -> list[str]:
    """The functions built by functions/Makefile (Metadata ``BuildMethod: makefile``)."""
    resources = load_template()["Resources"]
    return sorted(
        name
        for name, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
        and resource.get("Metadata", {}).get("BuildMethod") == "makefile"
    )


def code_directories(build: Path) -> dict[str, Path]:
    """Each built code directory and where Lambda puts it (/opt/python for the layer, /var/task)."""
    found = {"/opt/python": build / "CommonLayer" / "python"}
    for function in makefile_functions():
        found[f"/var/task ({function})"] = build / function
    return found


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_every_shipped_module_has_unchecked_hash_bytecode_for_python313(sam_build):
    for runtime_dir, code in code_directories(sam_build).items():
        sources = sorted(code.rglob("*.py"))
        assert sources, runtime_dir
        for source in sources:
            pyc = Path(importlib.util.cache_from_source(str(source)))
            assert pyc.name.endswith(f".{CACHE_TAG}.pyc")
            assert pyc.exists(), f"no bytecode for {source.relative_to(code)}"
            data = pyc.read_bytes()
            assert data[:4] == importlib.util.MAGIC_NUMBER, pyc
            assert int.from_bytes(data[4:8], "little") == UNCHECKED_HASH, f"{pyc} is not unchecked-hash"
            # The hash is of this very source, so the .pyc is not stale.
            assert data[8:16] == importlib.util.source_hash(source.read_bytes()), f"{pyc} is stale"
            # Tracebacks on Lambda name the file where Lambda has it, not a build machine's temporary path.
            code_object = marshal.loads(data[PYC_HEADER_SIZE:])  # noqa: S302 (our own build's output)
            relative = source.relative_to(code).as_posix()
            assert code_object.co_filename == f"{runtime_dir.split()[0]}/{relative}"


def test_nothing_unused_ships(sam_build):
    for runtime_dir, code in code_directories(sam_build).items():
        files = [p.relative_to(code) for p in code.rglob("*") if p.is_file()]
        stray_bytecode = [
            f for f in files if f.suffix in (".pyc", ".pyo") and not f.name.endswith(f".{CACHE_TAG}.pyc")
        ]
        assert not stray_bytecode, f"{runtime_dir}: bytecode for another Python: {stray_bytecode[:5]}"
        assert not [f for f in files if f.suffix == ".pyc" and f.parent.name != "__pycache__"]
        assert not [f for f in files if {"tests", "test"} & set(f.parts[:-1])], runtime_dir
        assert not [f for f in files if f.suffix == ".pyi" or f.parts[0].endswith("-stubs")], runtime_dir
        assert not [f for f in files if f.name in ("RECORD", "INSTALLER", "REQUESTED", "Makefile")]
    layer = sam_build / "CommonLayer" / "python"
    assert not list(layer.glob("botocore/data/*/*/examples-1.json"))
    assert not (layer / "requirements.txt").exists()
    # Licences and package metadata stay.
    assert list(layer.glob("*.dist-info/METADATA"))
    assert list(layer.glob("boto3-*.dist-info/LICENSE*"))


def test_the_layer_is_built_for_the_architecture_it_was_asked_for(sam_build, tmp_path):
    built = [p.name for p in (sam_build / "CommonLayer" / "python").rglob("*.so")]
    assert built
    assert all("x86_64" in name for name in built), built
    # arm64, the deployed default: the same Makefile through the other ContextPath, wheels for aarch64.
    env = os.environ | {"PATH": f"{python313_bin_dir()}:{os.environ['PATH']}", "ARTIFACTS_DIR": str(tmp_path)}
    subprocess.run(
        ["make", "--makefile", str(ROOT / "layers/common/arch/arm64/Makefile"), "build-CommonLayer"],
        cwd=ROOT / "layers" / "common", env=env, check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    arm = [p.name for p in (tmp_path / "python").rglob("*.so")]
    assert arm
    assert all("aarch64" in name for name in arm), arm


def test_the_layer_keeps_the_botocore_model_of_every_service_the_code_calls(sam_build):
    kept = {
        p.name for p in (sam_build / "CommonLayer" / "python" / "botocore" / "data").iterdir() if p.is_dir()
    }
    called: dict[str, str] = {}
    for directory in SOURCES:
        for source in directory.rglob("*.py"):
            text = source.read_text()
            for service in CLIENT_CALL.findall(text):
                called[service] = str(source.relative_to(ROOT))
            for usage, service in POWERTOOLS_SERVICES.items():
                if usage in text:
                    called[service] = str(source.relative_to(ROOT))
    assert {"dynamodb", "secretsmanager", "sns"} <= set(called)
    missing = {service: where for service, where in called.items() if service not in kept}
    assert not missing, f"add these to BOTOCORE_SERVICES in {LAYER_MAKEFILE.relative_to(ROOT)}: {missing}"
    # The X-Ray SDK's sampler creates an xray client outside Lambda (tests, sam local).
    assert "xray" in kept


def test_the_function_and_the_layer_are_built_by_the_makefiles():
    resources = load_template()["Resources"]
    layer = resources["CommonLayer"]["Metadata"]

    assert layer["BuildMethod"] == "makefile"
    assert layer["ContextPath"] == {"Fn::Sub": "layers/common/arch/${Architecture}"}
    assert set(load_template()["Parameters"]["Architecture"]["AllowedValues"]) == {
        p.name for p in (ROOT / "layers" / "common" / "arch").iterdir()
    }
    assert "PingFunction" in makefile_functions()
    for function in makefile_functions():
        assert resources[function]["Metadata"]["ContextPath"] == "functions"


def test_the_build_is_reproducible(sam_build, tmp_path):
    again = tmp_path / "again"
    sam_build_into(again)

    for name in ("CommonLayer", *makefile_functions()):
        first, second = tree_digest(sam_build / name), tree_digest(again / name)
        assert sorted(first) == sorted(second), f"{name}: different file lists"
        differing = [path for path in first if first[path] != second[path]]
        assert not differing, f"{name}: different bytes in {differing[:10]}"
        assert any(path.endswith(".pyc") for path in first)
