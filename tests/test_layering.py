"""Import layering: each package's modules import only modules of lower layers, never in a
cycle. Imports are read with ``ast`` (module level and inside functions alike), so a lazy
``from .x import y`` counts as much as a top-level one.

:func:`check_layers` is generic: give it a package folder and an ordered list of layers
(lowest first, each a set of module names) and it returns every violation. Add another
package with its own ``*_LAYERS`` list and one more test (the trainer and the
integration have theirs; the engine's isolation is tests/engine/test_isolation.py).
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The trainer, lowest layer first. A module may import modules of its own layer's
# predecessors only; modules of one layer must not import each other.
TRAINER_LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(layer)
    for layer in (
        {"__init__", "errors", "summary"},
        {"appliances"},
        {"config"},
        {"files"},
        {"data", "baselines", "synthetic"},
        {"recorder"},
        {"sources", "history_api"},
        {"recipes"},
        {"windows"},
        {"calibration", "models"},
        {"keras_backend"},
        {"distill"},
        {"train"},
        {"runs"},
        {"quantize"},
        {"evaluate", "inspection"},
        {"export"},
        {"pipeline", "bundle"},
        {"parents"},
        {"finetune", "qat"},
        {"cli"},
        {"__main__"},
    )
)


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node that runs: the bodies of ``if TYPE_CHECKING:`` only name types for the
    type checker (HA's ``data.py`` names its coordinator that way), so they are skipped."""
    nodes: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        if _is_type_checking(node):
            assert isinstance(node, ast.If)
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return nodes


def module_imports(path: Path, package: str, module: str, depth: int = 0) -> set[str]:
    """Modules of ``package`` imported anywhere in ``path`` that runs (relative or absolute).

    ``depth`` is how many sub-package folders lie between ``package`` and ``path`` (1 for
    ``trainer/data/core.py``, whose node ``module`` is the sub-package ``data``): relative
    imports of a lower level stay inside that sub-package and are not edges."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == package and len(parts) > 1:
                    found.add(parts[1])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # Level 1 is the file's own package, from a module and from ``__init__``
                # alike; level ``depth + 1`` is ``package``.
                if node.level > depth + 1:
                    continue  # beyond the package: not ours
                if node.level <= depth:
                    continue  # inside the sub-package: internal
                target = node.module.split(".")[0] if node.module else None
            elif node.module and node.module.split(".")[0] == package:
                rest = node.module.split(".")[1:]
                target = rest[0] if rest else None
            else:
                continue
            if target is None:  # from . import a, b  /  from package import a, b
                found.update(alias.name for alias in node.names)
            else:
                found.add(target)
    found.discard(module)
    return found


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Module -> modules of the same package it imports. The nodes are the ``*.py`` directly
    in the folder and its sub-packages (folders with an ``__init__.py``), each sub-package
    one node by its folder name, carrying the imports of all its files."""
    package = package_dir.name
    files = {p.stem: [p] for p in sorted(package_dir.glob("*.py"))}
    for init in sorted(package_dir.glob("*/__init__.py")):
        files[init.parent.name] = sorted(init.parent.rglob("*.py"))
    graph: dict[str, set[str]] = {}
    for name, paths in files.items():
        found: set[str] = set()
        for path in paths:
            depth = len(path.relative_to(package_dir).parts) - 1
            found |= module_imports(path, package, name, depth)
        graph[name] = {m for m in found if m in files}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (``[a, b, ..., a]``), or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def check_layers(package_dir: Path, layers: Sequence[frozenset[str]]) -> list[str]:
    """Every problem with ``package_dir``'s imports against ``layers`` (lowest first):
    a cycle, a module in no layer (or in two), an import of the same or a higher layer."""
    graph = import_graph(package_dir)
    problems: list[str] = []
    cycle = find_cycle(graph)
    if cycle:
        problems.append("import cycle: " + " -> ".join(cycle))
    rank: dict[str, int] = {}
    for i, layer in enumerate(layers):
        for name in layer:
            if name in rank:
                problems.append(f"{name} is in two layers")
            rank[name] = i
    for name in sorted(graph):
        if name not in rank:
            problems.append(f"{name} is in no layer")
    for name, targets in sorted(graph.items()):
        if name not in rank:
            continue
        for target in sorted(targets):
            if target in rank and rank[target] >= rank[name]:
                where = "its own" if rank[target] == rank[name] else "a higher"
                problems.append(f"{name} imports {target}, of {where} layer")
    return problems


# ---------------------------------------------------------------------------- trainer


def test_trainer_layers_have_no_cycle_and_point_down() -> None:
    assert check_layers(ROOT / "trainer", TRAINER_LAYERS) == []


def test_trainer_graph_sees_function_level_imports() -> None:
    graph = import_graph(ROOT / "trainer")
    assert "runs" in graph["cli"]  # imported inside _run_quantize only
    assert {"data", "sources"} <= graph["cli"]


def test_trainer_data_package_is_one_node() -> None:
    graph = import_graph(ROOT / "trainer")
    assert "core" not in graph and "refit" not in graph  # data's modules, not nodes
    assert graph["data"] == {"appliances", "config", "errors"}  # .core from .refit: internal


def test_no_trainer_module_shadows_the_standard_library() -> None:
    import sys

    names = set(import_graph(ROOT / "trainer"))  # modules and sub-packages
    shadowing = names & sys.stdlib_module_names
    assert shadowing == set()


# ---------------------------------------------------------------------------- integration

# The integration, lowest layer first: the engine sub-package (imports nothing of the
# integration), constants and pure helpers, the model store, the entry's types (data.py, a
# leaf at run time), then the runtime pieces, the coordinator, the entity base class, the
# platforms and setup, and HA's entry points on top.
INTEGRATION_LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(layer)
    for layer in (
        {"engine"},
        {"const", "facts", "history"},
        {"model_store", "installed"},
        {"data"},
        {"mains", "issues", "appliance"},
        {"inference", "mains_watch"},
        {"coordinator"},
        {"entity", "adaptation"},
        {
            "sensor",
            "binary_sensor",
            "button",
            "diagnostics",
            "config_flow",
            "entry_setup",
            "repairs",
        },
        {"__init__"},
    )
)


def test_integration_layers_have_no_cycle_and_point_down() -> None:
    assert check_layers(ROOT / "custom_components" / "nilm", INTEGRATION_LAYERS) == []


def test_integration_data_is_a_leaf_at_run_time() -> None:
    graph = import_graph(ROOT / "custom_components" / "nilm")
    assert graph["data"] == {"const"}


# ---------------------------------------------------------------------------- the checker


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    for name, text in files.items():  # "sub/a" is a module of the sub-package sub
        path = pkg / f"{name}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return pkg


def test_checker_finds_a_cycle_through_a_function_level_import(tmp_path: Path) -> None:
    pkg = _package(
        tmp_path,
        {
            "__init__": "",
            "low": "def f():\n    from .high import g\n    return g\n",
            "high": "from pkg.low import f\n",
        },
    )
    assert find_cycle(import_graph(pkg)) in (["high", "low", "high"], ["low", "high", "low"])
    problems = check_layers(pkg, [frozenset({"__init__"}), frozenset({"low"}), frozenset({"high"})])
    assert any(p.startswith("import cycle:") for p in problems)
    assert "low imports high, of a higher layer" in problems


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("from . import b\n", "b"),
        ("from .b import x\n", "b"),
        ("import pkg.b\n", "b"),
        ("from pkg import b\n", "b"),
        ("from pkg.b import x\n", "b"),
    ],
)
def test_checker_reads_every_import_form(tmp_path: Path, text: str, target: str) -> None:
    pkg = _package(tmp_path, {"__init__": "", "a": text, "b": ""})
    assert import_graph(pkg)["a"] == {target}
    assert check_layers(pkg, [frozenset({"__init__", "a"}), frozenset({"b"})]) == [
        "a imports b, of a higher layer"
    ]


def test_checker_skips_type_checking_imports_only(tmp_path: Path) -> None:
    text = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .b import B\nelse:\n    from .c import C\n"
        "import typing\nif typing.TYPE_CHECKING:\n    from .b import B2\n"
    )
    pkg = _package(tmp_path, {"__init__": "", "a": text, "b": "", "c": ""})
    assert import_graph(pkg)["a"] == {"c"}


def test_checker_accepts_a_clean_package_and_flags_unlisted_modules(tmp_path: Path) -> None:
    pkg = _package(tmp_path, {"__init__": "", "a": "", "b": "from .a import x\n", "c": ""})
    layers = [frozenset({"__init__", "a"}), frozenset({"b"})]
    assert check_layers(pkg, layers) == ["c is in no layer"]
    assert check_layers(pkg, [*layers, frozenset({"c"})]) == []


@pytest.mark.parametrize(
    "text",
    [
        "from ..high import x\n",
        "from .. import high\n",
        "import pkg.high\n",
        "from pkg.high import x\n",
    ],
)
def test_checker_reports_a_sub_package_module_importing_a_higher_layer(
    tmp_path: Path, text: str
) -> None:
    pkg = _package(
        tmp_path,
        {
            "__init__": "",
            "low": "",
            "high": "",
            "sub/__init__": "from .a import y\n",
            "sub/a": "from .b import x\nfrom pkg.sub.b import x\nfrom ..low import z\n",
            "sub/b": text,
        },
    )
    assert import_graph(pkg)["sub"] == {"low", "high"}  # .a, .b and pkg.sub.b are internal
    layers = [frozenset({"__init__"}), frozenset({"low"}), frozenset({"sub"}), frozenset({"high"})]
    assert check_layers(pkg, layers) == ["sub imports high, of a higher layer"]
    assert check_layers(pkg, [layers[0], layers[1], layers[3], layers[2]]) == []
