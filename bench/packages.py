"""``make bench``: the packages a function ships, as ``pip install`` of its requirements puts them in its
package (for the runtime's boto3 and the peer as ``sam build`` ships it)."""

import re
import shutil
from collections.abc import Iterable
from importlib.metadata import Distribution, distributions
from pathlib import Path


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def top_level_names(distribution: Distribution) -> set[str]:
    """What a distribution installs at the top of site-packages: package directories and module files
    (``six.py``, compiled ``*.so``), its metadata left out."""
    names = set()
    for file in distribution.files or []:
        first = file.parts[0]
        if first.endswith((".dist-info", ".data")) or first in ("..", "__pycache__", "bin"):
            continue
        if len(file.parts) > 1 or first.endswith((".py", ".so")):
            names.add(first)
    return names


def module_name(entry: str) -> str:
    return entry.split(".", 1)[0]


def shipped_packages(site: Path, requirements: Iterable[str]) -> list[tuple[Distribution, set[str]]]:
    """What ``pip install`` of ``requirements`` puts in a function's package: their distributions and those
    of their dependencies (extras left out), each with its top-level names."""
    installed = {_canonical(d.metadata["Name"]): d for d in distributions(path=[str(site)])}
    todo, seen = [_canonical(r) for r in requirements], set()
    found = []
    while todo:
        name = todo.pop()
        if name in seen or name not in installed:
            continue
        seen.add(name)
        distribution = installed[name]
        found.append((distribution, top_level_names(distribution)))
        for requirement in distribution.requires or []:
            if "extra==" not in re.sub(r"\s+", "", requirement):
                todo.append(_canonical(re.split(r"[\s<>=!~;(\[]", requirement.strip(), maxsplit=1)[0]))
    return found


def install(
    packages: list[tuple[Distribution, set[str]]], site: Path, target: Path, *, bytecode: bool
) -> Path:
    """The packages of ``site`` in a directory of their own: linked, bytecode included, or copied without
    it (as ``sam build``'s default Python build ships them); their metadata too."""
    target.mkdir()
    for distribution, names in packages:
        [info] = {f.parts[0] for f in distribution.files or [] if f.parts[0].endswith(".dist-info")}
        for path in (site / name for name in [*names, info]):
            if bytecode:
                (target / path.name).symlink_to(path)
            elif path.is_dir():
                shutil.copytree(path, target / path.name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(path, target / path.name)
    return target
