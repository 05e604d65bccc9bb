"""The protocol-v2 sweep: stages chain their choices, the tie rule, resume without retraining."""

from __future__ import annotations

import json
import shutil

import pytest

from optical_lab.data import DataError
from optical_lab.experiments import sweep as sweep_module
from optical_lab.experiments import sweep_design
from optical_lab.experiments.sweep import Sweep, choose, finished_rows, slug
from optical_lab.io import stored_exists
from optical_lab.reports.v2_setup import sweep_lines


def choose_stage1(out, method, grid):
    rows = [json.loads((out / method / slug({"lr": lr}) / "done.json").read_text()) for lr in grid]
    return choose(rows)["setting"]["lr"]


def test_choose_takes_the_first_setting_within_the_tie_margin():
    rows = [
        {"setting": {"lr": 1e-5}, "best_dev_mrr": 0.500},
        {"setting": {"lr": 3e-5}, "best_dev_mrr": 0.5015},
        {"setting": {"lr": 1e-4}, "best_dev_mrr": 0.490},
        {"setting": {"lr": 3e-4}, "best_dev_mrr": None},
    ]
    assert choose(rows)["setting"] == {"lr": 1e-5}  # 0.5015 - 0.500 < TIE: the simpler (first) one
    rows[1]["best_dev_mrr"] = 0.510
    assert choose(rows)["setting"] == {"lr": 3e-5}


def test_slug_is_a_readable_folder_name():
    assert slug({"lr": 1e-4, "ot_variant": "centred", "epsilon": 0.02}) == "lr0.0001-ot_variant=centred-epsilon=0.02"


def small_grids(monkeypatch) -> None:
    """Grids small enough for a test, every stage still exercised (an lr at the edge, two variants)."""
    monkeypatch.setattr(sweep_design, "LR_GRID", (1e-5, 1e-3))
    monkeypatch.setattr(sweep_design, "LR_EDGE", 3e-3)
    monkeypatch.setattr(sweep_design, "VARIANTS", ("plain", "centred"))
    monkeypatch.setattr(sweep_design, "EPSILONS", (0.05,))
    monkeypatch.setattr(sweep_design, "AUG_WEIGHTS", (1.0,))


def test_sweep_chains_stages_and_resumes_from_finished_cells(tmp_path, monkeypatch):
    small_grids(monkeypatch)
    out = tmp_path / "sweep"
    options = dict(
        lang="hau", preset_name="tiny", methods=["sentence-kd", "optical", "optical+aug"], threads=1, progress=False
    )
    chosen = Sweep(out, **options).run_all()
    assert set(chosen) == {"sentence-kd", "optical", "optical+aug"}
    assert json.loads((out / "chosen.json").read_text()) == chosen  # v2: the arms only, as committed
    # a method whose best lr was the grid's largest also tried the next one
    for method in chosen:
        tried = {p.name for p in (out / method).iterdir() if p.name.startswith("lr") and "-" not in p.name[3:]}
        assert (slug({"lr": 3e-3}) in tried) == (choose_stage1(out, method, (1e-5, 1e-3)) == 1e-3)
    lr = json.loads((out / "optical" / slug({"lr": chosen["optical"]["lr"]}) / "done.json").read_text())["setting"][
        "lr"
    ]
    # stage 2 ran at OPTICAL's stage-1 lr; stage 3 carries OPTICAL's chosen settings
    variants = sorted(p.name for p in (out / "optical").iterdir() if "ot_variant" in p.name)
    assert variants and all(p.startswith(slug({"lr": lr})) for p in variants)
    assert {k: v for k, v in chosen["optical+aug"].items() if k not in ("lr", "aug_weight")} == {
        k: v for k, v in chosen["optical"].items() if k != "lr"
    }
    # stage 2's plain cost at the default epsilon is stage 1's configuration: recorded, not trained again
    plain = out / "optical" / slug({"lr": lr, "ot_variant": "plain", "epsilon": 0.05})
    stage1 = json.loads((out / "optical" / slug({"lr": lr}) / "done.json").read_text())
    copied = json.loads((plain / "done.json").read_text())
    assert copied["same_as"] == f"optical/{slug({'lr': lr})}" and not stored_exists(plain / "train_log.jsonl")
    assert copied["best_dev_mrr"] == stage1["best_dev_mrr"] and copied["stage"] == "2-variant"
    # OPTICAL cells carry the collapse diagnostics
    done = json.loads((out / "optical" / variants[0] / "done.json").read_text())
    assert {"token_cos", "plan_entropy", "marginal_error"} <= set(done["diagnostics"])
    assert (out / "sweep.md").read_text().count("|") > 10
    assert json.loads((out / "leakage_train.json").read_text())
    # the v2 results document tables the same cells, in stage order, with the choices
    rows = finished_rows(out)
    assert len(rows) == len(list(out.glob("*/*/done.json")))
    section = "\n".join(sweep_lines(out))
    assert all(f"**{m}** {slug(s)}" in section for m, s in chosen.items()) and "Chosen:" in section
    (out / "done.json").unlink()  # a sweep that has not finished says so
    assert "Chosen so far" in "\n".join(sweep_lines(out))
    assert section.count("\n| ") == len(rows) + 1  # header + one row per cell

    def no_training(*args, **kwargs):
        raise AssertionError("a finished sweep cell was retrained")

    monkeypatch.setattr(sweep_module, "train_student", no_training)
    assert Sweep(out, **options).run_all() == chosen  # (done.json was removed above: this run finishes it again)
    environment = (out / "environment.json").read_text()
    (out / "environment.json").write_text(environment + " ")  # a finished sweep's records are only read
    assert Sweep(out, **options).run_all() == chosen
    assert (out / "environment.json").read_text() == environment + " "
    done = json.loads((out / "done.json").read_text())
    done["chosen"]["sentence-kd"] = {"lr": 42.0}
    (out / "done.json").write_text(json.dumps(done))
    with pytest.raises(DataError, match="choose other settings"):
        Sweep(out, **options).run_all()

    # two worker processes train each round's settings; the choices and every cell's score are those of
    # the one-process sweep (same seed, one thread: the same arithmetic), and so is the table
    monkeypatch.undo()
    small_grids(monkeypatch)
    parallel = tmp_path / "parallel"
    assert Sweep(parallel, **options, jobs=2).run_all() == chosen
    scores = {
        p.parent.relative_to(out).as_posix(): json.loads(p.read_text())["best_dev_mrr"]
        for p in out.glob("*/*/done.json")
    }
    assert scores == {
        p.parent.relative_to(parallel).as_posix(): json.loads(p.read_text())["best_dev_mrr"]
        for p in parallel.glob("*/*/done.json")
    }
    assert (parallel / "sweep.md").read_text().split("## Chosen")[1].replace("train s", "").split("|")[:3] == (
        out / "sweep.md"
    ).read_text().split("## Chosen")[1].split("|")[:3]

    done["chosen"] = chosen
    (out / "done.json").write_text(json.dumps(done))
    shutil.rmtree(out / "sentence-kd" / slug({"lr": 1e-5}))  # a finished sweep never trains a missing cell
    with pytest.raises(DataError, match="is a finished sweep"):
        Sweep(out, **options).run_all()


def test_compare_reads_per_method_settings_into_cell_identity(tmp_path):
    from optical_lab.data.errors import DataError
    from optical_lab.experiments.compare import read_method_config
    from optical_lab.experiments.identity import cell_fingerprint
    from optical_lab.experiments.plan import ComparePlan

    chosen = tmp_path / "chosen.json"
    chosen.write_text(json.dumps({"optical": {"lr": 3e-5, "ot_variant": "centred"}, "sentence-kd": {"lr": 1e-4}}))
    config = read_method_config(str(chosen), ["zero-shot", "optical"])
    assert config == {"optical": {"lr": 3e-5, "ot_variant": "centred"}}
    plan = ComparePlan(langs=["hau"], methods=["zero-shot", "optical"], method_config=config)
    assert plan.train_config("optical").lr == 3e-5 and plan.train_config("optical").ot_variant == "centred"
    assert plan.train_config("sentence-kd").lr == plan.train.lr
    assert cell_fingerprint(plan, "optical") != cell_fingerprint(
        ComparePlan(langs=["hau"], methods=["optical"]), "optical"
    )
    assert cell_fingerprint(plan, "zero-shot") == cell_fingerprint(
        ComparePlan(langs=["hau"], methods=["zero-shot"]), "zero-shot"
    )
    with pytest.raises(DataError, match="max_length"):
        ComparePlan(langs=["hau"], methods=["optical"], method_config={"optical": {"max_length": 32}})
    chosen.write_text("[1, 2]")
    with pytest.raises(DataError, match="chosen.json"):
        read_method_config(str(chosen), ["optical"])
