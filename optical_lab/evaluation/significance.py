"""Statistics for comparing systems on the same queries.

* :func:`paired_randomization_test`: two-sided paired (sign-flip) randomization test on per-query
  score differences (Smucker, Allan & Carterette, CIKM 2007) — the standard IR significance test.
* :func:`holm`: Holm-Bonferroni step-down correction for several comparisons (Holm, 1979).
* :func:`mean_ci`: mean and 95% confidence half-width (Student t over the given values).

Why not ``scipy.stats.permutation_test`` (``permutation_type="samples"`` on the differences is the
same sign-flip test): it is neither as fast nor the same numbers. Measured with 10,000 resamples
(scipy 1.17.1, numpy 2.4.6, 2-core AMD EPYC under a load average of ~7, median of 7 calls, both
in the same run): 23 ms here vs 126 ms with scipy (``vectorized=True``) for 123 queries (one NTREX
fold), 128 ms vs 872 ms for 1,000 queries. And its p-values differ from the committed ones:
scipy's two-sided p-value is ``2 * min(P(<=), P(>=))`` where this test counts ``|mean| >=
|observed|``, and it draws other sign vectors (123 queries: p = 0.4602 vs 0.4624 here). Scipy
does enumerate all 2**n sign vectors when that is at most ``n_resamples`` (n <= 13), which this
function does not; with NTREX's 61-62 queries per fold and language that case never arises.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats


def paired_randomization_test(
    a: Sequence[float], b: Sequence[float], n_resamples: int = 10_000, seed: int = 0
) -> float:
    """p-value of H0 "a and b are exchangeable per query" (two-sided, mean difference)."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if diff.size == 0 or np.allclose(diff, 0):
        return 1.0
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(n_resamples, diff.size))
    null = np.abs((signs * diff).mean(axis=1))
    observed = abs(diff.mean())
    # +1 smoothing: the observed assignment is one of the permutations.
    return float((np.sum(null >= observed - 1e-12) + 1) / (n_resamples + 1))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (monotone, capped at 1), in the input order."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, (len(p) - rank) * p[index])
        adjusted[index] = min(1.0, running)
    return adjusted.tolist()


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """(mean, half-width of the ``confidence`` interval); half-width 0 for fewer than 2 values."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return (float(x.mean()) if x.size else math.nan, 0.0)
    half = stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return float(x.mean()), float(half)
