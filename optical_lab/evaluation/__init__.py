"""Metrics (ir_measures), QALD answer F1, significance tests, CIs, and the verdict rules."""

from .metrics import CLIR_MEASURES, SENTENCE_MEASURES, aggregate, per_query
from .significance import holm, mean_ci, paired_randomization_test
from .verdict import ALPHA, is_significant, is_tie

__all__ = [
    "CLIR_MEASURES",
    "SENTENCE_MEASURES",
    "aggregate",
    "per_query",
    "holm",
    "mean_ci",
    "paired_randomization_test",
    "ALPHA",
    "is_significant",
    "is_tie",
]
