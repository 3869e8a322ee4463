"""The package's layers, read from its source with ast: every import (function-level ones too) goes down or
sideways, never up, and no two modules or packages import each other, directly or round a circle."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "lego_vae"

# Bottom to top: a module may import its own layer's and lower layers' modules only. A layer is a list of
# module prefixes: a package (lego_vae.model) or one module (lego_vae.files).
LAYERS = [
    ["lego_vae.errors", "lego_vae.files", "lego_vae.strict_json", "lego_vae.commandline", "lego_vae.conf",
     "lego_vae.pictures"],
    ["lego_vae.model", "lego_vae.data"],  # plain torch; the data sources and the DataModule
    ["lego_vae.config"],                  # the schema and validation (reads data.images' limits)
    ["lego_vae.runs"],                    # a checkpoint read back through the config system
    ["lego_vae.training"],
    ["lego_vae.evaluation", "lego_vae.explorer"],
    ["lego_vae.pipeline"],                # train, then evaluate
    ["lego_vae.tuning"],
    ["lego_vae.cli", "lego_vae.train", "lego_vae.tune", "lego_vae.evaluate", "lego_vae.generate",
     "lego_vae.explore"],
]
LIGHTNING = ("lightning", "pytorch_lightning")



def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported(name: str, path: Path) -> set[str]:
    """Every module name a module imports, at any level of its code (relative imports resolved)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            package = name if path.name == "__init__.py" else name.rpartition(".")[0]
            base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module) if p)
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in MODULES)
    return names


def own(name: str) -> str | None:
    """The lego_vae module an imported name is (its longest known prefix), None for a third-party one."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


EDGES = {(m, target) for m, path in MODULES.items() for n in imported(m, path)
         if (target := own(n)) is not None and target != m}
THIRD_PARTY = {(m, n.split(".")[0]) for m, path in MODULES.items() for n in imported(m, path) if own(n) is None}


def layer(module: str) -> int:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer of tests/test_layers.py's LAYERS: add it to one")


def package(module: str) -> str:
    """lego_vae.<package> for a module of a subpackage, else the module itself (lego_vae.files)."""
    return ".".join(module.split(".")[:2])


def imports_of(prefix: str, edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return {(a, b) for a, b in edges if a == prefix or a.startswith(prefix + ".")}


def circles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan): each holds at least one circle."""
    graph: dict[str, list[str]] = {}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while (top := stack.pop()) != node:
                component.append(top)
            if component:
                found.append(sorted([node, *component]))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_reader_sees_every_import() -> None:
    # Function-level imports count: lego_vae.explorer.serve imports the Gradio app inside explore().
    assert ("lego_vae.explorer.serve", "lego_vae.explorer.app") in EDGES
    assert ("lego_vae.training.lit", "lightning") in THIRD_PARTY


def test_no_import_goes_up_a_layer() -> None:
    upward = sorted((a, b) for a, b in EDGES if layer(b) > layer(a))
    assert upward == []


def test_the_model_needs_neither_the_config_system_nor_lightning() -> None:
    model = imports_of("lego_vae.model", EDGES)
    assert sorted((a, b) for a, b in model if b.startswith("lego_vae.config")) == []
    assert sorted((a, b) for a, b in imports_of("lego_vae.model", THIRD_PARTY) if b in LIGHTNING) == []


def test_training_and_the_explorer_never_import_the_evaluation() -> None:
    for prefix in ("lego_vae.training", "lego_vae.explorer"):
        assert sorted((a, b) for a, b in imports_of(prefix, EDGES) if b.startswith("lego_vae.evaluation")) == []


def test_no_circles_between_modules_or_packages() -> None:
    assert circles(EDGES) == []
    between_packages = {(package(a), package(b)) for a, b in EDGES if package(a) != package(b)}
    assert circles(between_packages) == []
