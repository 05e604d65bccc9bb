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

from .significance import holm


def stratified_randomization_test(diffs: Mapping[str, Sequence[float]], n_resamples: int = 10_000,
                                  seed: int = 0, chunk: int = 1_000) -> tuple[float, float]:
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


def minimum_detectable_effect(diffs: Mapping[str, Sequence[float]], alpha: float = 0.05, power: float = 0.8) -> float:
    """MDE of :func:`stratified_randomization_test` (normal approximation, see the module doc)."""
    parts = [np.asarray(d, dtype=float) for d in diffs.values() if len(d) > 1]
    if not parts:
        return math.nan
    se = math.sqrt(sum(d.var(ddof=1) / len(d) for d in parts)) / len(parts)
    return float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * se)


@dataclass(frozen=True)
class Endpoint:
    """One primary metric: a sub-task's per-query column (e.g. ``("clir", "MRR@10")``)."""

    task: str
    metric: str

    @property
    def label(self) -> str:
        return f"{self.task}:{self.metric}"


def seed_averaged(per_query: pd.DataFrame, endpoint: Endpoint, langs: Sequence[str]) -> pd.DataFrame:
    """query x (lang, method) table of the endpoint's score averaged over seeds (and folds' duplicates)."""
    rows = per_query[(per_query.task == endpoint.task) & per_query.lang.isin(langs)]
    if endpoint.metric not in rows:
        raise KeyError(f"no column {endpoint.metric!r} in the per-query results of sub-task {endpoint.task!r}")
    return rows.groupby(["lang", "method", "qid"])[endpoint.metric].mean().unstack("method")


def pooled_comparisons(per_query: pd.DataFrame, reference: str, others: Sequence[str], endpoints: Sequence[Endpoint],
                       langs: Sequence[str], n_resamples: int = 10_000, alpha: float = 0.05,
                       power: float = 0.8) -> pd.DataFrame:
    """The primary family: ``reference`` vs each of ``others`` on each endpoint, pooled over ``langs``.

    One row per (endpoint, method): pooled means, T = reference − method, p, Holm-adjusted p over the
    whole family, the MDE, and the languages/queries/seeds it rests on. A method missing in a
    language is an error (the family must be complete, not silently smaller).
    """
    rows = []
    for endpoint in endpoints:
        table = seed_averaged(per_query, endpoint, langs)
        seeds = per_query[(per_query.task == endpoint.task) & per_query.lang.isin(langs)].groupby(
            ["lang", "method"]).seed.nunique()
        for method in others:
            diffs, missing = {}, []
            for lang in langs:
                if lang not in table.index.get_level_values("lang"):
                    missing.append(lang)
                    continue
                pair = table.loc[lang][[reference, method]] if method in table and reference in table else None
                if pair is None or pair.isna().all().any():
                    missing.append(lang)
                    continue
                pair = pair.dropna()
                diffs[lang] = (pair[reference] - pair[method]).to_numpy()
            if missing:
                raise ValueError(f"{endpoint.label}: {reference} or {method} has no results for {', '.join(missing)}")
            T, p = stratified_randomization_test(diffs, n_resamples=n_resamples)
            mean_ref = float(np.mean([table.loc[lang][reference].mean() for lang in langs]))
            mean_other = float(np.mean([table.loc[lang][method].mean() for lang in langs]))
            rows.append({"endpoint": endpoint.label, "reference": reference, "method": method,
                         "reference_mean": mean_ref, "method_mean": mean_other, "difference": T, "p": p,
                         "mde": minimum_detectable_effect(diffs, alpha, power),
                         "languages": len(diffs), "queries": int(sum(len(d) for d in diffs.values())),
                         "min_seeds": int(min(seeds.get((lang, m), 0) for lang in langs for m in (reference, method)))})
    result = pd.DataFrame(rows)
    result["p_holm"] = holm(result.p.tolist()) if len(result) else []
    result["significant"] = result.p_holm < alpha
    return result


OUTCOMES = {"better": "{reference} beats augmentation", "worse": "augmentation beats {reference}",
            "none": "no detectable difference"}


def rule_outcome(comparisons: pd.DataFrame, endpoint: str, augmentations: Sequence[str]) -> str:
    """The registered answer rule (``docs/protocol_v2.md``, "The answer") for one endpoint: ``"worse"`` if
    any augmentation arm is significantly better than the reference, ``"better"`` if the reference is
    significantly better than every augmentation arm, else ``"none"``. ``comparisons``: one row per
    (endpoint, method) with ``difference`` (reference − method) and ``significant``."""
    rows = comparisons[(comparisons.endpoint == endpoint) & comparisons.method.isin(augmentations)]
    if len(rows) != len(augmentations):
        raise ValueError(f"{endpoint}: need a comparison against each of {', '.join(augmentations)}")
    if (rows.significant & (rows.difference < 0)).any():
        return "worse"
    if (rows.significant & (rows.difference > 0)).all():
        return "better"
    return "none"


def answer(comparisons: pd.DataFrame, endpoint: str, augmentations: Sequence[str], reference: str = "optical") -> str:
    """The registered answer for one endpoint, in words, with the numbers it rests on (:func:`rule_outcome`)."""
    rows = comparisons[(comparisons.endpoint == endpoint) & comparisons.method.isin(augmentations)]
    outcome = rule_outcome(comparisons, endpoint, augmentations)
    if outcome == "worse":
        names = ", ".join(rows[rows.significant & (rows.difference < 0)].method)
        return f"augmentation beats {reference}: {names} significantly better (Holm p < 0.05)"
    if outcome == "better":
        return f"{reference} beats augmentation: significantly better than {', '.join(rows.method)} (Holm p < 0.05)"
    # each arm's own test too: "none" also covers beating one augmentation arm but not the other
    return (f"no detectable difference between {reference} and augmentation "
            f"(largest minimum detectable effect {rows.mde.max():.3f}; differences "
            + ", ".join(f"{m} {d:+.3f} (Holm p {p:.3f}{f', {reference} better' if s and d > 0 else ''})"
                        for m, d, p, s in zip(rows.method, rows.difference, rows.p_holm, rows.significant)) + ")")
