"""optical_lab: cross-lingual retrieval for low-resource languages.

Layers, lowest first (imports only point down; docs/architecture.md, tests/test_architecture.py):
``io`` -> ``data`` -> ``models`` -> ``ot`` -> ``retrieval``/``evaluation`` -> ``methods`` -> ``tasks``
-> ``experiments`` -> ``reports`` (tables, plots, widgets, notebooks) -> ``cli``.

The public API (docs/api.md) is importable from here — ``from optical_lab import Encoder`` — and
loaded lazily: ``import optical_lab`` imports no submodule (neither torch nor transformers) until
a name below is first used (:func:`__getattr__`), so ``optical-lab --help`` and light tools stay fast.

========================  ============================================================================
the encoder               :class:`Encoder` (load any backbone or saved student; ``encode``, ``save``)
the OT plan and its plot  :func:`alignment_plan` -> :class:`Alignment` (``.plot()``, ``.top()``);
                          :func:`token_plan` and :class:`SinkhornSpec` (the solver's settings)
the OPTICAL loss          :class:`OTDistillationLoss`
training one student      :class:`TrainConfig`, :func:`train_student`, :class:`Bitext`
evaluating a student      :func:`evaluate_student` (any task, in memory), :func:`run_evaluation`
                          (a results folder), :func:`get_task`
results in pandas         :func:`load_per_query` (every cell's per-query scores of a comparison)
========================  ============================================================================
"""

from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"

# public name -> the module that defines it (one home each; docs/api.md lists them with examples)
EXPORTS: dict[str, str] = {
    "Encoder": "optical_lab.models.encoder",
    "Bitext": "optical_lab.data.bitext",
    "SinkhornSpec": "optical_lab.ot.plan",
    "token_plan": "optical_lab.ot.plan",
    "OTDistillationLoss": "optical_lab.ot.loss",
    "TrainConfig": "optical_lab.methods.config",
    "train_student": "optical_lab.methods.trainer",
    "get_task": "optical_lab.tasks.registry",
    "evaluate_student": "optical_lab.experiments.evaluate",
    "run_evaluation": "optical_lab.experiments.evaluate",
    "EvaluateConfig": "optical_lab.experiments.evaluate",
    "load_per_query": "optical_lab.experiments.per_query",
    "alignment_plan": "optical_lab.reports.alignment",
    "Alignment": "optical_lab.reports.alignment",
}
__all__ = ["__version__", *EXPORTS]


class _LazyPackage(types.ModuleType):
    """A package whose export shares its name with a submodule (``optical_lab.ot.sinkhorn``, the function
    and the module): importing the submodule must not replace the export in the package, as the import
    system otherwise does, so ``from optical_lab.ot import sinkhorn`` is the function whatever ran first."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and name in self.__dict__.get("EXPORTS", {}):
            return
        super().__setattr__(name, value)


def lazy_exports(package: str, exports: dict[str, str], namespace: dict):
    """``(__getattr__, __dir__)`` of a package whose public names (``exports``: name -> defining module) are
    imported on first use (PEP 562) and then kept in its ``namespace``: this package, ``optical_lab.ot``,
    ``optical_lab.methods`` (whose settings the command line reads without torch)."""
    sys.modules[package].__class__ = _LazyPackage

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted([*namespace, *exports])

    return __getattr__, __dir__


__getattr__, __dir__ = lazy_exports(__name__, EXPORTS, globals())
