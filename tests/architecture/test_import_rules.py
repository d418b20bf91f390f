"""The layer rules of docs/architecture.md, checked on the source: every import labcap makes
(at the top of a file or inside a function) goes down the layers, never up or sideways; no
module imports another package's private names or modules; the import graph has no cycle."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# Lower numbers are lower layers. A module may import its own package, and any package of a
# lower layer; packages of one layer are independent of each other.
LAYERS: dict[str, int] = {
    # core: records, the run directory, shared arithmetic; every layer may use them
    "labcap": 0,
    "labcap.errors": 0,
    "labcap.model": 0,
    "labcap.slo": 0,
    "labcap.histograms": 0,
    "labcap.redact": 0,
    "labcap.environment": 0,
    "labcap.store": 0,
    "labcap.lazy": 0,
    "labcap.validity": 0,
    "labcap.options": 0,
    "labcap.schemas": 0,
    "labcap.extras": 0,
    "labcap.units": 0,
    "labcap.config": 0,
    "labcap.clients": 1,
    "labcap.collectors": 2,
    "labcap.lab": 2,
    "labcap.planner": 3,
    "labcap.loadtests": 4,
    "labcap.measure": 5,
    "labcap.reports": 5,
    "labcap.deploy_profiles": 5,
    "labcap.verify": 6,
    "labcap.cli": 7,
    "labcap.cliopts": 6,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _room(module: str) -> str:
    """The layer entry a module belongs to (its longest listed prefix)."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        if name in LAYERS:
            return name
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS and the docs")


def _imports() -> list[tuple[str, str, list[str], int]]:
    """(importer, imported module, imported names, line) for every labcap import."""
    out = []
    for path in sorted(SRC.rglob("*.py")):
        importer = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module == "labcap" or node.module.startswith("labcap."):
                    names = [a.name for a in node.names]
                    out.append((importer, node.module, names, node.lineno))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("labcap"):
                        out.append((importer, alias.name, [], node.lineno))
    return out


IMPORTS = _imports()


def test_the_source_was_read():
    importers = {i for i, *_ in IMPORTS}
    assert {"labcap.cli", "labcap.measure.run", "labcap.planner.capacity"} <= importers


KNOWN = {_module_name(p) for p in SRC.rglob("*.py")}


def _targets(module: str, names: list[str]) -> list[str]:
    """``from labcap.pkg import mod`` imports the submodule when there is one."""
    return [f"{module}.{n}" for n in names if f"{module}.{n}" in KNOWN] or [module]


def test_imports_go_down_the_layers_only():
    wrong = []
    pairs = [(i, t, line) for i, m, names, line in IMPORTS for t in _targets(m, names)]
    for importer, module, line in pairs:
        src, dst = _room(importer), _room(module)
        if src == dst or LAYERS[dst] < LAYERS[src] or (LAYERS[dst] == LAYERS[src] == 0):
            continue
        wrong.append(
            f"{importer}:{line} imports {module} ({src} L{LAYERS[src]} -> {dst} L{LAYERS[dst]})"
        )
    assert not wrong, "\n".join(wrong)


def _package(module: str) -> str:
    return module.rsplit(".", 1)[0] if "." in module else module


def test_no_private_names_or_modules_across_packages():
    wrong = []
    for importer, module, names, line in IMPORTS:
        own = _package(importer) if not (SRC / Path(*importer.split("."))).is_dir() else importer
        parts = module.split(".")
        for i, part in enumerate(parts):
            if part.startswith("_") and not part.startswith("__"):
                owner = ".".join(parts[:i])
                if not own.startswith(owner) or own == "":
                    wrong.append(f"{importer}:{line} imports private module {module}")
        target_pkg = module if (SRC / Path(*parts)).is_dir() else _package(module)
        if own != target_pkg and not own.startswith(target_pkg + "."):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                wrong.append(f"{importer}:{line} imports {', '.join(private)} from {module}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    graph: dict[str, set[str]] = defaultdict(set)
    for importer, module, names, _line in IMPORTS:
        for t in _targets(module, names):
            if t in KNOWN and t != importer:
                graph[importer].add(t)
    cycles = _strongly_connected(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(sorted(c)) for c in cycles)


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm: every component of more than one module is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


@pytest.mark.parametrize(
    "importer, module, allowed",
    [
        ("labcap.planner.capacity", "labcap.measure.run", False),
        ("labcap.collectors.docker", "labcap.planner.capacity", False),
        ("labcap.measure.run", "labcap.planner.capacity", True),
        ("labcap.reports.html", "labcap.deploy_profiles.render", False),
    ],
)
def test_the_rule_itself_tells_up_from_down(importer, module, allowed):
    src, dst = _room(importer), _room(module)
    ok = src == dst or LAYERS[dst] < LAYERS[src] or LAYERS[dst] == LAYERS[src] == 0
    assert ok is allowed
