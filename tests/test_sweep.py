"""The protocol-v2 sweep: stages chain their choices, the tie rule, resume without retraining."""
from __future__ import annotations

import json

import pytest

from optical_lab.experiments import sweep as sweep_module
from optical_lab.experiments.sweep import Sweep, choose, slug


def test_choose_takes_the_first_setting_within_the_tie_margin():
    rows = [{"setting": {"lr": 1e-5}, "best_dev_mrr": 0.500}, {"setting": {"lr": 3e-5}, "best_dev_mrr": 0.5015},
            {"setting": {"lr": 1e-4}, "best_dev_mrr": 0.490}, {"setting": {"lr": 3e-4}, "best_dev_mrr": None}]
    assert choose(rows)["setting"] == {"lr": 1e-5}  # 0.5015 - 0.500 < TIE: the simpler (first) one
    rows[1]["best_dev_mrr"] = 0.510
    assert choose(rows)["setting"] == {"lr": 3e-5}


def test_slug_is_a_readable_folder_name():
    assert slug({"lr": 1e-4, "ot_variant": "centred", "epsilon": 0.02}) == "lr0.0001-ot_variant=centred-epsilon=0.02"


def test_sweep_chains_stages_and_resumes_from_finished_cells(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_module, "LR_GRID", (1e-5, 1e-3))
    monkeypatch.setattr(sweep_module, "VARIANTS", ("plain", "centred"))
    monkeypatch.setattr(sweep_module, "EPSILONS", (0.05,))
    monkeypatch.setattr(sweep_module, "AUG_WEIGHTS", (1.0,))
    out = tmp_path / "sweep"
    options = dict(lang="hau", preset_name="tiny", methods=["sentence-kd", "optical", "optical+aug"], threads=1,
                   progress=False)
    chosen = Sweep(out, **options).run_all()
    assert set(chosen) == {"sentence-kd", "optical", "optical+aug"}
    lr = json.loads((out / "optical" / slug({"lr": chosen["optical"]["lr"]}) / "done.json").read_text())["setting"]["lr"]
    # stage 2 ran at OPTICAL's stage-1 lr; stage 3 carries OPTICAL's chosen settings
    variants = sorted(p.name for p in (out / "optical").iterdir() if "ot_variant" in p.name)
    assert variants and all(p.startswith(slug({"lr": lr})) for p in variants)
    assert {k: v for k, v in chosen["optical+aug"].items() if k not in ("lr", "aug_weight")} == \
           {k: v for k, v in chosen["optical"].items() if k != "lr"}
    # OPTICAL cells carry the collapse diagnostics
    done = json.loads((out / "optical" / variants[0] / "done.json").read_text())
    assert {"token_cos", "plan_entropy", "marginal_error"} <= set(done["diagnostics"])
    assert (out / "sweep.md").read_text().count("|") > 10
    assert json.loads((out / "leakage_train.json").read_text())

    def no_training(*args, **kwargs):
        raise AssertionError("a finished sweep cell was retrained")

    monkeypatch.setattr(sweep_module, "Trainer", no_training)
    assert Sweep(out, **options).run_all() == chosen
