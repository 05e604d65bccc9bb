r"""The statistics core: every table, figure and sentence about a comparison is computed here, from one
long per-query table (a row per ``lang, method, fold, seed, task, qid``, a column per metric), so two
outputs of one results folder cannot disagree. Reading folders and rendering live elsewhere and call it.

**Unit of analysis: the query.** A query's score for an arm is its score averaged over that arm's seeds
(and over the folds that evaluated it), as protocol v2 registers (``docs/protocol_v2.md``):

.. math::
    s_A(q) = \frac{1}{|S_A|} \sum_{s \in S_A} s_{A,s}(q), \qquad d_q = s_R(q) - s_A(q).

A query is therefore counted once however many seeds an arm has; a *deterministic* arm (zero-shot: the same
model in every seed) contributes the same value whatever its seed count, and its CI is the one of its
``n`` queries, not of ``n × seeds`` copies.

**One sign convention.** Every difference is ``reference − method`` (``reference`` = OPTICAL by default),
in a column named ``reference_minus_method``: positive means the reference is better.

**Tests and intervals** (defaults ``ALPHA``, ``POWER``, ``REFERENCE`` in :mod:`.verdict`, arguments here):

* p: the language-stratified sign-flip test (:func:`.pooled.stratified_randomization_test`); one language
  is its :math:`L = 1` case, so a per-language p and a pooled p are the same test;
* the difference's CI and the MDE use the same standard error,
  :math:`\mathrm{SE}(T) = \frac{1}{L}\sqrt{\sum_l s_l^2 / n_l}`: CI = :math:`T \pm z_{1-\alpha/2}\,\mathrm{SE}`,
  MDE = :math:`(z_{1-\alpha/2} + z_{\mathrm{power}})\,\mathrm{SE}` (:func:`.pooled.minimum_detectable_effect`);
* Holm over the family named by the caller (the methods of a language and metric; protocol v2's family);
* where seed variance matters, :func:`hierarchical_interval` resamples queries *and* seeds (a two-stage
  bootstrap: Davison & Hinkley 1997, §3.8), so a difference carried by one lucky seed widens its interval;
* protocol v3's registered test takes its p, percentile CI and MDE from those draws themselves
  (:func:`hierarchical_draws` → :func:`bootstrap_test`), and pools languages by DerSimonian–Laird
  (:func:`random_effects`) as a secondary.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .pooled import Endpoint, detectable_effect, minimum_detectable_effect, stratified_randomization_test
from .significance import holm, mean_ci
from .verdict import ALPHA, DIFFERENCE, POWER, REFERENCE

N_RESAMPLES = 10_000


def _rows(per_query: pd.DataFrame, task: str, metric: str, langs: Sequence[str] | None) -> pd.DataFrame:
    rows = per_query[per_query.task == task]
    if langs is not None:
        rows = rows[rows.lang.isin(langs)]
    if metric not in rows:
        raise KeyError(f"no column {metric!r} in the per-query results of sub-task {task!r}")
    return rows[rows[metric].notna()]


def query_scores(per_query: pd.DataFrame, task: str, metric: str, langs: Sequence[str] | None = None) -> pd.DataFrame:
    """(lang, qid) x method table of ``metric``, each query's score averaged over seeds and folds."""
    return _rows(per_query, task, metric, langs).groupby(["lang", "method", "qid"])[metric].mean().unstack("method")


def seed_averaged(per_query: pd.DataFrame, endpoint: Endpoint, langs: Sequence[str]) -> pd.DataFrame:
    """:func:`query_scores` of an endpoint (protocol v2's name for it)."""
    return query_scores(per_query, endpoint.task, endpoint.metric, langs)


def seed_counts(per_query: pd.DataFrame, task: str, metric: str, langs: Sequence[str] | None = None) -> pd.DataFrame:
    """Per (lang, method): ``seeds`` (distinct seeds run) and ``deterministic`` (every query scores the same in
    every seed, e.g. zero-shot: its seeds are one model, counted once)."""
    rows = _rows(per_query, task, metric, langs)
    by_query = rows.groupby(["lang", "method", "qid"])[metric]
    spread = by_query.max() - by_query.min()
    out = pd.DataFrame(
        {
            "seeds": rows.groupby(["lang", "method"]).seed.nunique(),
            "deterministic": spread.groupby(["lang", "method"]).max() <= 1e-12,
        }
    )
    out["deterministic"] &= out.seeds > 1
    return out


def arm_summary(
    per_query: pd.DataFrame, task: str, metric: str, langs: Sequence[str] | None = None, confidence: float = 1 - ALPHA
) -> pd.DataFrame:
    """One row per (lang, method): mean ± CI (Student t) over its seed-averaged queries, ``n`` = queries,
    ``seeds`` run and whether the arm is deterministic."""
    table, counts = query_scores(per_query, task, metric, langs), seed_counts(per_query, task, metric, langs)
    rows = []
    present = set(table.index.get_level_values("lang"))
    for lang in [l for l in (langs or sorted(present)) if l in present]:
        for method in table.columns:
            values = table.loc[lang][method].dropna().to_numpy(float)
            if not len(values):
                continue
            mean, ci = mean_ci(values, confidence)
            rows.append(
                {
                    "lang": lang,
                    "task": task,
                    "metric": metric,
                    "method": method,
                    "mean": mean,
                    "ci": ci,
                    "ci_low": mean - ci,
                    "ci_high": mean + ci,
                    "n": len(values),
                    "seeds": int(counts.loc[(lang, method), "seeds"]),
                    "deterministic": bool(counts.loc[(lang, method), "deterministic"]),
                }
            )
    return pd.DataFrame(rows)


def difference_stats(
    diffs: Mapping[str, Sequence[float]],
    alpha: float = ALPHA,
    power: float = POWER,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> dict[str, float]:
    """The numbers of one comparison from its per-query differences ``stratum -> reference − method``:
    T (language-stratified mean), its CI, the sign-flip p and the MDE (see the module doc)."""
    T, p = stratified_randomization_test(diffs, n_resamples=n_resamples, seed=seed)
    mde = minimum_detectable_effect(diffs, alpha, power)
    half = mde / (stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * stats.norm.ppf(1 - alpha / 2)
    return {
        DIFFERENCE: T,
        "ci_low": T - half,
        "ci_high": T + half,
        "p": p,
        "mde": mde,
        "languages": sum(1 for d in diffs.values() if len(d)),
        "queries": int(sum(len(d) for d in diffs.values())),
    }


def paired_differences(table: pd.DataFrame, reference: str, method: str, langs: Sequence[str]) -> dict[str, np.ndarray]:
    """``lang -> reference − method`` per query (queries both arms have), from a :func:`query_scores` table."""
    out = {}
    for lang in langs:
        if lang not in table.index.get_level_values("lang") or reference not in table or method not in table:
            continue
        pair = table.loc[lang][[reference, method]].dropna()
        if len(pair):
            out[lang] = (pair[reference] - pair[method]).to_numpy(float)
    return out


def language_tests(
    per_query: pd.DataFrame,
    task: str,
    metric: str,
    langs: Sequence[str] | None = None,
    reference: str = REFERENCE,
    methods: Sequence[str] | None = None,
    alpha: float = ALPHA,
    power: float = POWER,
    n_resamples: int = N_RESAMPLES,
) -> pd.DataFrame:
    """Per language: ``reference`` against each other method (``methods``: those present), each with
    :func:`difference_stats` on that language's queries, Holm over the methods of the language."""
    table = query_scores(per_query, task, metric, langs)
    rows = []
    present = set(table.index.get_level_values("lang"))
    for lang in [l for l in (langs or sorted(present)) if l in present]:
        scores = table.loc[lang]
        if reference not in scores or scores[reference].isna().all():
            continue
        present = [m for m in (methods or scores.columns) if m != reference and m in scores and scores[m].notna().any()]
        part = []
        for method in present:
            diffs = paired_differences(table, reference, method, [lang])
            part.append(
                {
                    "lang": lang,
                    "task": task,
                    "metric": metric,
                    "reference": reference,
                    "method": method,
                    "reference_mean": float(scores[reference].mean()),
                    "method_mean": float(scores[method].mean()),
                    **difference_stats(diffs, alpha, power, n_resamples),
                }
            )
        for row, p_holm in zip(part, holm([r["p"] for r in part])):
            row.update(p_holm=p_holm, significant=p_holm < alpha)
        rows += part
    columns = [
        "lang",
        "task",
        "metric",
        "reference",
        "method",
        "reference_mean",
        "method_mean",
        DIFFERENCE,
        "ci_low",
        "ci_high",
        "p",
        "p_holm",
        "significant",
        "mde",
        "languages",
        "queries",
    ]
    return pd.DataFrame(rows, columns=columns)


def pooled_comparisons(
    per_query: pd.DataFrame,
    reference: str,
    others: Sequence[str],
    endpoints: Sequence[Endpoint],
    langs: Sequence[str],
    n_resamples: int = N_RESAMPLES,
    alpha: float = ALPHA,
    power: float = POWER,
    seed_resamples: int = 0,
) -> pd.DataFrame:
    """Protocol v2's primary family: ``reference`` vs each of ``others`` on each endpoint, pooled over
    ``langs`` (every language weighs the same), Holm over the whole family.

    One row per (endpoint, method): pooled means, ``reference_minus_method`` with its CI, p, Holm p, the MDE,
    the languages/queries/seeds it rests on and (``seed_resamples`` > 0) the :func:`hierarchical_interval`.
    A method missing in a language is an error (the family must be complete, not silently smaller).
    """
    rows = []
    for endpoint in endpoints:
        table = seed_averaged(per_query, endpoint, langs)
        counts = seed_counts(per_query, endpoint.task, endpoint.metric, langs)
        for method in others:
            diffs = paired_differences(table, reference, method, langs)
            missing = [lang for lang in langs if lang not in diffs]
            if missing:
                raise ValueError(f"{endpoint.label}: {reference} or {method} has no results for {', '.join(missing)}")
            row = {
                "endpoint": endpoint.label,
                "reference": reference,
                "method": method,
                "reference_mean": float(np.mean([table.loc[lang][reference].mean() for lang in langs])),
                "method_mean": float(np.mean([table.loc[lang][method].mean() for lang in langs])),
                **difference_stats(diffs, alpha, power, n_resamples),
                "min_seeds": int(min(counts.seeds.get((lang, m), 0) for lang in langs for m in (reference, method))),
            }
            if seed_resamples:
                row["hier_ci_low"], row["hier_ci_high"] = hierarchical_interval(
                    per_query, endpoint.task, endpoint.metric, langs, reference, method, seed_resamples, 1 - alpha
                )
            rows.append(row)
    result = pd.DataFrame(rows)
    result["p_holm"] = holm(result.p.tolist()) if len(result) else []
    result["significant"] = result.p_holm < alpha
    return result


def seed_matrix(per_query: pd.DataFrame, task: str, metric: str, lang: str, method: str) -> pd.DataFrame:
    """seed x qid scores of one arm in one language (folds averaged)."""
    rows = _rows(per_query, task, metric, [lang])
    return rows[rows.method == method].groupby(["seed", "qid"])[metric].mean().unstack("qid")


def per_seed_differences(
    per_query: pd.DataFrame,
    task: str,
    metric: str,
    langs: Sequence[str],
    reference: str = REFERENCE,
    methods: Sequence[str] | None = None,
) -> pd.DataFrame:
    """``reference − method`` of each seed's mean over queries (seed s of the reference against seed s of the
    method; a deterministic or single-seed method against its one model), per language and pooled
    (``lang = "pooled"``: the mean over ``langs``). Shows how much of a difference one seed carries."""
    rows = []
    for method in methods or []:
        per_lang = {}
        for lang in langs:
            ref, other = (seed_matrix(per_query, task, metric, lang, arm) for arm in (reference, method))
            if ref.empty or other.empty:
                continue
            for seed in ref.index:
                arm = other.loc[seed] if seed in other.index else other.mean()
                per_lang.setdefault(seed, {})[lang] = float((ref.loc[seed] - arm).mean())
        for seed, by_lang in per_lang.items():
            rows += [{"lang": lang, "method": method, "seed": seed, DIFFERENCE: d} for lang, d in by_lang.items()]
            if len(by_lang) == len(langs):
                pooled = float(np.mean(list(by_lang.values())))
                rows.append({"lang": "pooled", "method": method, "seed": seed, DIFFERENCE: pooled})
    return pd.DataFrame(rows, columns=["lang", "method", "seed", DIFFERENCE])


SEED_STAGES = ("rows", "effects")  # the seed stage of the two-stage bootstrap; "rows" is protocol v3's registered one


def _language_draws(
    ref: np.ndarray, other: np.ndarray, rng: np.random.Generator, n_resamples: int, seed_stage: str = "rows"
) -> np.ndarray:
    """One language's two-stage bootstrap of ``mean_q(mean_s ref − mean_s other)`` from its (seed x query) score
    matrices, ``n_resamples`` draws. ``seed_stage="rows"`` (registered): each arm's seeds drawn with replacement
    (a deterministic arm's identical seeds resample to itself), then the queries. ``"effects"``: the queries of
    the seed-averaged difference, plus each arm's resampled seed effects (:func:`_seed_effects`)."""
    if seed_stage == "effects":
        n = ref.shape[1]
        counts = rng.multinomial(n, np.full(n, 1 / n), size=n_resamples) / n
        total = counts @ (ref.mean(0) - other.mean(0))
        for sign, matrix in ((1, ref), (-1, other)):
            k = len(matrix)
            weights = rng.multinomial(k, np.full(k, 1 / k), size=n_resamples) / k
            total += sign * (weights @ _seed_effects(matrix))
        return total
    if seed_stage != "rows":
        raise ValueError(f"seed_stage {seed_stage!r}: choose one of {', '.join(SEED_STAGES)}")
    means = []
    for matrix in (ref, other):
        k = len(matrix)  # seeds: each resample draws k of them with replacement (multiplicities / k)
        weights = rng.multinomial(k, np.full(k, 1 / k), size=n_resamples) / k
        means.append(weights @ matrix)  # resample x query: each query's mean over the drawn seeds
    n = ref.shape[1]
    counts = rng.multinomial(n, np.full(n, 1 / n), size=n_resamples) / n  # the drawn queries
    return np.sum(counts * (means[0] - means[1]), axis=1)


def _seed_effects(matrix: np.ndarray) -> np.ndarray:
    r"""One arm's seed effects, scaled so that the mean of :math:`k` of them drawn with replacement has the
    method-of-moments variance of the arm's seed term, :math:`\hat\sigma^2_s / k`.

    With :math:`r_s` the seed's mean over the :math:`n` queries, :math:`s^2_r` their variance (ddof 1) and
    :math:`M_e` the seed x query residual mean square (:mod:`optical_lab.experiments.power`'s ANOVA),
    :math:`\hat\sigma^2_s = \max(0, s^2_r - M_e/n)`: a seed's mean carries its own share :math:`M_e/n` of the
    seed x query interaction, which the query stage already counts (a crossed design; Owen 2007, "The pigeonhole
    bootstrap"; McCullagh 2000). The deviations :math:`r_s - \bar r` are multiplied by
    :math:`\lambda = \sqrt{\tfrac{k}{k-1}\,\hat\sigma^2_s / s^2_r}`: the mean of :math:`k` draws with
    replacement has variance :math:`\tfrac{k-1}{k}\, s^2_r / k` (Davison & Hinkley 1997, §3.8), so the factor
    :math:`k/(k-1)` undoes that small-sample shrinkage. An arm with one distinct run (or one seed) has none."""
    k, n = matrix.shape
    rows = matrix.mean(1)
    spread = float(rows.var(ddof=1)) if k > 1 else 0.0
    if spread <= 0 or n < 2:
        return np.zeros(k)
    residual = matrix - rows[:, None] - matrix.mean(0)[None, :] + matrix.mean()
    interaction = float((residual**2).sum()) / ((k - 1) * (n - 1))
    seed_var = max(0.0, spread - interaction / n)
    return (rows - rows.mean()) * math.sqrt(k / (k - 1) * seed_var / spread)


def seed_matrices(
    per_query: pd.DataFrame, task: str, metric: str, langs: Sequence[str] | None = None
) -> dict[tuple[str, str], pd.DataFrame]:
    """:func:`seed_matrix` of every (language, method) of a sub-task at once (one grouping of the table)."""
    rows = _rows(per_query, task, metric, langs)
    grouped = rows.groupby(["lang", "method", "seed", "qid"])[metric].mean()
    return {
        (lang, method): part.droplevel(["lang", "method"]).unstack("qid")
        for (lang, method), part in grouped.groupby(level=["lang", "method"])
    }


def hierarchical_draws(
    matrices: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]],
    n_resamples: int = 2_000,
    seed: int = 0,
    seed_stage: str = "rows",
) -> dict[str, tuple[float, np.ndarray]]:
    r"""Per language of ``matrices`` (language -> the reference's and the method's seed x query scores,
    :func:`seed_matrix`), in its order, one generator seeded ``seed``: the observed ``reference − method`` (the mean
    over the queries both arms have of each query's seed-averaged difference) and its ``n_resamples`` two-stage
    bootstrap draws (:func:`_language_draws`).

    ``seed_stage``: ``"rows"`` (the default, protocol v3's registered test) resamples whole seed rows, then
    queries. For a crossed design (every seed scores the same queries) its variance is, per language, about
    :math:`\sigma^2_q/n + \sigma^2_e/(nk)\,[1 + 2\tfrac{k-1}{k}] + \tfrac{k-1}{k}\,\sigma^2_s/k` against the
    statistic's :math:`\sigma^2_q/n + \sigma^2_e/(nk) + \sigma^2_s/k` (components of
    :mod:`optical_lab.experiments.power`): the seed x query interaction counted up to three times, the seed term
    shrunk by :math:`(k-1)/k`. ``"effects"`` counts each once (:func:`_seed_effects`); it is an explicit option,
    measured by ``optical-lab test-calibration`` (``docs/v3_test_calibration.md``), not the registered test."""
    rng = np.random.default_rng(seed)
    out = {}
    for lang, (ref, other) in matrices.items():
        common = ref.columns.intersection(other.columns)
        ref_scores, other_scores = ref[common].to_numpy(float), other[common].to_numpy(float)
        observed = float(np.mean(ref_scores.mean(0) - other_scores.mean(0)))
        out[lang] = (observed, _language_draws(ref_scores, other_scores, rng, n_resamples, seed_stage))
    return out


def hierarchical_interval(
    per_query: pd.DataFrame,
    task: str,
    metric: str,
    langs: Sequence[str],
    reference: str,
    method: str,
    n_resamples: int = 2_000,
    confidence: float = 1 - ALPHA,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of the language-stratified ``reference − method`` under a two-stage bootstrap:
    within each language, resample the queries, and each arm's seeds, with replacement (a deterministic arm's
    identical seeds resample to itself). Wider than the query-only CI when the seeds disagree."""
    matrices = {
        lang: tuple(seed_matrix(per_query, task, metric, lang, arm) for arm in (reference, method)) for lang in langs
    }
    total = _stratified(hierarchical_draws(matrices, n_resamples, seed))
    tail = (1 - confidence) / 2 * 100
    return float(np.percentile(total, tail)), float(np.percentile(total, 100 - tail))


def _stratified(draws: Mapping[str, tuple[float, np.ndarray]]) -> np.ndarray:
    """The language-balanced statistic's draws: the mean over languages of each language's draws."""
    total = np.zeros(len(next(iter(draws.values()))[1]))
    for _, language in draws.values():
        total += language
    total /= len(draws)
    return total


def bootstrap_test(
    draws: Mapping[str, tuple[float, np.ndarray]],
    family: int = 1,
    alpha: float = ALPHA,
    power: float = POWER,
) -> dict[str, float]:
    r"""The test of the language-balanced difference from its :func:`hierarchical_draws` (protocol v3's primary
    analysis, ``docs/protocol_v3.md``): the observed :math:`T` (mean over languages), the :math:`1-\alpha`
    percentile interval, :math:`p = 2\min(\Pr^*[T^* \le 0], \Pr^*[T^* \ge 0])` floored at :math:`1/B` (and at
    most 1), the bootstrap standard deviation ``sd`` and the MDE :math:`(z_{1-\alpha/(2m)} + z_{power})\,sd` at
    family size :math:`m` = ``family`` (:func:`.pooled.detectable_effect`)."""
    total = _stratified(draws)
    share = min(float(np.mean(total <= 0)), float(np.mean(total >= 0)))
    sd = float(total.std(ddof=1))
    tail = alpha / 2 * 100
    return {
        DIFFERENCE: float(np.mean([observed for observed, _ in draws.values()])),
        "ci_low": float(np.percentile(total, tail)),
        "ci_high": float(np.percentile(total, 100 - tail)),
        "p": min(1.0, max(2 * share, 1 / len(total))),
        "sd": sd,
        "mde": detectable_effect(sd, family, alpha, power),
    }


def random_effects(estimates: Sequence[float], variances: Sequence[float], alpha: float = ALPHA) -> dict[str, float]:
    r"""DerSimonian–Laird random-effects pooling (DerSimonian & Laird 1986) of per-language differences
    :math:`y_l` with within-language variances :math:`v_l`: weights :math:`w_l = 1/v_l`, heterogeneity
    :math:`Q = \sum w_l (y_l - \bar y_w)^2`, between-language variance
    :math:`\tau^2 = \max\bigl(0, (Q - (k-1)) / (\sum w - \sum w^2 / \sum w)\bigr)`, then
    :math:`\mu = \sum w^*_l y_l / \sum w^*_l` with :math:`w^*_l = 1/(v_l + \tau^2)`, SE
    :math:`1/\sqrt{\sum w^*}`, a normal CI and two-sided p; :math:`I^2 = \max(0, (Q - (k-1))/Q)`.
    A language with no within-language variance (both arms scored every draw alike) cannot be weighted: then
    every value is NaN."""
    y, v = np.asarray(estimates, float), np.asarray(variances, float)
    k = len(y)
    if k == 0 or not np.all(v > 0):
        return dict.fromkeys((DIFFERENCE, "se", "ci_low", "ci_high", "p", "tau2", "Q", "I2"), math.nan)
    w = 1 / v
    q = float(np.sum(w * (y - np.sum(w * y) / np.sum(w)) ** 2))
    tau2 = max(0.0, (q - (k - 1)) / (np.sum(w) - np.sum(w**2) / np.sum(w))) if k > 1 else 0.0
    star = 1 / (v + tau2)
    mu, se = float(np.sum(star * y) / np.sum(star)), float(1 / math.sqrt(np.sum(star)))
    z = stats.norm.ppf(1 - alpha / 2)
    return {
        DIFFERENCE: mu,
        "se": se,
        "ci_low": mu - z * se,
        "ci_high": mu + z * se,
        "p": float(2 * stats.norm.sf(abs(mu) / se)),
        "tau2": float(tau2),
        "Q": q,
        "I2": max(0.0, (q - (k - 1)) / q) if q > 0 else 0.0,
    }
