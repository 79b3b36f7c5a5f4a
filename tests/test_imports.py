"""The package's shape, checked on the source (every import, inside functions too):

    ui, the command lines          → anything (they put the studio together)
    jobs                           → train, data, models and the base modules
    compare                        → train.store (runs only through it), train.config, data, models, base
    decide                         → train.config, data, models, base
    train                          → data, models, base
    data                           → models, base
    quotas                         → the two stores, base
    models                         → base
    base: errors, paths, escape, units, mode, limits, access (access may name a model: models.catalog)

No import cycles between modules, gradio only in studio/ui, and nothing but a command line imports the UI."""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "studio"
BASE = {"errors", "paths", "escape", "units", "mode", "limits", "access"}
ALLOWED = {
    "jobs": {"train", "data", "models"},
    "compare": {"train.store", "train.config", "data", "models"},
    "decide": {"train.config", "data", "models"},
    "train": {"data", "models"},
    "data": {"models"},
    "quotas": {"data.store", "train.store"},
    "models": set(),
    "access": {"models.catalog"},
}


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports() -> dict[str, set[str]]:
    """module → the studio modules it imports (a package's __init__ counts only when imported by name)."""
    known = modules()
    graph = defaultdict(set)
    for module, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [
                    f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module
                    for alias in node.names
                ]
            else:
                continue
            for target in targets:
                if target.startswith("studio.") or target == "studio":
                    graph[module].add(target)
    return graph


def third_party(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _part(module: str) -> str:
    """studio.train.store → "train"; studio.quotas → "quotas"."""
    return module.split(".")[1] if module.count(".") >= 1 else module


def _is_command_line(module: str) -> bool:
    return module in ("studio.cli", "studio.__main__") or module.endswith(".cli")


def test_gradio_only_in_the_ui():
    outside = [
        name for name, path in modules().items() if "gradio" in third_party(path) and not name.startswith("studio.ui")
    ]
    assert not outside


def test_only_command_lines_import_the_ui():
    offenders = [
        (source, target)
        for source, targets in imports().items()
        for target in targets
        if target.startswith("studio.ui") and not source.startswith("studio.ui") and not _is_command_line(source)
    ]
    assert not offenders


def test_each_package_imports_only_what_lies_below_it():
    offenders = []
    for source, targets in imports().items():
        part = _part(source)
        if part == "ui" or _is_command_line(source) or source == "studio":
            continue
        allowed = ALLOWED.get(part, set())
        for target in targets:
            if target == "studio":  # the package itself: its version and folder
                continue
            target_part, rest = _part(target), target.split(".", 2)[2] if target.count(".") >= 2 else ""
            if target_part == part or target_part in BASE and part not in BASE:
                continue
            if part in BASE and target_part in BASE:
                continue
            qualified = f"{target_part}.{rest.split('.')[0]}" if rest else target_part
            if target_part in allowed or qualified in allowed:
                continue
            offenders.append(f"{source} → {target}")
    assert not offenders, "\n".join(sorted(offenders))


def test_no_import_cycles():
    graph = imports()
    known = modules()
    # A submodule importing its own package's __init__ is Python's normal order, not a cycle of ours.
    edges = {
        source: {t for t in targets if t in known and not source.startswith(t + ".")}
        for source, targets in graph.items()
    }
    cycles, index, low, stack, on_stack = [], {}, {}, [], set()

    def visit(node):  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in known:
        if module not in index:
            visit(module)
    assert not cycles


def test_the_checks_see_an_edge_that_breaks_the_rules(tmp_path, monkeypatch):
    """The checker itself: a models module importing the UI, and a cycle, are both found."""
    fake = tmp_path / "studio"
    (fake / "models").mkdir(parents=True)
    (fake / "train").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "models" / "__init__.py").write_text("")
    (fake / "train" / "__init__.py").write_text("")
    (fake / "models" / "a.py").write_text("def f():\n    from studio.train import b\n")
    (fake / "train" / "b.py").write_text("from studio.models import a\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake)
    assert "studio.train.b" in imports()["studio.models.a"]
    for check in (test_each_package_imports_only_what_lies_below_it, test_no_import_cycles):
        try:
            check()
        except AssertionError:
            continue
        raise AssertionError(f"{check.__name__} missed a forbidden import")
