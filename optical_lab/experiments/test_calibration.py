r"""Does protocol v3's registered primary test hold its level and deliver the power its MDE claims? A simulation.

The registered test (``docs/protocol_v3.md``, "Primary analysis (fixed now)") is run as it is, on simulated data:
per language the two-stage bootstrap of :func:`optical_lab.evaluation.stats.hierarchical_draws` (each arm's seeds,
then the queries), the language-balanced statistic and its 95 % percentile CI, p and
``mde`` = :math:`(z_{1-\alpha/(2m)} + z_{0.8})\times` the bootstrap sd of
:func:`optical_lab.evaluation.stats.bootstrap_test` (:math:`m = 4`). Nothing here re-implements it.

**Design simulated** (each primary endpoint and contrast of the registered family): the languages of
:data:`optical_lab.experiments.power.FAMILY_LANGS` that have the endpoint's data, their query counts counted from
the data files by :mod:`.power`'s candidate (AfriQA passages MRR@10, all splits; FLORES en→xx acc@1),
:math:`k = 5` seeds per arm, and the variance components :mod:`.power` measures in the committed v2 per-query
files (:func:`.power.measured`, pooled over v2's languages by :func:`.power.project`: the source of the MDEs of
``docs/v3_power.md``; AfriQA borrows NTREX CLIR's, as there).

**Gaussian model.** Language :math:`l` with :math:`n` queries; arm :math:`a \in \{R, A\}` (the reference, OPTICAL,
and the augmentation arm); seed :math:`s = 1..k`, an independent training run of that arm and language:

.. math::
    y_{Rsq} = \delta + g_q + v_{Rs} + e_{Rsq}, \qquad y_{Asq} = v_{As} + e_{Asq},

    g_q \sim N(0, \sigma^2_q), \quad v_{as} \sim N(0, \sigma^2_s / 2), \quad e_{asq} \sim N(0, \sigma^2_e / 2),

all independent. Seed :math:`s` of :math:`R` paired with seed :math:`s` of :math:`A`, the difference
:math:`d_{qs} = \delta + g_q + (v_{Rs} - v_{As}) + (e_{Rsq} - e_{Asq})` is exactly :mod:`.power`'s two-way model
with components :math:`(\sigma^2_q, \sigma^2_s, \sigma^2_e)` (a test checks they are recovered). A query effect
shared by both arms cancels from the statistic and from every bootstrap draw (each arm's seed weights sum to 1), and
the split of the seed and residual variances between the arms changes neither the statistic's variance nor the
registered bootstrap's expected variance, so neither is a free choice here. The statistic
:math:`T = \frac1L \sum_l \bar d_l` has variance :math:`\frac1{L^2}\sum_l V(n_l, k)`,
:math:`V(n, k) = \sigma^2_q/n + \sigma^2_e/(nk) + \sigma^2_s/k` (:func:`.power.language_variance`): the true sd the
bootstrap sd is compared with.

**Non-Gaussian check** (FLORES acc@1, a binary score): :math:`y_{asq} = \mathbb 1[z_{asq} > 0]`,
:math:`z_{asq} = \mu + u_q + h_{aq} + v_{as} + e_{asq}` with a shared query difficulty :math:`u_q \sim N(0, 1)`
(an assumption: queries differ as much as one latent unit), arm-specific query effects
:math:`h_{aq} \sim N(0, \lambda\sigma^2_q/2)`, :math:`v_{as} \sim N(0, \lambda\sigma^2_s/2)`,
:math:`e_{asq} \sim N(0, \lambda\sigma^2_e/2)`; :math:`\mu` gives the mean v2 score of the two arms, and
:math:`\lambda` is found by bisection so that the binary differences' :math:`\hat\sigma^2_q + \hat\sigma^2_e`
(:func:`.power.components`) equals v2's. Both arms have the same law: an exact null.

**Measured per test** (``--sims`` data sets, ``--resamples`` bootstrap draws each, bootstrap seed 0 as
registered; data seeds ``(seed, design, simulation)``): the type-I error at α = 0.05 and at α/m (Holm's first
step), the coverage of the 95 % CI of the true difference, the mean bootstrap sd against the true sd, the mean
reported ``mde``, and the power (p < α/m, right sign) at a true difference equal to (a) the projected MDE of
``docs/v3_power.md`` (:func:`.power.project`, 5 seeds, m = 4) and (b) the mean ``mde`` the test reports; each with
its Monte Carlo standard error :math:`\sqrt{\hat p(1-\hat p)/N}`. Power is computed from the null data sets:
every draw of :func:`.stats.hierarchical_draws` is a weighted mean whose weights sum to one, so adding
:math:`\delta` to every reference score adds exactly :math:`\delta` to the observed statistic and to every draw
(translation equivariance; a test checks it on the real function), and :func:`.stats.bootstrap_test` is called on
the shifted draws. The same data sets are given to the registered test (``seed_stage="rows"``) and to the option
``seed_stage="effects"`` of :func:`.stats.hierarchical_draws` (paired comparison).

References: Davison & Hinkley (1997), *Bootstrap Methods and their Application*, §3.8; Owen (2007), "The
pigeonhole bootstrap", *Ann. Appl. Stat.* 1(2); McCullagh (2000), "Resampling and exchangeable arrays",
*Bernoulli* 6(2).

    optical-lab test-calibration results/v2-minilm --doc docs/v3_test_calibration.md

(the command and the document: :mod:`.test_calibration_cli`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..evaluation.pooled import Endpoint
from ..evaluation.stats import SEED_STAGES, _stratified, bootstrap_test, hierarchical_draws
from ..evaluation.verdict import ALPHA, REFERENCE
from ..methods.registry import AUGMENTATIONS
from .power import CANDIDATES, FAMILY_LANGS, components, language_variance, measured, project

PRIMARY = ("AfriQA passages MRR@10, all splits", "FLORES en→xx acc@1")  # protocol v3's primary endpoints
CONTRASTS = AUGMENTATIONS  # the primary family's augmentation arms, as power.py projects them (v2's names)
FAMILY = 4  # the primary family's size: 2 endpoints x 2 contrasts
SEEDS = 5  # seeds per arm, as registered
BINARY = ("FLORES en→xx acc@1",)  # endpoints whose score is 0/1: the non-Gaussian check
MODELS = ("gaussian", "binary")  # the Gaussian model (level and power) and the binary one (null only)
Matrices = dict[str, tuple[pd.DataFrame, pd.DataFrame]]


@dataclass(frozen=True)
class Design:
    """One primary test as simulated: endpoint, contrast, query counts per language, seeds per arm, the pooled v2
    variance components of the contrast, its projected MDE (5 seeds, m = 4) and the two arms' mean v2 score."""

    endpoint: str
    contrast: str
    queries: dict[str, int]
    seeds: int
    sigma2_query: float
    sigma2_seed: float
    sigma2_resid: float
    projected_mde: float
    mean_score: float

    @property
    def label(self) -> str:
        return f"{self.endpoint}, {REFERENCE} − {self.contrast}"

    def true_sd(self) -> float:
        """The statistic's sd under the Gaussian model (module doc)."""
        comp = asdict(self)
        return math.sqrt(sum(language_variance(comp, n, self.seeds) for n in self.queries.values())) / len(self.queries)

    def bootstrap_sd(self, seed_stage: str) -> float:
        """The sd a seed stage of :func:`.stats.hierarchical_draws` gives in expectation under the Gaussian model
        (its docstring; per language, with the query stage's :math:`(n-1)/n`; the ``effects`` stage's truncation
        of the seed variance at 0 ignored): the theory the simulated ``sd_ratio`` is checked against."""
        k = self.seeds

        def variance(n: int) -> float:
            if seed_stage == "effects":
                return (n - 1) / n * (self.sigma2_query + self.sigma2_resid / k) / n + self.sigma2_seed / k
            query = (n - 1) / n * (self.sigma2_query + self.sigma2_resid * (2 * k - 1) / k**2) / n
            return query + (k - 1) / k**2 * (self.sigma2_seed + self.sigma2_resid / n)

        return math.sqrt(sum(variance(n) for n in self.queries.values())) / len(self.queries)


def designs(
    per_query: pd.DataFrame,
    langs: Sequence[str] = FAMILY_LANGS,
    seeds: int = SEEDS,
    family: int = FAMILY,
    contrasts: Sequence[str] = CONTRASTS,
) -> list[Design]:
    """The registered primary tests (those of ``contrasts``), their components measured in ``per_query`` (v2's)
    by :mod:`.power`; the projected MDE is at family size ``family`` whatever ``contrasts`` keeps."""
    out = []
    for cand in (c for c in CANDIDATES if c.name in PRIMARY):
        comp = measured(per_query, cand.source, REFERENCE, CONTRASTS)
        detail = project(comp, langs, seeds, [family], [f"{REFERENCE} − {m}" for m in CONTRASTS])[0]
        counts = {lang: n for lang in langs if (n := cand.queries(lang))}
        for contrast in contrasts:
            row = detail[(detail.candidate == cand.name) & (detail.contrast == f"{REFERENCE} − {contrast}")].iloc[0]
            out.append(
                Design(
                    cand.name,
                    contrast,
                    counts,
                    seeds,
                    float(row.sigma2_query),
                    float(row.sigma2_seed),
                    float(row.sigma2_resid),
                    float(row[f"mde_m{family}"]),
                    _mean_score(per_query, cand.source, [REFERENCE, contrast]),
                )
            )
    return out


def _mean_score(per_query: pd.DataFrame, endpoint: Endpoint, methods: Sequence[str]) -> float:
    rows = per_query[(per_query.task == endpoint.task) & per_query.method.isin(methods)]
    return float(rows[endpoint.metric].mean())


# ----------------------------------------------------------------------------------------- the data sets
def _frames(ref: np.ndarray, other: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.DataFrame(ref), pd.DataFrame(other)  # seed x query, query ids 0..n-1 shared by both arms


def gaussian(design: Design, rng: np.random.Generator, delta: float = 0.0) -> Matrices:
    """One data set of the Gaussian model (module doc): language -> (reference, arm) seed x query scores."""
    k = design.seeds
    out = {}
    for lang, n in design.queries.items():
        arms = [
            rng.normal(0, math.sqrt(design.sigma2_seed / 2), (k, 1))
            + rng.normal(0, math.sqrt(design.sigma2_resid / 2), (k, n))
            for _ in range(2)
        ]
        arms[0] += delta + rng.normal(0, math.sqrt(design.sigma2_query), (1, n))
        out[lang] = _frames(*arms)
    return out


def binary(design: Design, rng: np.random.Generator, scale: float) -> Matrices:
    """One data set of the latent-threshold model (module doc) with latent components ``scale`` x v2's."""
    k = design.seeds
    latent = scale * (design.sigma2_query + design.sigma2_seed + design.sigma2_resid) / 2
    mu = stats.norm.ppf(design.mean_score) * math.sqrt(1 + latent)  # P(z > 0) = the mean v2 score
    out = {}
    for lang, n in design.queries.items():
        shared = mu + rng.normal(0, 1, (1, n))
        arms = [
            shared
            + rng.normal(0, math.sqrt(scale * design.sigma2_query / 2), (1, n))
            + rng.normal(0, math.sqrt(scale * design.sigma2_seed / 2), (k, 1))
            + rng.normal(0, math.sqrt(scale * design.sigma2_resid / 2), (k, n))
            > 0
            for _ in range(2)
        ]
        out[lang] = _frames(*(a.astype(float) for a in arms))
    return out


def recovered(matrices: Matrices) -> dict[str, float]:
    """:func:`.power.components` of a data set's paired differences (seed s with seed s), mean over languages."""
    comps = [components((ref.to_numpy() - other.to_numpy()).T) for ref, other in matrices.values()]
    return {key: float(np.mean([c[key] for c in comps])) for key in ("sigma2_query", "sigma2_seed", "sigma2_resid")}


def binary_scale(design: Design, seed: int = 0, steps: int = 30) -> float:
    """The latent scale whose binary differences have v2's :math:`\\sigma^2_q + \\sigma^2_e` (bisection; one data
    set per step, common random numbers). An unreachable target is an error."""
    target = design.sigma2_query + design.sigma2_resid

    def spread(scale: float) -> float:
        got = recovered(binary(design, np.random.default_rng(seed), scale))
        return got["sigma2_query"] + got["sigma2_resid"]

    low, high = 0.0, 64.0
    if spread(high) < target:
        raise ValueError(f"{design.label}: no latent scale up to {high} gives binary differences of variance {target}")
    for _ in range(steps):
        mid = (low + high) / 2
        low, high = (mid, high) if spread(mid) < target else (low, mid)
    return (low + high) / 2


# ----------------------------------------------------------------------------------------- the test, run
@dataclass
class Outcome:
    """One variant of the test on ``N`` data sets: the observed statistics and their bootstrap draws (N x B)."""

    observed: np.ndarray
    draws: np.ndarray

    def test(self, i: int, delta: float = 0.0, family: int = FAMILY) -> dict[str, float]:
        """:func:`.stats.bootstrap_test` of data set ``i`` with ``delta`` added to the reference arm (module doc:
        the draws shift by exactly ``delta``). The language-balanced draws are passed as one stratum: the
        mean over one language is itself."""
        return bootstrap_test({"all": (self.observed[i] + delta, self.draws[i] + delta)}, family)


def simulate(
    design: Design,
    sims: int,
    resamples: int,
    seed: int,
    generate: Callable[[Design, np.random.Generator], Matrices],
    variants: Mapping[str, Callable[[Matrices, int], dict]] | None = None,
    index: int = 0,
    progress: bool = True,
) -> dict[str, Outcome]:
    """Run each variant of the two-stage bootstrap (default: every seed stage of :func:`.stats.hierarchical_draws`,
    :data:`.stats.SEED_STAGES`, bootstrap seed 0) on ``sims`` data sets of ``generate``."""
    from tqdm.auto import tqdm

    variants = variants or {v: (lambda m, b, v=v: hierarchical_draws(m, b, seed=0, seed_stage=v)) for v in SEED_STAGES}
    observed = np.empty(sims)
    draws = {name: np.empty((sims, resamples)) for name in variants}
    for i in tqdm(range(sims), desc=design.label, disable=not progress):
        matrices = generate(design, np.random.default_rng([seed, index, i]))
        for name, run in variants.items():
            got = run(matrices, resamples)
            observed[i] = float(np.mean([obs for obs, _ in got.values()]))
            draws[name][i] = _stratified(got)
    return {name: Outcome(observed.copy(), d) for name, d in draws.items()}


def _share(hits: np.ndarray) -> tuple[float, float]:
    p = float(np.mean(hits))
    return p, math.sqrt(p * (1 - p) / len(hits))


def summarise(outcome: Outcome, true_sd: float | None, deltas: Mapping[str, float] | None = None) -> dict[str, float]:
    """Type-I error (α, α/m), coverage, bootstrap sd vs true sd, mean ``mde`` and the power at each of
    ``deltas`` (name -> true difference; ``"own"``: the mean reported ``mde``), each with its MC SE.
    ``true_sd`` None: the sd of the statistic across the data sets (with its SE) stands in."""
    n = len(outcome.observed)
    nulls = [outcome.test(i) for i in range(n)]
    p = np.array([t["p"] for t in nulls])
    sd = np.array([t["sd"] for t in nulls])
    mdes = np.array([t["mde"] for t in nulls])
    empirical = float(np.std(outcome.observed, ddof=1))
    reference = true_sd if true_sd is not None else empirical
    row = {"sims": n, "resamples": outcome.draws.shape[1]}
    row["type1"], row["type1_se"] = _share(p < ALPHA)
    row["type1_m"], row["type1_m_se"] = _share(p < ALPHA / FAMILY)
    row["coverage"], row["coverage_se"] = _share(np.array([t["ci_low"] <= 0 <= t["ci_high"] for t in nulls]))
    row["bootstrap_sd"], row["bootstrap_sd_se"] = float(sd.mean()), float(sd.std(ddof=1) / math.sqrt(n))
    row["true_sd"] = reference
    row["empirical_sd"], row["empirical_sd_se"] = empirical, empirical / math.sqrt(2 * (n - 1))
    rel_empirical = 0.0 if true_sd is not None else 1 / math.sqrt(2 * (n - 1))
    row["sd_ratio"] = row["bootstrap_sd"] / reference
    row["sd_ratio_se"] = row["sd_ratio"] * math.hypot(row["bootstrap_sd_se"] / row["bootstrap_sd"], rel_empirical)
    row["mde"], row["mde_se"] = float(mdes.mean()), float(mdes.std(ddof=1) / math.sqrt(n))
    for name, delta in (deltas or {}).items():
        delta = row["mde"] if name == "own" else delta
        shifted = [outcome.test(i, delta) for i in range(n)]
        hits = np.array([t["p"] < ALPHA / FAMILY and t["reference_minus_method"] > 0 for t in shifted])
        row[f"delta_{name}"] = float(delta)
        row[f"power_{name}"], row[f"power_{name}_se"] = _share(hits)
    return row


def calibrate(
    tests: Sequence[Design],
    sims: int,
    resamples: int,
    seed: int = 0,
    progress: bool = True,
    on_row: Callable[[list[dict]], None] | None = None,
    models: Sequence[str] = MODELS,
) -> list[dict]:
    """Every design under the Gaussian model (type-I, coverage, sd, power at the projected and at the own
    MDE), then the binary check of the :data:`BINARY` endpoints (null only), each of ``models`` asked; one row per
    design, model and variant.
    ``on_row(rows)`` after each design (results written as they land)."""
    rows: list[dict] = []
    for index, design in enumerate(tests if "gaussian" in models else ()):
        outcomes = simulate(design, sims, resamples, seed, gaussian, index=index, progress=progress)
        for variant, outcome in outcomes.items():
            deltas = {"projected": design.projected_mde, "own": 0.0}
            rows.append(_row(design, "gaussian", variant, summarise(outcome, design.true_sd(), deltas)))
        if on_row:
            on_row(rows)
    for index, design in enumerate(tests):
        if "binary" not in models or design.endpoint not in BINARY:
            continue
        scale = binary_scale(design, seed)
        outcomes = simulate(
            design,
            sims,
            resamples,
            seed,
            lambda d, r, scale=scale: binary(d, r, scale),
            index=100 + index,
            progress=progress,
        )
        got = recovered(binary(design, np.random.default_rng([seed, 200 + index]), scale))
        for variant, outcome in outcomes.items():
            rows.append(_row(design, "binary", variant, summarise(outcome, None), scale=scale, recovered=got))
        if on_row:
            on_row(rows)
    return rows


def _row(design: Design, model: str, variant: str, summary: dict, **extra) -> dict:
    return {
        "endpoint": design.endpoint,
        "contrast": f"{REFERENCE} − {design.contrast}",
        "model": model,
        "seed_stage": variant,
        "registered": variant == SEED_STAGES[0],
        **summary,
        **extra,
    }
