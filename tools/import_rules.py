"""The import rules of the Lambda code, checked from the source (``make lint`` runs this; so do the tests).

Imports run one way: model → clients (Stripe, the table, secrets, alerts) → logic → functions. A module
may import its own tier and the tiers before it, never a later one; no import cycle exists among the
project's modules (imports inside functions count, as they run too); and the libraries that reach the
outside world are imported only where the architecture says (docs/architecture.md).

    python -m tools.import_rules          # prints each broken rule; exit 1 if any
"""

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_ROOT = ROOT / "layers" / "common"
FUNCTIONS_ROOT = ROOT / "functions"

# Tiers in import order: the first prefix that matches a module names its tier.
TIERS: list[tuple[str, tuple[str, ...]]] = [
    ("errors", ("stripe_monitor.errors",)),
    ("model", ("stripe_monitor.model", "stripe_monitor.redaction", "stripe_monitor.observability")),
    ("config", ("stripe_monitor.config",)),
    (
        "clients",
        (
            "stripe_monitor.stripe",
            "stripe_monitor.store",
            "stripe_monitor.secrets_manager",
            "stripe_monitor.alerts",
        ),
    ),
    ("logic", ("stripe_monitor.logic",)),
    ("functions", ("stripe_monitor.wiring", "stripe_monitor.http_api", "functions")),
]
# Libraries that reach the outside world, and the only modules that may import them.
LIBRARY_OWNERS: dict[str, tuple[str, ...]] = {
    "urllib3": ("stripe_monitor.stripe",),
    "boto3": ("stripe_monitor.store", "stripe_monitor.secrets_manager", "stripe_monitor.alerts"),
    "botocore": ("stripe_monitor.store", "stripe_monitor.secrets_manager", "stripe_monitor.alerts"),
    "aws_lambda_powertools.event_handler": ("stripe_monitor.http_api", "functions"),
}


@dataclass(frozen=True)
class Module:
    name: str  # e.g. stripe_monitor.logic.pinger, functions.ping.app
    path: Path
    siblings: tuple[str, ...] = ()  # a function's own modules, imported by their bare names (``import api``)


def project_modules(package_root: Path = PACKAGE_ROOT, functions_root: Path = FUNCTIONS_ROOT) -> list[Module]:
    modules = []
    for path in sorted(package_root.rglob("*.py")):
        parts = path.relative_to(package_root).with_suffix("").parts
        modules.append(Module(".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    for function in sorted(p for p in functions_root.iterdir() if p.is_dir()):
        siblings = tuple(sorted(p.stem for p in function.glob("*.py")))
        for path in sorted(function.glob("*.py")):
            modules.append(Module(f"functions.{function.name}.{path.stem}", path, siblings))
    return modules


def imports_of(module: Module, known: set[str]) -> Iterator[tuple[str, int]]:
    """Every module ``module`` imports (anywhere in it), with the line: the project's by their module
    names, a function's siblings as ``functions.<function>.<name>``, libraries by their dotted names."""
    function_package = module.name.rsplit(".", 1)[0] if module.name.startswith("functions.") else None
    for node in ast.walk(ast.parse(module.path.read_text(), str(module.path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [n if n in known else node.module for n in names]
        else:
            continue
        for name in names:
            if function_package and name.split(".")[0] in module.siblings:
                name = f"{function_package}.{name}"
            yield name, node.lineno


def tier(name: str) -> int | None:
    for index, (_, prefixes) in enumerate(TIERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return index
    return None


def broken_rules(modules: list[Module]) -> list[str]:
    known = {m.name for m in modules}
    graph: dict[str, set[str]] = {m.name: set() for m in modules}
    problems = []
    for module in modules:
        own = tier(module.name)
        for name, line in imports_of(module, known):
            where = (
                f"{module.path.relative_to(ROOT) if module.path.is_relative_to(ROOT) else module.path}:{line}"
            )
            target = next(
                (k for k in sorted(known, key=len, reverse=True) if name == k or name.startswith(k + ".")),
                None,
            )
            if target is not None:
                if target != module.name:
                    graph[module.name].add(target)
                target_tier = tier(target)
                if own is not None and target_tier is not None and target_tier > own:
                    problems.append(
                        f"{where}: {module.name} ({TIERS[own][0]}) imports {target} ({TIERS[target_tier][0]})"
                    )
                continue
            for library, owners in LIBRARY_OWNERS.items():
                if (name == library or name.startswith(library + ".")) and not any(
                    module.name == o or module.name.startswith(o + ".") for o in owners
                ):
                    problems.append(
                        f"{where}: {module.name} imports {library} (only {', '.join(owners)} may)"
                    )
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules that import each other."""
    found, state = [], dict.fromkeys(graph, 0)  # 0 new, 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for following in sorted(graph[node]):
            if state[following] == 1:
                found.append([*path[path.index(following) :], following])
            elif state[following] == 0:
                visit(following)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if state[node] == 0:
            visit(node)
    return found


def main() -> int:
    problems = broken_rules(project_modules())
    for problem in problems:
        print(problem)
    if not problems:
        print(f"import rules: {len(project_modules())} modules, imports run one way, no cycle")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
