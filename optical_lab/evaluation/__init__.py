"""Metrics (ir_measures), significance tests, CI."""
from .metrics import CLIR_MEASURES, SENTENCE_MEASURES, aggregate, per_query
from .significance import holm, mean_ci, paired_randomization_test

__all__ = ["CLIR_MEASURES", "SENTENCE_MEASURES", "aggregate", "per_query", "holm", "mean_ci", "paired_randomization_test"]
