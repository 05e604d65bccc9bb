"""Expected power: variance components of per-query, per-seed differences and the projected MDE."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from optical_lab.evaluation.pooled import Endpoint, minimum_detectable_effect
from optical_lab.experiments.power import components, language_variance, mde, measured, project, reproduce


def _table(rng, n=4000, seeds=3, query=0.04, seed=0.0004, resid=0.01):
    return (
        rng.normal(0, query**0.5, (n, 1))
        + rng.normal(0, seed**0.5, (1, seeds))
        + rng.normal(0, resid**0.5, (n, seeds))
        + 0.01
    )


def test_components_recover_known_variances():
    rng = np.random.default_rng(0)
    estimates = [components(_table(rng)) for _ in range(200)]
    for name, true in (("sigma2_query", 0.04), ("sigma2_resid", 0.01), ("sigma2_seed", 0.0004)):
        assert np.mean([e[name] for e in estimates]) == pytest.approx(true, rel=0.1), name
    assert all(e["sigma2_seed"] >= 0 for e in estimates)  # truncated at 0


def test_without_the_seed_term_it_is_the_v2_mde_and_seeds_only_add():
    rng = np.random.default_rng(1)
    tables = {lang: _table(rng, n=120) for lang in ("a", "b", "c")}
    comps = {lang: components(d) for lang, d in tables.items()}
    v2 = minimum_detectable_effect({lang: d.mean(1) for lang, d in tables.items()})
    assert mde([language_variance(c, c["n"], c["seeds"], with_seed=False) for c in comps.values()]) == pytest.approx(
        v2, rel=1e-9
    )
    with_seed = mde([language_variance(c, c["n"], c["seeds"]) for c in comps.values()])
    assert with_seed >= v2
    assert mde([1e-4] * 3, family=10) > mde([1e-4] * 3, family=1)  # Holm's first step is stricter


def _per_query(rng, seed_spread):
    rows = []
    for lang in ("hau", "yor"):
        for seed in range(3):
            shift = rng.normal(0, seed_spread)
            for q in range(150):
                base = rng.random()
                rows += [
                    {
                        "lang": lang,
                        "method": "optical",
                        "seed": seed,
                        "fold": 0,
                        "task": "clir",
                        "qid": str(q),
                        "MRR@10": base + shift + rng.normal(0, 0.05),
                    },
                    {
                        "lang": lang,
                        "method": "translate-train",
                        "seed": seed,
                        "fold": 0,
                        "task": "clir",
                        "qid": str(q),
                        "MRR@10": base + rng.normal(0, 0.05),
                    },
                ]
    return pd.DataFrame(rows)


def test_seed_variance_raises_the_projected_mde():
    rng = np.random.default_rng(2)
    calm = measured(_per_query(rng, 0.0), Endpoint("clir", "MRR@10"), "optical", ["translate-train"])
    noisy = measured(_per_query(rng, 0.05), Endpoint("clir", "MRR@10"), "optical", ["translate-train"])
    assert len(calm) == 2 and set(calm.lang) == {"hau", "yor"}
    assert noisy.sigma2_seed.mean() > 10 * calm.sigma2_seed.mean()
    r = reproduce(noisy)
    assert (r.mde_with_seed > r.mde_without_seed).all() and r.seed_share.iloc[0] > 0.5
    _, summary = project(noisy, ["hau", "swa", "yor"], seeds=3, families=[1, 4])
    clir = summary[summary.candidate == "NTREX CLIR MRR@10"].iloc[0]
    assert clir.languages == 3 and clir.worst_mde_m4 > clir.worst_mde_m1
    more_seeds = project(noisy, ["hau", "swa", "yor"], seeds=12, families=[1])[1]
    assert more_seeds[more_seeds.candidate == "NTREX CLIR MRR@10"].iloc[0].worst_mde_m1 < clir.worst_mde_m1
