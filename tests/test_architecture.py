"""The package's structure as a test: the import drawing has no cycle, every import runs down the
layers, and no module outgrows what one reader holds in mind."""

from __future__ import annotations

import ast
from pathlib import Path

import phanet

SRC = Path(phanet.__file__).parent

#: The layers, lowest first: a module may import from its own layer and the ones below. Each entry is a
#: module or a package (every module under it). docs/architecture.md draws the same map.
LAYERS = (
    (
        "foundation",
        ("phanet.errors", "phanet.text", "phanet.compat", "phanet.runtime", "phanet.files", "phanet.checks", "phanet.version"),
    ),
    ("vocabulary", ("phanet.models.info",)),
    ("configuration", ("phanet.config",)),
    (
        "records",
        (
            "phanet.data.records",
            "phanet.data.io",
            "phanet.data.classes",
            "phanet.data.faces",
            "phanet.data.detectors",
            "phanet.data.openface",
        ),
    ),
    ("renderer", ("phanet.synth",)),
    ("data", ("phanet.data",)),
    ("networks", ("phanet.models", "phanet.losses")),
    ("files of a network", ("phanet.export", "phanet.checkpoints", "phanet.results")),
    ("inference", ("phanet.inference",)),
    ("training", ("phanet.training",)),
    ("uses of a trained network", ("phanet.evaluation", "phanet.predict", "phanet.reports", "phanet.app")),
    ("experiments", ("phanet.experiments", "phanet.demo", "phanet.workflow", "phanet.analysis")),
    ("command line", ("phanet.commands", "phanet.cli", "phanet.__main__", "phanet")),
)
#: The one module allowed past 450 lines: the head's geometry, one long description of a face.
LONG_MODULES = {"phanet.synth.head"}
MAX_LINES = 450


def _modules() -> dict[str, Path]:
    modules = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Every module's imports of the package's modules, those inside functions included."""

    def owner(name: str) -> str:
        while name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "phanet":
                found |= {owner(f"{node.module}.{alias.name}") for alias in node.names}
            elif isinstance(node, ast.Import):
                found |= {owner(alias.name) for alias in node.names if alias.name.split(".")[0] == "phanet"}
        graph[name] = found - {name}
    return graph


def _layer(module: str) -> int:
    """The layer of the most specific entry that holds ``module``."""
    best, depth = -1, -1
    for index, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            if (module == entry or module.startswith(entry + ".")) and entry.count(".") > depth:
                best, depth = index, entry.count(".")
    assert best >= 0, f"{module} is in no layer"
    return best


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_drawing_has_no_cycle():
    graph = _imports(_modules())
    assert len(graph) > 100
    assert _cycles(graph) == []


def test_every_import_runs_down_the_layers():
    graph = _imports(_modules())
    upward = sorted(
        f"{module} ({LAYERS[_layer(module)][0]}) imports {other} ({LAYERS[_layer(other)][0]})"
        for module, others in graph.items()
        for other in others
        if _layer(other) > _layer(module)
    )
    assert upward == []


def test_the_layer_check_sees_an_upward_import():
    graph = {"phanet.models.phanet": {"phanet.training.module"}, "phanet.training.module": {"phanet.models.phanet"}}
    assert _layer("phanet.models.phanet") < _layer("phanet.training.module")
    assert _cycles(graph) == [["phanet.models.phanet", "phanet.training.module"]]
    assert _layer("phanet.models.info") < _layer("phanet.config") < _layer("phanet.models")


def test_no_module_outgrows_one_reader():
    lengths = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    assert {name for name, lines in lengths.items() if lines > MAX_LINES} <= LONG_MODULES
