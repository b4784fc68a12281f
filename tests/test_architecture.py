"""The shape of the package: floors that import only downwards, no circles, no module
reaching into another's private names, no file over 500 lines (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "agentdiff_coordination"
ROOT = "agentdiff_coordination"

#: floors from the ground up; a module's floor is that of the longest prefix it matches
FLOORS: list[tuple[str, ...]] = [
    ("core.records", "core.errors", "core.validation", "core.settings", "core.rates", "core.limit_values",
     "core.provider_headers", "core.snapshots", "core.observers", "core.retry", "core.extras", "core.plugins",
     "core.version", "core"),
    ("core.backends",),
    ("core.bus", "core.handlers", "core.subscriptions"),
    ("core.runtime",),
    ("core.locks", "core.limits", "core.permits", "core.events"),
    ("core.coordinate", "core.compat"),
    ("status", "recording", "timeline", "telemetry", "testing"),
    ("adapters", "integrations"),
    ("cli", "demo", "pytest_plugin", "__main__", ""),
]


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = modules()


def floor(module: str) -> int:
    best, best_len = None, -1
    for number, prefixes in enumerate(FLOORS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".") or prefix == "") and len(prefix) > best_len:
                best, best_len = number, len(prefix)
    assert best is not None, f"{module} is on no floor: add it to FLOORS and docs/architecture.md"
    return best


def imports(module: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import of the package's own modules."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join([*base, *([node.module] if node.module else [])])
            elif node.module and (node.module == ROOT or node.module.startswith(ROOT + ".")):
                target = node.module[len(ROOT) + 1:]
            else:
                continue
            names = [a.name for a in node.names]
            for name in names:  # "from . import events" names a module
                sub = f"{target}.{name}" if target else name
                if sub in MODULES:
                    out.append((sub, [], node.lineno))
            if target in MODULES:
                out.append((target, [n for n in names if f"{target}.{n}".strip(".") not in MODULES], node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(ROOT + "."):
                    out.append((alias.name[len(ROOT) + 1:], [], node.lineno))
    return out


def test_every_import_runs_down_or_along_a_floor() -> None:
    upward = []
    for module, path in MODULES.items():
        for target, _, line in imports(module, path):
            if target != module and floor(target) > floor(module):
                upward.append(f"{module} (floor {floor(module)}) imports {target} (floor {floor(target)}) at line {line}")
    assert not upward, "\n".join(upward)


def test_there_is_no_import_circle() -> None:
    # a module importing its own package's face (``from . import x``) is not an edge of a circle
    graph = {m: {t for t, _, _ in imports(m, p) if t != m and not m.startswith(t + ".") and t != ""} for m, p in MODULES.items()}
    seen: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if seen.get(nxt) == 1:
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in seen:
                visit(nxt)
        stack.pop()
        seen[node] = 2

    for module in sorted(graph):
        if module not in seen:
            visit(module)
    assert not circles, "\n".join(" -> ".join(c) for c in circles)


def test_no_module_reaches_into_another_modules_private_names() -> None:
    reaching = []
    for module, path in MODULES.items():
        for target, names, line in imports(module, path):
            for name in names:
                if name.startswith("_") and not name.startswith("__"):
                    reaching.append(f"{module} imports {name} from {target} at line {line}")
        tree = ast.parse(path.read_text())
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                for alias in node.names:
                    aliases[alias.asname or alias.name] = alias.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")
                and any(m.endswith(aliases[node.value.id]) for m in MODULES)
            ):
                reaching.append(f"{module} reads {node.value.id}.{node.attr} at line {node.lineno}")
    assert not reaching, "\n".join(reaching)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_file_is_over_500_lines(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= 500, f"{MODULES[module].relative_to(PACKAGE.parent)} has {lines} lines: split it"
