"""`optical-lab progress`: runs finished / expected of a v3 sweep and a grid, the selected steps, the cap check and
the CPU-hours left, on a synthetic results folder (nothing trained, nothing written into it)."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from optical_lab.data.errors import DataError
from optical_lab.experiments.identity import plan_cells
from optical_lab.experiments.plan import ComparePlan
from optical_lab.experiments.progress import hours_left, progress, render
from optical_lab.experiments.stopping import cap_check
from optical_lab.experiments.sweep_design import slug
from optical_lab.methods.config import TrainConfig

CAP = 100
GRIDS = {  # what a v3 sweep's config.json records: sentence-kd 2 settings, optical 2 x 2, both extendable
    "arms": {
        "sentence-kd": {"axes": {"lr": [0.001, 0.003]}, "fixed": {}},
        "optical": {"axes": {"lr": [0.001, 0.003], "epsilon": [0.05, 0.02], "ot_variant": ["centred"]}, "fixed": {}},
    },
    "edge_steps": {"lr": ["x", 3], "epsilon": ["x", 2]},
    "max_extensions": 2,
}


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))


def _run(cell, method, setting, stage, *, step_seconds, best_step, steps, done=True):
    """A sweep or grid run: its training log (``steps`` steps of ``step_seconds``), and when ``done`` its summary
    and done.json (recorded training time: twice the logged step time)."""
    log = [{"event": "train", "step": i + 1, "seconds": step_seconds} for i in range(steps)]
    _write(cell / "train_log.jsonl", "\n".join(json.dumps(r) for r in log) + "\n")
    if done:
        summary = {"best_step": best_step, "steps": steps, "max_steps": CAP, "stopped_early": steps < CAP}
        _write(cell / "train_summary.json", summary)
        info = {"method": method, "setting": setting, "stage": stage, "lang": cell.name, "fingerprint": "x"}
        _write(cell / "done.json", info | {"best_dev_mrr": 0.5, "train_s": 2 * step_seconds * steps})


@pytest.fixture
def v3(tmp_path):
    """A v3-like results folder: a sweep on languages aa, bb with 3 finished runs (one an edge extension) and one
    running, and a grid of 2 arms x 1 language x 2 seeds with one finished cell."""
    root = tmp_path / "v3-toy"
    sweep = root / "sweep"
    record = {"kind": "sweep", "design": "v3", "langs": ["aa", "bb"], "methods": ["sentence-kd", "optical"]}
    _write(sweep / "config.json", record | {"grids": GRIDS, "train": {"steps": CAP}})
    opt = {"lr": 0.001, "epsilon": 0.05, "ot_variant": "centred"}
    runs = (  # method, setting, language, stage, seconds per step, selected step, steps, finished
        ("sentence-kd", {"lr": 0.001}, "aa", "1-grid", 1.0, 50, 80, True),
        ("sentence-kd", {"lr": 0.001}, "bb", "1-grid", 1.0, CAP, CAP, True),  # selected at the cap
        ("sentence-kd", {"lr": 0.009}, "aa", "1-edge", 1.0, 0, 60, True),  # an extension that kept step 0
        ("optical", opt, "aa", "1-grid", 3.0, 0, 5, False),  # running
    )
    for method, setting, lang, stage, seconds, best, steps, done in runs:
        cell = sweep / method / slug(setting) / lang
        _run(cell, method, setting, stage, step_seconds=seconds, best_step=best, steps=steps, done=done)

    plan = ComparePlan(
        langs=["hau"], methods=["zero-shot", "sentence-kd"], seeds=2, folds=1, train=TrainConfig(steps=CAP)
    )
    _write(root / "config.json", {"kind": "compare", **asdict(plan)})
    cells = [folder for _, method, _, _, _, folder in plan_cells(plan, root / "runs") if method == "sentence-kd"]
    _run(cells[0], "sentence-kd", {}, "grid", step_seconds=1.0, best_step=40, steps=70)
    _write(cells[0] / "done.json", json.loads((cells[0] / "done.json").read_text()) | {"eval_s": 36.0})
    return root


def test_progress_counts_expected_runs_with_extensions_and_prices_the_rest(v3):
    before = sorted((p.relative_to(v3), p.stat().st_mtime_ns) for p in v3.rglob("*"))
    report = progress(v3)
    assert sorted((p.relative_to(v3), p.stat().st_mtime_ns) for p in v3.rglob("*")) == before  # nothing written

    sweep = report["sweep"]["arms"]
    # sentence-kd: 2 settings + 1 extension so far, on both languages; lr was extended once, so 1 more may come
    assert sweep["sentence-kd"] == {
        "finished": 3,
        "running": 0,
        "expected": 6,
        "may_add": 2,
        "settings": 2,
        "extensions": 1,
    }
    assert sweep["optical"] == {
        "finished": 0,
        "running": 1,
        "expected": 8,
        "may_add": 8,  # lr and epsilon twice each, on 2 languages; ot_variant has no edge step
        "settings": 4,
        "extensions": 0,
    }
    # the cap check leaves out the run that kept step 0: 1 of 2 selected before the cap
    assert report["sweep"]["cap_check"] == {
        "share": 0.5,
        "runs": 2,
        "kept_step_0": 1,
        "target": 0.8,
        "passes": False,
    }
    # the grid: zero-shot and sentence-kd x 2 seeds, one sentence-kd cell finished
    grid = report["grid"]["arms"]
    assert grid["sentence-kd"] == {"planned": 2, "finished": 1, "left": 1, "cap": CAP}
    assert grid["zero-shot"]["left"] == 2 and report["grid"]["eval_seconds_per_cell"] == 36.0

    # rates: median logged step seconds per arm; recorded training time is twice the logged steps
    assert report["rates"]["sentence-kd"]["seconds"] == 1.0 and report["rates"]["optical"]["seconds"] == 3.0
    assert report["overhead"] == 2.0
    # sweep hours: sentence-kd 3 runs left x 80 steps (mean of its finished sweep runs) x 1 s x 2, optical 8 x the cap
    # (none finished) x 3 s x 2; the bound at the cap puts every run at 100 steps
    assert report["sweep"]["hours_left"] == pytest.approx((3 * 80 * 1.0 * 2 + 8 * CAP * 3.0 * 2) / 3600)
    assert report["sweep"]["hours_left_at_cap"] == pytest.approx((3 * CAP * 2 + 8 * CAP * 3.0 * 2) / 3600)
    # grid hours: 1 sentence-kd cell x (70 steps of the finished grid cell x 1 s x 2 + 36 s) + 2 zero-shot x 36 s
    assert report["grid"]["hours_left"] == pytest.approx((70 * 2 + 36 + 2 * 36) / 3600)

    text = render(report)
    assert "**3 / 14 runs finished** (+ at most 10 from further edge-rule extensions)" in text
    assert "**1 / 4 cells finished**" in text and "50% of 2 runs selected a step before the cap" in text
    assert "NOT met so far" in text and "| sweep | sentence-kd | 3 |" in text


def test_a_sweep_folder_alone_and_one_without_runs(v3, tmp_path):
    report = progress(v3 / "sweep")  # the sweep itself: no grid part, its rows are the sweep's
    assert "grid" not in report and {r["part"] for r in report["rows"]} == {"sweep"}
    assert report["sweep"]["arms"]["sentence-kd"]["finished"] == 3
    with pytest.raises(DataError, match="neither a sweep nor a comparison"):
        progress(tmp_path)
    with pytest.raises(DataError, match="no such results folder"):
        progress(tmp_path / "missing")


def test_hours_left_need_a_rate_for_every_arm_with_runs_left():
    rates = {"optical": {"seconds": 2.0}, "sentence-kd": {"seconds": None}}
    assert hours_left({"optical": 3, "sentence-kd": 0}, {"optical": 10, "sentence-kd": 10}, rates) == 60 / 3600
    assert hours_left({"optical": 3, "sentence-kd": 1}, {"optical": 10, "sentence-kd": 10}, rates) is None
    assert hours_left({"zero-shot": 2}, {"zero-shot": 0}, {}, extra_seconds=30.0) == 60 / 3600


def test_cap_check_counts_runs_past_step_0_only():
    rows = [{"selected_step": s, "selected_before_cap": s < 10} for s in (0, 0, 3, 9, 10, 10, 10)]
    assert cap_check(rows) == {"share": 0.4, "runs": 5, "kept_step_0": 2, "target": 0.8, "passes": False}
    assert cap_check(rows[:4])["passes"] is True and cap_check(rows[:2]) is None
