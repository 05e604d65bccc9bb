"""Metrics (ir_measures), QALD answer F1, significance tests, CIs, and the verdict rules.

Names are loaded on first use (PEP 562, as :mod:`optical_lab`): ``optical_lab.evaluation.verdict`` (the reference
arm the method registry re-exports) imports without scipy or ir_measures, so the command line's help stays light.
"""

from __future__ import annotations

from optical_lab import lazy_exports

# public name -> the module that defines it
EXPORTS: dict[str, str] = {
    "CLIR_MEASURES": "optical_lab.evaluation.metrics",
    "SENTENCE_MEASURES": "optical_lab.evaluation.metrics",
    "aggregate": "optical_lab.evaluation.metrics",
    "per_query": "optical_lab.evaluation.metrics",
    "holm": "optical_lab.evaluation.significance",
    "mean_ci": "optical_lab.evaluation.significance",
    "paired_randomization_test": "optical_lab.evaluation.significance",
    "ALPHA": "optical_lab.evaluation.verdict",
    "is_significant": "optical_lab.evaluation.verdict",
    "is_tie": "optical_lab.evaluation.verdict",
}
__all__ = list(EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, EXPORTS, globals())
