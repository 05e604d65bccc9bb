"""The statistics core (optical_lab.evaluation.stats): the unit is the seed-averaged query, a deterministic arm
counts once, one sign convention, and every output of a folder (summary tables, v2 analysis, figures) agrees."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from optical_lab.evaluation.pooled import Endpoint
from optical_lab.evaluation.stats import (
    arm_summary,
    hierarchical_interval,
    language_tests,
    per_seed_differences,
    pooled_comparisons,
    query_scores,
    seed_counts,
)
from optical_lab.evaluation.verdict import DIFFERENCE

LANGS = ("hau", "yor")


def per_query(effects: dict[str, float], seeds=(0, 1, 2), n=60, seed_noise=0.05, deterministic=("zero-shot",)):
    """clir MRR@10 = query difficulty + the arm's effect (+ per-seed noise, except for deterministic arms)."""
    rng = np.random.default_rng(0)
    rows = []
    for lang in LANGS:
        base = rng.uniform(0.2, 0.7, n)
        for method, effect in effects.items():
            fixed = rng.normal(0, seed_noise, n)
            for s in seeds:
                noise = fixed if method in deterministic else rng.normal(0, seed_noise, n)
                rows += [
                    {
                        "lang": lang,
                        "method": method,
                        "fold": 0,
                        "seed": s,
                        "task": "clir",
                        "qid": f"d{i}",
                        "MRR@10": float(np.clip(v, 0, 1)),
                    }
                    for i, v in enumerate(base + effect + noise)
                ]
    return pd.DataFrame(rows)


def test_a_query_is_its_seed_average():
    table = per_query({"optical": 0.1, "zero-shot": 0.0})
    scores = query_scores(table, "clir", "MRR@10")
    one = table[(table.lang == "hau") & (table.method == "optical") & (table.qid == "d3")]["MRR@10"]
    assert scores.loc[("hau", "d3"), "optical"] == pytest.approx(one.mean()) and len(one) == 3
    assert len(scores) == 2 * 60  # queries, not (seed, query) pairs


def test_a_deterministic_arm_counts_once_whatever_its_seed_count():
    three = per_query({"optical": 0.1, "zero-shot": 0.0})
    one = three[~((three.method == "zero-shot") & (three.seed > 0))]
    counts = seed_counts(three, "clir", "MRR@10")
    assert counts.loc[("hau", "zero-shot"), "deterministic"] and not counts.loc[("hau", "optical"), "deterministic"]
    a, b = (arm_summary(t, "clir", "MRR@10").set_index(["lang", "method"]) for t in (three, one))
    assert a.loc[("hau", "zero-shot"), "n"] == 60  # not 180: its three seeds are one model
    assert a.loc[("hau", "zero-shot"), "ci"] == pytest.approx(b.loc[("hau", "zero-shot"), "ci"])
    tests_three, tests_one = (
        language_tests(t, "clir", "MRR@10", n_resamples=2_000).set_index(["lang", "method"]) for t in (three, one)
    )
    for column in (DIFFERENCE, "p", "ci_low", "ci_high", "mde"):
        assert tests_three.loc[("hau", "zero-shot"), column] == pytest.approx(
            tests_one.loc[("hau", "zero-shot"), column]
        )


def test_one_sign_convention_everywhere():
    """OPTICAL 0.1 above code-switch: every table says + (reference − method), with a CI around it."""
    table = per_query({"optical": 0.1, "code-switch": 0.0})
    lang = language_tests(table, "clir", "MRR@10", n_resamples=2_000)
    pooled = pooled_comparisons(
        table,
        "optical",
        ["code-switch"],
        [Endpoint("clir", "MRR@10")],
        list(LANGS),
        n_resamples=2_000,
        seed_resamples=300,
    )
    seeds = per_seed_differences(table, "clir", "MRR@10", list(LANGS), "optical", ["code-switch"])
    for frame in (lang, pooled, seeds):
        assert (frame[DIFFERENCE] > 0.05).all()
    assert ((lang.ci_low < lang[DIFFERENCE]) & (lang[DIFFERENCE] < lang.ci_high)).all()
    row = pooled.iloc[0]
    assert row.ci_low > 0 and row.hier_ci_low > 0 and row.significant
    assert set(seeds.lang) == {"hau", "yor", "pooled"} and len(seeds) == 3 * 3


def test_the_seed_and_query_bootstrap_widens_when_seeds_disagree():
    calm = per_query({"optical": 0.05, "code-switch": 0.0}, seed_noise=0.01)
    noisy = calm.copy()
    shift = noisy.seed.map({0: -0.08, 1: 0.0, 2: 0.08})  # each OPTICAL seed lands elsewhere
    noisy.loc[noisy.method == "optical", "MRR@10"] += shift[noisy.method == "optical"]
    widths = []
    for table in (calm, noisy):
        low, high = hierarchical_interval(table, "clir", "MRR@10", list(LANGS), "optical", "code-switch", 500)
        widths.append(high - low)
    assert widths[1] > 1.5 * widths[0]


def _write_folder(root, effects, seeds=(0, 1, 2)):
    table = per_query(effects, seeds)
    (root / "runs").mkdir(parents=True)
    for (lang, method, seed), part in table.groupby(["lang", "method", "seed"]):
        cell = root / "runs" / lang / method / f"fold0-seed{seed}"
        cell.mkdir(parents=True)
        part[["qid", "MRR@10"]].to_csv(cell / "clir.per_query.csv", index=False)
        (cell / "done.json").write_text(
            json.dumps({"lang": lang, "method": method, "fold": 0, "seed": int(seed), "best_step": 10})
        )
    return root


def test_summary_tables_and_v2_analysis_agree(tmp_path):
    """significance.csv and analysis.json carry the same test for the same language and arm: same sign, same p."""
    from optical_lab.experiments.summary import summarize_folder
    from optical_lab.reports.v2 import ARMS, analyse

    effects = {
        "zero-shot": -0.1,
        "sentence-kd": 0.0,
        "translate-train": 0.02,
        "code-switch": -0.05,
        "optical": 0.0,
        "optical+aug": 0.01,
    }
    folder = _write_folder(tmp_path, effects)
    summary = summarize_folder(folder)
    analysis = analyse(folder, langs=LANGS, seeds=3, endpoints=(Endpoint("clir", "MRR@10"),))
    tests = summary.tests.set_index(["lang", "method"])
    assert (summary.means.n == 60).all()
    compared = 0
    for row in analysis["per_language_tables"]["clir:MRR@10"]:
        for method in ("translate-train", "code-switch"):
            assert row[f"p {method}"] == tests.loc[(row["lang"], method), "p"]
            assert row[f"optical − {method}"] == pytest.approx(tests.loc[(row["lang"], method), DIFFERENCE])
            compared += 1
    assert compared == 4 and set(ARMS) == set(effects)


def test_figures_state_the_answer_of_the_v2_analysis(tmp_path):
    """`optical-lab figures` on a protocol-v2 folder: the forest plot, and answer.md = the results document's answer."""
    import matplotlib

    matplotlib.use("Agg")
    from optical_lab.cli import main
    from optical_lab.experiments.summary import summarize_folder
    from optical_lab.reports.v2 import analyse, v2_answer_markdown

    effects = {
        "zero-shot": -0.1,
        "sentence-kd": 0.0,
        "translate-train": -0.05,
        "code-switch": 0.0,
        "optical": 0.0,
        "optical+aug": 0.0,
    }
    folder = _write_folder(tmp_path / "results", effects)
    summarize_folder(folder).write(folder)
    analyse(folder, langs=LANGS, seeds=3, endpoints=(Endpoint("clir", "MRR@10"),))
    out = tmp_path / "figures"
    assert main(["figures", "--results", str(folder), "--out", str(out), "--no-plans"]) == 0
    assert (out / "forest_plot.png").read_bytes()[:4] == b"\x89PNG"
    answer = (out / "answer.md").read_text()
    for line in v2_answer_markdown(folder).splitlines()[2:]:  # the same sentences, under a demoted heading
        assert line in answer
    assert "OPTICAL − translate-train (oracle" in answer


def test_corrections_list_what_a_regeneration_changed(tmp_path):
    """An old significance.csv (delta = method − optical, seed pairs as queries) against the core's: a flipped
    test and a changed count are listed, an unchanged one is not; a verdict re-quoting its p is only counted."""
    from optical_lab.reports.corrections import corrections

    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir(), new.mkdir()
    key = {
        "lang": ["hau", "hau"],
        "task": ["clir", "clir"],
        "metric": ["MRR@10", "MRR@10"],
        "method": ["code-switch", "translate-train"],
    }
    pd.DataFrame(key | {"delta": [0.066, 0.02], "p_holm": [0.0025, 0.4], "significant": [True, False]}).to_csv(
        old / "significance.csv", index=False
    )
    pd.DataFrame(key | {DIFFERENCE: [-0.066, -0.02], "p_holm": [0.081, 0.5], "significant": [False, False]}).to_csv(
        new / "significance.csv", index=False
    )
    pd.DataFrame(key | {"n": [369, 369]}).to_csv(old / "summary.csv", index=False)
    pd.DataFrame(key | {"n": [123, 123]}).to_csv(new / "summary.csv", index=False)
    verdict = {"lang": ["hau"], "task": ["clir"], "metric": ["MRR@10"]}
    pd.DataFrame(verdict | {"verdict": ["optical LOSES: x is better (significantly, Holm p=0.0025)"]}).to_csv(
        old / "winners.csv", index=False
    )
    pd.DataFrame(verdict | {"verdict": ["optical LOSES: x is better (significantly, Holm p=0.003)"]}).to_csv(
        new / "winners.csv", index=False
    )
    text = corrections(new, old, "why", "today")
    assert "clir 369 → 123" in text
    assert "1 of 2 tests changed significance or sign" in text and "optical − code-switch: -0.066" in text
    assert "translate-train" not in text
    assert "0 of 1 verdicts changed in words (1 more quote another Holm p only)" in text


def test_dersimonian_laird_matches_a_hand_computation():
    """Two languages, y = 0 and 1, within-variances 0.1: w = 10, Q = 5, tau2 = (5 − 1) / (20 − 200/20) = 0.4,
    w* = 2, mu = 0.5, SE = 1/sqrt(4) = 0.5, I2 = 0.8; identical languages: tau2 = 0 and the common value."""
    from optical_lab.evaluation.stats import random_effects

    out = random_effects([0.0, 1.0], [0.1, 0.1])
    assert out["tau2"] == pytest.approx(0.4) and out["Q"] == pytest.approx(5.0) and out["I2"] == pytest.approx(0.8)
    assert out["reference_minus_method"] == pytest.approx(0.5) and out["se"] == pytest.approx(0.5)
    assert out["ci_low"] == pytest.approx(0.5 - 1.959964 * 0.5)
    same = random_effects([0.2, 0.2, 0.2], [0.01, 0.02, 0.04])
    assert same["tau2"] == 0 and same["reference_minus_method"] == pytest.approx(0.2) and same["p"] < 0.05
    assert np.isnan(random_effects([0.1, 0.2], [0.0, 0.01])["se"])  # a language without variance: no weight


def test_bootstrap_test_floors_p_and_states_the_mde_at_the_family_size():
    """p = 2 min(share ≤ 0, share ≥ 0) floored at 1/B; MDE = (z_{1−α/(2m)} + z_0.8) × the draws' SD."""
    from optical_lab.evaluation.pooled import detectable_effect
    from optical_lab.evaluation.stats import bootstrap_test

    rng = np.random.default_rng(0)
    far = bootstrap_test({"a": (1.0, rng.normal(1.0, 0.1, 1000))}, family=4)
    assert far["p"] == 1 / 1000 and far["mde"] == pytest.approx((2.497705 + 0.841621) * far["sd"], rel=1e-5)
    assert detectable_effect(1.0, 4) == pytest.approx(3.339326, rel=1e-5)
    draws = rng.normal(0.0, 0.1, 1000)
    near = bootstrap_test({"a": (0.0, draws), "b": (0.0, -draws)})  # the language-balanced draws are all 0
    assert near["p"] == 1.0 and near["sd"] == 0.0


def test_the_effects_seed_stage_is_an_option_the_registered_rows_stay_the_default():
    """seed_stage="effects" (not registered): a deterministic arm has no seed effects; the seed effects of a
    crossed table with no seed term are (nearly) 0 where whole rows still carry the interaction; unknown: error."""
    from optical_lab.evaluation.stats import _seed_effects, hierarchical_draws

    rng = np.random.default_rng(5)
    noise = pd.DataFrame(rng.normal(0, 1, (5, 400)))  # interaction only: each row mean carries 1/n of it
    same = pd.DataFrame(np.tile(rng.normal(0, 1, 400), (5, 1)))  # a deterministic arm: identical seeds
    shifted = noise + np.array([[0.0], [0.5], [1.0], [-0.5], [-1.0]])  # a real seed term
    assert np.all(_seed_effects(same.to_numpy()) == 0)
    assert np.abs(_seed_effects(noise.to_numpy())).max() < 0.05
    big = _seed_effects(shifted.to_numpy())
    # the mean of k draws of them has variance var0 / k = the seed term's variance / k (ddof 1 of the shifts: 0.625)
    assert big.var(ddof=0) == pytest.approx(0.625 - 1 / 400, rel=0.05)
    matrices = {"a": (noise, same)}
    default = hierarchical_draws(matrices, 300, seed=1)
    assert np.array_equal(default["a"][1], hierarchical_draws(matrices, 300, seed=1, seed_stage="rows")["a"][1])
    effects = hierarchical_draws(matrices, 300, seed=1, seed_stage="effects")
    assert effects["a"][0] == default["a"][0] and effects["a"][1].std() < default["a"][1].std()
    with pytest.raises(ValueError, match="seed_stage"):
        hierarchical_draws(matrices, 10, seed_stage="columns")
