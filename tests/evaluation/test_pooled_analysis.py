"""The pooled primary analysis of protocol v2: the test, its minimum detectable effect, the answer rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from optical_lab.evaluation.pooled import Endpoint, answer, minimum_detectable_effect, stratified_randomization_test
from optical_lab.evaluation.significance import paired_randomization_test
from optical_lab.evaluation.stats import pooled_comparisons


def test_one_stratum_is_the_paired_randomization_test():
    rng = np.random.default_rng(1)
    diff = rng.normal(0.03, 0.2, size=150)
    T, p = stratified_randomization_test({"x": diff}, n_resamples=5_000, chunk=5_000)
    assert T == pytest.approx(diff.mean())
    assert p == pytest.approx(paired_randomization_test(diff, np.zeros_like(diff), n_resamples=5_000), abs=2e-4)


def test_languages_weigh_the_same_whatever_their_query_count():
    big = np.full(1000, 0.1)  # one language with many queries, all +0.1
    small = np.full(10, -0.1)  # one with few, all -0.1
    T, _ = stratified_randomization_test({"big": big, "small": small}, n_resamples=200)
    assert T == pytest.approx(0.0)


def test_planted_effect_found_and_false_positive_rate_is_alpha():
    rng = np.random.default_rng(2)
    shifted = {lang: rng.normal(0.05, 0.25, size=200) for lang in "abcde"}
    assert stratified_randomization_test(shifted, n_resamples=2_000)[1] < 0.01
    # under H0 the test rejects at level 0.05 in about 5% of data sets (binomial sd over 300: 1.3%)
    rejections = [
        stratified_randomization_test(
            {lang: rng.normal(0.0, 0.25, size=60) for lang in "abcde"}, n_resamples=400, seed=r
        )[1]
        < 0.05
        for r in range(300)
    ]
    assert 0.015 <= np.mean(rejections) <= 0.09


def test_minimum_detectable_effect_has_the_stated_power():
    """Data whose true pooled effect equals the MDE are detected in about 80% of repetitions."""
    rng = np.random.default_rng(3)
    sd, n, langs = 0.3, 120, 5
    mde = minimum_detectable_effect({l: rng.normal(0, sd, size=n) for l in range(langs)})
    # analytic value for equal variances: 2.8016 * sd / sqrt(n * langs)
    assert mde == pytest.approx(2.8016 * sd / np.sqrt(n * langs), rel=0.1)
    hits = sum(
        stratified_randomization_test({l: rng.normal(mde, sd, size=n) for l in range(langs)}, n_resamples=500, seed=r)[
            1
        ]
        < 0.05
        for r in range(200)
    )
    assert 0.7 <= hits / 200 <= 0.9


def _per_query(effects: dict[str, float], langs=("hau", "yor", "swa"), seeds=(0, 1, 2), n=80) -> pd.DataFrame:
    rng = np.random.default_rng(4)
    base = {lang: rng.uniform(0.3, 0.7, size=n) for lang in langs}
    rows = []
    for lang in langs:
        for method, effect in effects.items():
            for seed in seeds:
                scores = np.clip(base[lang] + effect + rng.normal(0, 0.05, size=n), 0, 1)
                rows += [
                    {
                        "lang": lang,
                        "method": method,
                        "fold": 0,
                        "seed": seed,
                        "task": "clir",
                        "qid": f"q{i}",
                        "MRR@10": s,
                    }
                    for i, s in enumerate(scores)
                ]
    return pd.DataFrame(rows)


def test_family_is_holm_corrected_and_answer_follows_the_rule():
    per_query = _per_query({"optical": 0.1, "translate-train": 0.0, "code-switch": 0.0, "sentence-kd": 0.1})
    table = pooled_comparisons(
        per_query,
        "optical",
        ["translate-train", "code-switch", "sentence-kd"],
        [Endpoint("clir", "MRR@10")],
        ["hau", "yor", "swa"],
        n_resamples=2_000,
    )
    assert (table.p_holm >= table.p).all()
    assert set(table.method[table.significant]) == {"translate-train", "code-switch"}
    assert table.min_seeds.eq(3).all() and table.queries.eq(240).all()
    assert answer(table, "clir:MRR@10", ["translate-train", "code-switch"]).startswith("optical beats augmentation")

    worse = _per_query({"optical": 0.0, "translate-train": 0.1, "code-switch": 0.0})
    table = pooled_comparisons(
        worse,
        "optical",
        ["translate-train", "code-switch"],
        [Endpoint("clir", "MRR@10")],
        ["hau", "yor", "swa"],
        n_resamples=2_000,
    )
    assert answer(table, "clir:MRR@10", ["translate-train", "code-switch"]).startswith("augmentation beats optical")

    same = _per_query({"optical": 0.0, "translate-train": 0.0, "code-switch": 0.0})
    table = pooled_comparisons(
        same,
        "optical",
        ["translate-train", "code-switch"],
        [Endpoint("clir", "MRR@10")],
        ["hau", "yor", "swa"],
        n_resamples=2_000,
    )
    assert answer(table, "clir:MRR@10", ["translate-train", "code-switch"]).startswith("no detectable difference")

    # beating one augmentation arm but not the other is "none" by the rule; the text says which arm it beat
    mixed = _per_query({"optical": 0.1, "translate-train": 0.0, "code-switch": 0.1})
    table = pooled_comparisons(
        mixed,
        "optical",
        ["translate-train", "code-switch"],
        [Endpoint("clir", "MRR@10")],
        ["hau", "yor", "swa"],
        n_resamples=2_000,
    )
    text = answer(table, "clir:MRR@10", ["translate-train", "code-switch"])
    assert text == (
        "neither: optical is significantly better than translate-train (Holm p < 0.05) but not "
        "detectably different from code-switch"
    ), text
    row = table.set_index("method").loc["translate-train"]
    assert row.ci_low > 0 and row.ci_low < row.reference_minus_method < row.ci_high


def test_missing_language_is_an_error_not_a_smaller_family():
    per_query = _per_query({"optical": 0.0, "code-switch": 0.0})
    per_query = per_query[~((per_query.lang == "swa") & (per_query.method == "code-switch"))]
    with pytest.raises(ValueError, match="swa"):
        pooled_comparisons(per_query, "optical", ["code-switch"], [Endpoint("clir", "MRR@10")], ["hau", "yor", "swa"])
