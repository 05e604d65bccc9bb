"""The simulation calibration of protocol v3's registered test: the simulator, the power shortcut and the check
that a broken test is caught (tiny designs; none of the numbers of docs/v3_test_calibration.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from optical_lab.evaluation.stats import bootstrap_test, hierarchical_draws
from optical_lab.experiments.test_calibration import (
    Design,
    Outcome,
    binary,
    binary_scale,
    gaussian,
    recovered,
    simulate,
    summarise,
)
from optical_lab.experiments.test_calibration_cli import in_brief, wilson


def _design(query=0.04, seed=0.002, resid=0.06, queries=None, seeds=5, mean_score=0.4):
    queries = queries or {"aa": 400, "bb": 600, "cc": 500}
    return Design("endpoint", "arm", queries, seeds, query, seed, resid, 0.01, mean_score)


def _statistic(matrices):
    return np.mean([(ref.to_numpy().mean(0) - other.to_numpy().mean(0)).mean() for ref, other in matrices.values()])


def test_the_simulator_reproduces_the_components_it_was_given_and_the_true_sd():
    design = _design()
    rng = np.random.default_rng(0)
    sets = [gaussian(design, rng) for _ in range(300)]
    got = pd.DataFrame([recovered(m) for m in sets[:60]]).mean()
    assert got.sigma2_query == pytest.approx(design.sigma2_query, rel=0.1)
    assert got.sigma2_resid == pytest.approx(design.sigma2_resid, rel=0.05)
    assert got.sigma2_seed == pytest.approx(design.sigma2_seed, rel=0.25)
    assert np.std([_statistic(m) for m in sets], ddof=1) == pytest.approx(design.true_sd(), rel=0.12)
    shifted = gaussian(design, np.random.default_rng(1), delta=0.3)
    assert np.mean([_statistic(gaussian(design, np.random.default_rng(i), 0.3)) for i in range(20)]) == pytest.approx(
        0.3, abs=0.01
    )
    assert all(ref.shape == (5, n) for (ref, _), n in zip(shifted.values(), design.queries.values()))


@pytest.mark.parametrize("stage", ["rows", "effects"])
def test_adding_delta_to_the_reference_shifts_every_draw_by_delta(stage):
    matrices = gaussian(_design(queries={"aa": 50, "bb": 70}), np.random.default_rng(2))
    moved = {lang: (ref + 0.05, other) for lang, (ref, other) in matrices.items()}
    base, shifted = (hierarchical_draws(m, 300, seed=0, seed_stage=stage) for m in (matrices, moved))
    for lang in base:
        assert shifted[lang][0] == pytest.approx(base[lang][0] + 0.05, abs=1e-12)
        np.testing.assert_allclose(shifted[lang][1], base[lang][1] + 0.05, atol=1e-12)
    # the shortcut the calibration takes gives bootstrap_test's answer on the shifted data itself
    outcome = simulate(_design(queries={"aa": 50, "bb": 70}), 1, 300, 0, lambda d, r: matrices, progress=False)[stage]
    direct = bootstrap_test(shifted, family=4)
    assert outcome.test(0, 0.05) == pytest.approx(direct, abs=1e-12)


def _ignores_seeds(matrices, resamples):
    """A broken test: the real bootstrap fed each arm's seed-averaged row, so only queries are resampled."""
    means = {lang: (ref.mean().to_frame().T, other.mean().to_frame().T) for lang, (ref, other) in matrices.items()}
    return hierarchical_draws(means, resamples, seed=0)


def test_a_test_that_ignores_seed_variance_is_caught_and_the_registered_one_is_not():
    design = _design(query=0.02, seed=0.02, resid=0.02, queries={"aa": 60, "bb": 80})
    variants = {"registered": lambda m, b: hierarchical_draws(m, b, seed=0), "broken": _ignores_seeds}
    outcomes = simulate(design, 80, 200, 3, gaussian, variants=variants, progress=False)
    broken = summarise(outcomes["broken"], design.true_sd())
    registered = summarise(outcomes["registered"], design.true_sd())
    assert broken["type1"] > 0.4 and broken["sd_ratio"] < 0.5
    assert registered["type1"] < 0.25 and broken["type1"] > registered["type1"] + 0.2
    assert 0 <= registered["coverage"] <= 1 and registered["type1_se"] > 0


def test_the_effects_option_counts_the_seed_by_query_interaction_once_the_registered_rows_more():
    design = _design(query=0.0, seed=0.0, resid=0.1, queries={"aa": 200, "bb": 300})  # interaction only
    outcomes = simulate(design, 40, 300, 4, gaussian, progress=False)
    rows, effects = (summarise(outcomes[v], design.true_sd()) for v in ("rows", "effects"))
    assert rows["sd_ratio"] > 1.3  # about sqrt(1 + 2 (k-1)/k) = 1.61 with k = 5 (stats.hierarchical_draws doc)
    assert effects["sd_ratio"] == pytest.approx(1.0, abs=0.12)
    for stage, row in (("rows", rows), ("effects", effects)):  # the variance formula the document prints beside
        assert row["bootstrap_sd"] == pytest.approx(design.bootstrap_sd(stage), rel=0.1), stage


def test_the_bootstrap_sd_formula_follows_a_seed_term_and_the_seed_count():
    seedy = _design(query=0.01, seed=0.01, resid=0.0, queries={"aa": 300})
    outcomes = simulate(seedy, 60, 300, 6, gaussian, progress=False)
    for stage in ("rows", "effects"):
        got = np.mean([outcomes[stage].test(i)["sd"] for i in range(60)])
        assert got == pytest.approx(seedy.bootstrap_sd(stage), rel=0.2), stage
    # rows: the seed term shrunk by (k-1)/k, effects: not
    assert seedy.bootstrap_sd("rows") < 0.92 * seedy.true_sd() and seedy.bootstrap_sd("effects") == pytest.approx(
        seedy.true_sd(), rel=0.01
    )


def test_power_is_measured_at_the_projected_and_at_the_own_mde():
    design = _design(queries={"aa": 100, "bb": 100})
    outcome = simulate(design, 30, 200, 5, gaussian, progress=False)["rows"]
    row = summarise(outcome, design.true_sd(), {"projected": 0.0, "own": 0.0, "huge": 1.0})
    assert row["delta_own"] == row["mde"] > 0 and row["delta_projected"] == 0.0
    assert row["power_huge"] == 1.0 and row["power_projected"] <= 0.2  # no effect: about α/m (right sign only)


def test_the_binary_model_is_binary_and_matches_the_variance_it_is_scaled_to():
    design = _design(query=0.05, seed=0.0005, resid=0.07, queries={"aa": 1500, "bb": 1500}, mean_score=0.4)
    scale = binary_scale(design, seed=0, steps=20)
    data = binary(design, np.random.default_rng(7), scale)
    scores = np.concatenate([m.to_numpy().ravel() for pair in data.values() for m in pair])
    assert set(np.unique(scores)) == {0.0, 1.0} and scores.mean() == pytest.approx(0.4, abs=0.04)
    got = recovered(data)
    assert got["sigma2_query"] + got["sigma2_resid"] == pytest.approx(0.12, rel=0.08)
    with pytest.raises(ValueError, match="no latent scale"):
        binary_scale(_design(query=0.5, resid=0.6), steps=2)  # beyond what 0/1 differences can vary


def test_wilson_interval_is_not_empty_at_zero():
    low, high = wilson(0.0, 100)
    assert low == pytest.approx(0.0, abs=1e-12) and 0.02 < high < 0.06
    low, high = wilson(0.05, 500)
    assert low < 0.05 < high


def test_outcome_test_reads_back_the_draws():
    outcome = Outcome(np.array([0.1]), np.array([np.linspace(-0.1, 0.3, 101)]))
    got = outcome.test(0)
    assert got["reference_minus_method"] == pytest.approx(0.1) and got["ci_low"] < 0 < got["ci_high"]


def test_the_document_is_rendered_from_the_json_record_alone(tmp_path):
    import argparse
    from dataclasses import asdict

    from optical_lab.experiments.test_calibration import calibrate
    from optical_lab.experiments.test_calibration_cli import main
    from optical_lab.io import write_json

    design = _design(queries={"aa": 40, "bb": 50})
    rows = calibrate([design], 6, 100, progress=False, models=("gaussian",))
    assert [r["seed_stage"] for r in rows] == ["rows", "effects"] and rows[0]["registered"]
    meta = {"command": "optical-lab test-calibration X", "sims": 6, "resamples": 100, "registered_resamples": 10000}
    meta |= {"seed": 0, "seconds": 1.0, "cpu": "a CPU", "designs": [asdict(design)], "rows": rows}
    write_json(meta, tmp_path / "record.json")
    main(argparse.Namespace(render=[tmp_path / "record.json"], doc=tmp_path / "record.md"))
    text = (tmp_path / "record.md").read_text(encoding="utf-8")
    assert "* `optical-lab test-calibration X`: 6 simulated" in text and "rendered from their JSON" in text
    assert "Registered test:" in text and "## Gaussian model: power" in text and "Non-Gaussian" not in text
    assert text.count("endpoint, optical − arm (gaussian, seed stage") == 2


def test_the_implied_level_of_a_wider_sd_is_lower():
    from optical_lab.experiments.test_calibration_cli import implied_level

    assert implied_level(1.0) == pytest.approx(0.05) and implied_level(1.175) == pytest.approx(0.0214, abs=5e-4)
    assert implied_level(0.9) > 0.05


def test_in_brief_counts_conservative_and_too_liberal_tests_of_the_registered_stage_only():
    rows = [
        {"registered": True, "type1": 0.02, "sims": 500, "sd_ratio": 1.17, "power_own": 0.84},
        {"registered": True, "type1": 0.15, "sims": 500, "sd_ratio": 0.80, "power_own": 0.95},
        {"registered": True, "type1": 0.05, "sims": 500, "sd_ratio": 1.00},  # a null-only (binary) row
        {"registered": False, "type1": 0.30, "sims": 500, "sd_ratio": 2.0, "power_own": 0.1},  # another stage
    ]
    line = in_brief(rows)
    assert "3 simulated tests" in line
    assert "0.020-0.150 (1 clearly above 0.07)" in line
    assert "0.800-1.170, above 1.05 (conservative) in 1 of 3" in line
    assert "power at its own reported mde 0.840-0.950" in line
    assert "no row of the registered test" in in_brief(rows[3:])
