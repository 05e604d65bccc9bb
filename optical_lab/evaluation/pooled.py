r"""The pre-registered primary analysis of protocol v2 (``docs/protocol_v2.md``): one test per
comparison, pooled over languages, with its minimum detectable effect.

Per-language tests on ≈ 60–120 queries cannot see differences of 0.02 MRR@10. Pooling the queries of
several languages can, if no single language dominates: the statistic weighs every language the same,

.. math::
    T = \frac{1}{L} \sum_{l=1}^{L} \frac{1}{n_l} \sum_{q \in Q_l} d_q, \qquad d_q = s_A(q) - s_B(q),

where :math:`s(q)` is a query's score averaged over seeds. Under :math:`H_0` ("A and B are
exchangeable on every query") each :math:`d_q` is equally likely to have either sign, so the null
distribution is obtained by flipping signs per query (within its language — a *stratified* paired
randomization test; Smucker, Allan & Carterette, CIKM 2007, for the unstratified one, which is the
:math:`L = 1` case and :func:`optical_lab.evaluation.significance.paired_randomization_test`).

The **minimum detectable effect** at level :math:`\alpha` (two-sided) and power :math:`1-\beta` is the
true :math:`T` the test would detect with that power, under a normal approximation of :math:`T`:

.. math::
    \mathrm{MDE} = (z_{1-\alpha/2} + z_{1-\beta})\, \mathrm{SE}(T), \qquad
    \mathrm{SE}(T) = \frac{1}{L}\sqrt{\sum_l s_l^2 / n_l},

with :math:`s_l` the standard deviation of the per-query differences in language :math:`l`. It is
reported beside every p-value, so that "not significant" always says how large an effect could hide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .verdict import ALPHA, DIFFERENCE, POWER, REFERENCE


def stratified_randomization_test(
    diffs: Mapping[str, Sequence[float]], n_resamples: int = 10_000, seed: int = 0, chunk: int = 1_000
) -> tuple[float, float]:
    """(T, two-sided p) of the language-stratified sign-flip test; ``diffs``: stratum -> per-query A − B."""
    parts = [np.asarray(d, dtype=float) for d in diffs.values() if len(d)]
    if not parts:
        raise ValueError("no per-query differences to test")
    weights = np.concatenate([np.full(len(d), 1.0 / (len(parts) * len(d))) for d in parts])
    values = np.concatenate(parts) * weights
    observed = float(values.sum())
    if np.allclose(values, 0):
        return observed, 1.0
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, n_resamples, chunk):
        signs = rng.choice([-1.0, 1.0], size=(min(chunk, n_resamples - start), values.size))
        hits += int(np.sum(np.abs(signs @ values) >= abs(observed) - 1e-12))
    # +1 smoothing: the observed assignment is one of the sign patterns
    return observed, float((hits + 1) / (n_resamples + 1))


def minimum_detectable_effect(
    diffs: Mapping[str, Sequence[float]], alpha: float = ALPHA, power: float = POWER
) -> float:
    """MDE of :func:`stratified_randomization_test` (normal approximation, see the module doc)."""
    parts = [np.asarray(d, dtype=float) for d in diffs.values() if len(d) > 1]
    if not parts:
        return math.nan
    se = math.sqrt(sum(d.var(ddof=1) / len(d) for d in parts)) / len(parts)
    return detectable_effect(se, 1, alpha, power)


def detectable_effect(se: float, family: int = 1, alpha: float = ALPHA, power: float = POWER) -> float:
    r"""The true effect a two-sided test of standard error ``se`` detects with probability ``power``:
    :math:`(z_{1-\alpha/(2m)} + z_{power})\,\mathrm{SE}`, with :math:`m` = ``family``: Holm's first (strictest)
    step in a family of :math:`m` tests, the bound every test of the family must meet whatever its rank."""
    return float((stats.norm.ppf(1 - alpha / (2 * family)) + stats.norm.ppf(power)) * se)


@dataclass(frozen=True)
class Endpoint:
    """One primary metric: a sub-task's per-query column (e.g. ``("clir", "MRR@10")``)."""

    task: str
    metric: str

    @property
    def label(self) -> str:
        return f"{self.task}:{self.metric}"


OUTCOMES = {
    "better": "{reference} beats augmentation",
    "worse": "augmentation beats {reference}",
    "none": "no detectable difference",
}


def rule_outcome(comparisons: pd.DataFrame, endpoint: str, augmentations: Sequence[str]) -> str:
    """The registered answer rule (``docs/protocol_v2.md``, "The answer") for one endpoint: ``"worse"`` if
    any augmentation arm is significantly better than the reference, ``"better"`` if the reference is
    significantly better than every augmentation arm, else ``"none"``. ``comparisons``: one row per
    (endpoint, method) with ``reference_minus_method`` and ``significant``."""
    rows = comparisons[(comparisons.endpoint == endpoint) & comparisons.method.isin(augmentations)]
    if len(rows) != len(augmentations):
        raise ValueError(f"{endpoint}: need a comparison against each of {', '.join(augmentations)}")
    if (rows.significant & (rows[DIFFERENCE] < 0)).any():
        return "worse"
    if (rows.significant & (rows[DIFFERENCE] > 0)).all():
        return "better"
    return "none"


def answer(
    comparisons: pd.DataFrame,
    endpoint: str,
    augmentations: Sequence[str],
    reference: str = REFERENCE,
    alpha: float = ALPHA,
) -> str:
    """The registered rule's outcome for one endpoint in words, naming which arms it rests on
    (:func:`rule_outcome`; each arm's own numbers are stated beside it by the report)."""
    rows = comparisons[(comparisons.endpoint == endpoint) & comparisons.method.isin(augmentations)]
    outcome = rule_outcome(comparisons, endpoint, augmentations)
    better = list(rows[rows.significant & (rows[DIFFERENCE] > 0)].method)
    if outcome == "worse":
        names = ", ".join(rows[rows.significant & (rows[DIFFERENCE] < 0)].method)
        return f"augmentation beats {reference}: {names} significantly better than {reference} (Holm p < {alpha:g})"
    if outcome == "better":
        names = ", ".join(rows.method)
        return f"{reference} beats augmentation: significantly better than {names} (Holm p < {alpha:g})"
    unresolved = ", ".join(m for m in rows.method if m not in better)
    if better:  # "none" also covers beating one augmentation arm but not the other
        return (
            f"neither: {reference} is significantly better than {', '.join(better)} (Holm p < {alpha:g}) but not "
            f"detectably different from {unresolved}"
        )
    return f"no detectable difference between {reference} and {unresolved} (Holm p ≥ {alpha:g} for each)"
