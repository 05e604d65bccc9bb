"""The import-layer contract (docs/architecture.md), checked on the source, lazy imports included.

Every ``import`` statement of every module under ``optical_lab/`` counts, wherever it stands: at
module level, inside a function (a "lazy" import), or under ``if TYPE_CHECKING``. Two rules:

* **layers**: a module may import modules of its own layer or of a layer below it, in the order
  of :data:`LAYERS` (the data flow); never one above;
* **no cycles** among ``optical_lab`` modules (a package's ``__init__`` is a module too).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "optical_lab"

# lowest first; a module belongs to the first entry that is a prefix of its name
LAYERS: list[tuple[str, ...]] = [
    ("optical_lab", "optical_lab.io"),
    ("optical_lab.data",),
    ("optical_lab.models",),
    ("optical_lab.ot",),
    ("optical_lab.retrieval", "optical_lab.evaluation"),
    ("optical_lab.methods",),
    ("optical_lab.tasks",),
    ("optical_lab.experiments",),
    ("optical_lab.reports",),
    ("optical_lab.cli",),
]


def module_name(path: Path) -> str:
    parts = ("optical_lab", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The ``optical_lab`` modules ``name`` imports anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import optical_lab.ot.sinkhorn.x` -> the module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def layer_of(name: str) -> int:
    best, level = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, level = len(prefix), index
    return level


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_every_module_has_a_layer():
    assert [m for m in all_modules() if layer_of(m) < 0] == []


def test_imports_only_point_down():
    upward = [
        f"{a} (layer {layer_of(a)}) imports {b} (layer {layer_of(b)})"
        for a, targets in import_graph().items()
        for b in sorted(targets)
        if layer_of(b) > layer_of(a)
    ]
    assert upward == []


def test_no_import_cycles_lazy_imports_included():
    assert find_cycle(import_graph()) is None


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    # the contract test must be able to fail: a function-level relative import is an edge
    graph = import_graph()
    assert "optical_lab.models.registry" in graph["optical_lab.models.encoder"]  # lazy, inside Encoder.load
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert (
        layer_of("optical_lab.reports.figures")
        > layer_of("optical_lab.experiments.runner")
        > layer_of("optical_lab.tasks.base")
    )


MAX_MODULE_LINES = 500  # issue #30: a module a newcomer reads once


def long_modules(limit: int = MAX_MODULE_LINES) -> list[str]:
    """Every module under ``optical_lab/`` longer than ``limit`` lines, as ``path (lines)``, longest first."""
    sizes = {
        p.relative_to(ROOT.parent).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
        for p in ROOT.rglob("*.py")
    }
    return [f"{path} ({n})" for path, n in sorted(sizes.items(), key=lambda kv: -kv[1]) if n > limit]


def test_no_module_is_longer_than_500_lines():
    assert long_modules() == [], "split these along their seams (docs/architecture.md): " + ", ".join(long_modules())


def test_the_length_check_lists_every_offender():
    # it can fail, and it names each module with its length, not only the first one
    offenders = long_modules(limit=1)
    assert len(offenders) > 1 and "optical_lab/ot/sinkhorn.py (" in " ".join(offenders)


def test_the_trainer_needs_no_retrieval_or_evaluation_code():
    # docs/architecture.md: retrieval and evaluation sit below methods, yet the trainer imports neither (its dev
    # MRR scores with models.encoder.similarity, the function retrieval's search uses too)
    imported = import_graph()["optical_lab.methods.trainer"]
    below = [m for m in imported if m.startswith(("optical_lab.retrieval", "optical_lab.evaluation"))]
    assert below == [] and "optical_lab.models.encoder" in imported
