"""The layout rule: tests may import tools/, never the other way round, and bench/ does not import tests/
either. Imports inside functions count too."""

import ast
from pathlib import Path

from tests.support import ROOT


def imported_modules(source: str, package: str) -> set[str]:
    """Every module that ``source`` (a module of ``package``) imports, anywhere in it, relative imports
    resolved."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".") if node.level else []
            base = parts[: len(parts) - node.level + 1]
            found.add(".".join([*base, *([node.module] if node.module else [])]))
    return found


def imports_of_tests(path: Path) -> list[str]:
    package = ".".join(path.relative_to(ROOT).parent.parts)
    modules = imported_modules(path.read_text(encoding="utf-8"), package)
    return sorted(m for m in modules if m == "tests" or m.startswith("tests."))


def test_tools_and_bench_never_import_tests():
    sources = sorted(path for folder in ("tools", "bench") for path in (ROOT / folder).rglob("*.py"))
    assert len(sources) > 20

    offenders = {str(path.relative_to(ROOT)): found for path in sources if (found := imports_of_tests(path))}

    assert offenders == {}


def test_the_check_sees_imports_inside_functions_and_relative_ones():
    source = """
import json
import tests
def run():
    from tests.conftest import ROOT
    if True:
        import tests.support as support
from . import sibling
from ..other import name
"""

    found = imported_modules(source, "tools.standins")

    assert found == {"json", "tests", "tests.conftest", "tests.support", "tools.standins", "tools.other"}
