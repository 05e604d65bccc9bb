"""Every list of method names in ``optical_lab/`` is derived from the method registry or frozen on purpose.

``methods/registry.py`` (``SPECS``) is the one list of methods. Any other literal list of two or more
registered method names in the package is found by scanning the source (:func:`method_lists`) and must be
declared in :data:`LISTS` as one of

* :class:`Derived`: its value must equal a list the registry derives (all methods, the augmentation
  methods, the trained methods), so a new ``MethodSpec`` joins it — a hard-coded copy fails here as soon
  as a method is added;
* :class:`Frozen`: a protocol's registered arms (fixed when the protocol was registered: a method added
  later is no arm of it), each of them a registered method or one the protocol plans;
* :class:`Excluded`: a deliberate choice of some methods (a figure's arms), with the reason.

A new copy nobody declared fails :func:`test_every_method_list_is_declared`.
"""

from __future__ import annotations

import ast
import importlib
import typing
from dataclasses import dataclass
from pathlib import Path

from optical_lab.methods import registry
from optical_lab.methods.registry import MethodSpec, derived_lists

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Derived:
    equals: str  # the registry list its value must equal: METHODS, AUGMENTATIONS or TRAINED
    owner: str = ""  # who derives it, while it is still a copy


@dataclass(frozen=True)
class Frozen:
    why: str
    planned: tuple[str, ...] = ()  # arms the protocol names that no MethodSpec has yet


@dataclass(frozen=True)
class Excluded:
    why: str


# (file, the assignment or function holding the literal) -> what the list is
LISTS: dict[tuple[str, str], Derived | Frozen | Excluded] = {
    ("optical_lab/reports/v2.py", "ARMS"): Frozen("protocol v2's registered arms (docs/protocol_v2.md)"),
    ("optical_lab/experiments/sweep_design.py", "TRAINED"): Frozen("protocol v2's sweep arms (docs/protocol_v2.md)"),
    ("optical_lab/experiments/compute_plan.py", "v3_minilm"): Excluded(
        "an arm no cell has measured yet -> the arm whose step rate prices it (optical-plain at optical's)"
    ),
    ("optical_lab/reports/figures.py", "plan"): Excluded("the arms of the small fallback comparison a figure runs"),
}
# derived lists read by value (module, attribute) -> the registry list it equals
VALUES: dict[tuple[str, str], str] = {
    ("optical_lab.methods.registry", "METHODS"): "METHODS",
    ("optical_lab.methods.registry", "AUGMENTATIONS"): "AUGMENTATIONS",
    ("optical_lab.methods.registry", "TRAINED"): "TRAINED",
    ("optical_lab.methods", "METHODS"): "METHODS",
    ("optical_lab.methods", "AUGMENTATIONS"): "AUGMENTATIONS",
    ("optical_lab.experiments.train_cli", "TRAINED"): "TRAINED",
    ("optical_lab.reports.answer", "AUGMENTATION_METHODS"): "AUGMENTATIONS",
}


def _holder(parents: list[ast.AST]) -> str:
    """The name of the innermost assignment target or function around a node (its ancestors, outermost first)."""
    for node in reversed(parents):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if isinstance(target, ast.Name):
                return target.id
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return node.name
    return "<module>"


def method_lists(
    names: set[str], root: Path = ROOT / "optical_lab", base: Path = ROOT
) -> dict[tuple[str, str], list[str]]:
    """Every tuple/list/set literal of strings naming two or more of ``names``, by (file, holder)."""
    found: dict[tuple[str, str], list[str]] = {}

    def visit(node: ast.AST, parents: list[ast.AST], file: str) -> None:
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            values = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if len(values) == len(node.elts) and len(set(values) & names) >= 2:
                found.setdefault((file, _holder(parents)), values)
        for child in ast.iter_child_nodes(node):
            visit(child, [*parents, node], file)

    for path in sorted(root.rglob("*.py")):
        if path.name == "registry.py" and path.parent.name == "methods":
            continue  # the registry itself
        visit(ast.parse(path.read_text(encoding="utf-8")), [], str(path.relative_to(base)))
    return found


def _value(module: str, attribute: str) -> tuple[str, ...]:
    value = getattr(importlib.import_module(module), attribute)
    return typing.get_args(value) if typing.get_origin(value) is typing.Literal else tuple(value)


def stale(specs: tuple[MethodSpec, ...]) -> list[str]:
    """The declared derived lists whose current value differs from what ``specs`` derive."""
    lists = derived_lists(specs)
    return [
        f"{module}.{attribute} = {_value(module, attribute)} but the registry gives {lists[kind]}"
        for (module, attribute), kind in VALUES.items()
        if set(_value(module, attribute)) != set(lists[kind])
    ]


def test_every_method_list_is_declared():
    found = method_lists(set(registry.METHODS))
    undeclared = {where: values for where, values in found.items() if where not in LISTS}
    assert undeclared == {}, "declare each list in LISTS: derive it from methods/registry.py, or freeze it"
    # a frozen list is still there, and names only registered (or planned) methods
    for where, kind in LISTS.items():
        if isinstance(kind, Frozen):
            assert where in found, f"{where}: declared frozen but not found"
            assert set(found[where]) <= set(registry.METHODS) | set(kind.planned), where


def test_derived_lists_equal_the_registry():
    assert stale(registry.SPECS) == []
    assert registry.method_order(reversed(registry.METHODS)) == list(registry.METHODS)


def test_a_new_method_is_reported_missing_from_every_copy():
    # the check can fail: a MethodSpec the lists do not have is reported against every declared derived list
    toy = MethodSpec("toy-aug", lambda config, bitext: None, "toy", "a toy augmentation", "#000000", augmentation=True)
    reported = stale((*registry.SPECS, toy))
    assert len(reported) == len(VALUES) and all("toy-aug" in line for line in reported)


def test_the_scanner_finds_a_copy(tmp_path):
    (tmp_path / "m.py").write_text(
        'ARMS = ("zero-shot", "optical")\ndef pick():\n    return ["optical", "zero-shot", "x"]\n'
        'ONE = ("optical", "y")\n'
    )
    found = method_lists({"zero-shot", "optical"}, tmp_path, tmp_path)
    assert found == {("m.py", "ARMS"): ["zero-shot", "optical"], ("m.py", "pick"): ["optical", "zero-shot", "x"]}


def test_v2_augmentation_arms_are_its_registered_ones():
    from optical_lab.reports import v2

    # frozen with ARMS: a new augmentation method does not make v2's per-language rules "incomplete"
    assert v2.AUGMENTATIONS == ("translate-train", "code-switch") and set(v2.AUGMENTATIONS) <= set(v2.ARMS)
