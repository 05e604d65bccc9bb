"""Protocol v3's cap check applied to the grid (``docs/protocol_v3.md``, "Train to a plateau"): after the sweep and
before any grid cell, fewer than 80 % of the sweep's runs (step 0 left out) selecting a step before the cap doubles
the grid's cap for every arm; ``compare --cap-check`` reads it from the finished sweep beside ``--method-config``."""

from __future__ import annotations

import argparse
import json

import pytest

from optical_lab.data.errors import DataError
from optical_lab.experiments import compare
from optical_lab.experiments.stopping import grid_cap

CAP = 1000


def sweep_folder(root, selected, cap=CAP, finished=True):
    """A finished v3-like sweep: one run per selected step (its train_summary.json), chosen.json and done.json."""
    for i, step in enumerate(selected):
        cell = root / "sentence-kd" / f"lr{i}" / "swa"
        cell.mkdir(parents=True)
        (cell / "train_summary.json").write_text(json.dumps({"best_step": step, "steps": cap, "max_steps": cap}))
    (root / "chosen.json").write_text(json.dumps({"sentence-kd": {"lr": 3e-4}, "optical": {"lr": 1e-3}}))
    if finished:
        (root / "done.json").write_text(json.dumps({"chosen": {}}))
    return root / "chosen.json"


def grid_args(chosen, *extra):
    parser = argparse.ArgumentParser()
    compare.add_arguments(parser)
    return parser.parse_args(
        ["--langs", "hau", "--methods", "zero-shot,sentence-kd,optical", "--preset", "v3", "--folds", "1"]
        + ["--method-config", str(chosen), "--cap-check", *extra]
    )


def test_a_sweep_below_the_share_doubles_the_grid_cap_for_every_arm(tmp_path, capsys):
    # 10 runs: 2 kept step 0 (left out), 5 of the other 8 before the cap: 62.5 % < 80 %
    chosen = sweep_folder(tmp_path / "sweep", [0, 0, 50, 300, 950, 500, 700, CAP, CAP, CAP])
    check = grid_cap(tmp_path / "sweep")
    assert (check["share"], check["runs"], check["kept_step_0"]) == (5 / 8, 8, 2)
    assert check["doubled"] and check["steps"] == 2 * CAP and check["sweep_cap"] == CAP
    plan = compare.plan_from_args(grid_args(chosen))
    assert plan.train.steps == 2 * CAP
    assert {plan.train_config(arm).steps for arm in ("sentence-kd", "optical")} == {2 * CAP}
    assert plan.train_config("sentence-kd").lr == 3e-4  # the chosen settings are kept, not re-chosen
    assert "doubled to 2000" in capsys.readouterr().err


def test_a_sweep_reaching_the_share_keeps_the_cap(tmp_path):
    chosen = sweep_folder(tmp_path / "sweep", [0, 50, 300, 950, 500, CAP])  # 4 of 5: 80 %
    assert grid_cap(tmp_path / "sweep")["doubled"] is False
    assert compare.plan_from_args(grid_args(chosen)).train.steps == CAP
    # only step-0 runs: nothing to check, the cap stays
    assert grid_cap(sweep_folder(tmp_path / "zero", [0, 0]).parent)["steps"] == CAP


def test_the_cap_check_refuses_an_unfinished_or_mismatched_sweep(tmp_path, capsys):
    chosen = sweep_folder(tmp_path / "running", [CAP, CAP], finished=False)
    with pytest.raises(DataError, match="finished sweep"):
        compare.plan_from_args(grid_args(chosen))
    chosen = sweep_folder(tmp_path / "tiny", [3, 3], cap=3)
    with pytest.raises(DataError, match="cap of 3 steps"):
        compare.plan_from_args(grid_args(chosen))  # the v3 preset's cap is 1000
    # an explicit --steps wins, noted (a dry run with tiny overrides)
    assert compare.plan_from_args(grid_args(chosen, "--steps", "2")).train.steps == 2
    assert "not applied" in capsys.readouterr().err
    with pytest.raises(DataError, match="--method-config"):
        compare.plan_from_args(grid_args("", "--steps", "2"))
