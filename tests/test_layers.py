"""Data flows one way: each module imports only from its own layer and the layers below it.

The layers, lowest first (a module's layer is the first name after ``alignkit.``):

    ground      errors, io, tensors, console, processes, config: what every layer may use (exceptions,
                atomic writes, masked tensor helpers and log-probabilities, the console and its tables,
                the processes of a run, typed configs)
    data        records, readers, tokenisation, collation
    models      loading, heads, LoRA, reference strategies, scorers
    losses      pure tensor functions of what the models give
    rl          generation, rollouts, advantages, KL, reward sources, verifiable checkers
    train       the engine and one step per algorithm
    feedback    AI judges, constitutions: they sample with rl's generators
    evaluate    metrics and reports of trained models; the AI judge of win rates is feedback's
    annotate    the human-feedback app: it samples with rl's generators and simulates a reward model and DPO
    pipeline    stages chained
    cli         the one command

Modules in the same layer may import each other. Imports inside functions count too (they are how a
module depends on a layer, only later). On top of the order, no imports may form a cycle among alignkit's
modules, whether at module level or inside functions: an import moved into a function hides a cycle from
Python, it does not remove it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "alignkit"

LAYERS = [
    {"errors", "io", "tensors", "console", "processes", "config"},
    {"data"},
    {"models"},
    {"losses"},
    {"rl"},
    {"train"},
    {"feedback"},
    {"evaluate"},
    {"annotate"},
    {"pipeline"},
    {"cli"},
]
LAYER = {name: level for level, names in enumerate(LAYERS) for name in names}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def _deferred(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Whether ``node`` sits inside a function body (runs later, not when the module is imported)."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return True
    return False


def imports(module: str, source: str, is_package: bool, known: set[str]) -> Iterator[tuple[str, int, bool]]:
    """``(imported alignkit module, line, module_level)`` for every import in ``source``.

    ``from a.b import c`` names the module ``a.b.c`` when it is one of ``known``, else ``a.b``; relative
    imports are resolved against ``module`` (a package's ``__init__`` when ``is_package``).
    """
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            named = (f"{base}.{alias.name}" for alias in node.names)
            targets = list(dict.fromkeys(name if name in known else base for name in named))
        else:
            continue
        for target in targets:
            if target == "alignkit" or target.startswith("alignkit."):
                yield target, node.lineno, not _deferred(node, parents)


def layer_of(module: str) -> int:
    name = module.split(".")[1]
    assert name in LAYER, f"alignkit.{name} is in no layer: add it to LAYERS in tests/test_layers.py"
    return LAYER[name]


def upward_imports(module: str, source: str, is_package: bool = False, known: set[str] = frozenset()) -> list[str]:
    """Each import of ``source`` (the text of ``module``) from a layer above ``module``'s, described."""
    own = layer_of(module)
    return [
        f"{module}:{line} imports {target} ({target.split('.')[1]} is above {module.split('.')[1]})"
        for target, line, _ in imports(module, source, is_package, known)
        if layer_of(target) > own
    ]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as the list of its modules (the first repeated at the end), or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt, path)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [])):
            return cycle
    return None


def import_graph(modules: dict[str, Path], module_level_only: bool) -> dict[str, set[str]]:
    """The imports between alignkit modules: at module level, or everywhere."""
    known = set(modules)
    return {
        module: {
            target
            for target, _, module_level in imports(module, path.read_text(), path.name == "__init__.py", known)
            if (module_level or not module_level_only) and target in known
        }
        for module, path in modules.items()
    }


def test_checker_flags_an_upward_import():
    known = {"alignkit.train.engine", "alignkit.data.records", "alignkit.rl.advantages"}
    source = (
        "from alignkit.data.records import Prompt\n"
        "from alignkit.train.engine import Engine\n"
        "def f():\n"
        "    from alignkit.rl import advantages\n"
        "    from ..errors import DataError\n"
    )
    assert upward_imports("alignkit.data.fake", source, known=known) == [
        "alignkit.data.fake:2 imports alignkit.train.engine (train is above data)",
        "alignkit.data.fake:4 imports alignkit.rl.advantages (rl is above data)",
    ]
    assert list(imports("alignkit.data.fake", source, False, known))[3] == ("alignkit.errors", 5, False)
    assert upward_imports("alignkit.train.fake", source, known=known) == []


def test_cycle_finder_finds_a_cycle_and_only_one_that_exists():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_module_imports_from_a_layer_above_its_own():
    modules = all_modules()
    assert "alignkit.data.tokenize" in modules and "alignkit.cli" in modules
    known = set(modules)
    found = [
        problem
        for module, path in modules.items()
        for problem in upward_imports(module, path.read_text(), path.name == "__init__.py", known)
    ]
    assert found == []


@pytest.mark.parametrize("module_level_only", [True, False], ids=["module-level", "all-imports"])
def test_no_import_cycle_among_alignkit_modules(module_level_only):
    graph = import_graph(all_modules(), module_level_only)
    assert "alignkit.train.checkpoint" in graph["alignkit.train.engine"]  # the graph is read, not empty
    assert find_cycle(graph) is None
