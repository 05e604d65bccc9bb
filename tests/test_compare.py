"""The comparison runner on a small slice of NTREX: zero-shot identity, resume/skip, CLI, size curve."""
from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from optical_lab.data import DataError
from optical_lab.experiments import compare
from optical_lab.experiments.compare import ComparePlan, Runner, subsample
from optical_lab.experiments.tasks import NtrexTask, TaskFold
from optical_lab.methods import preset


class SmallTask(NtrexTask):
    """NTREX folds cut down to seconds: 40 training pairs, 10 dev pairs, 6 evaluation documents."""

    def folds(self, lang, k, seed):
        return [TaskFold(f.index, f.train.select(list(range(40))), f.dev.select(list(range(10))),
                         set(sorted(f.eval_key)[:6])) for f in super().folds(lang, k, seed)]


def _runner(tmp_path, teacher, methods, **train):
    config = preset("tiny", mixed_precision="no", **train)
    plan = ComparePlan(langs=["hau"], methods=methods, folds=1, seeds=1, train=config)
    runner = Runner(plan, tmp_path, task=SmallTask(), progress=False)
    runner._base = teacher  # the session's teacher (never modified: students are copies)
    return runner


def _run_lines(path):
    with gzip.open(path, "rt") as handle:
        return [line.rsplit(" ", 1)[0] for line in handle]  # without the run tag


def test_untouched_student_equals_zero_shot(tmp_path, teacher):
    # steps=0: the student is the teacher's copy, never updated -> the very same runs and metrics
    _runner(tmp_path, teacher, ["zero-shot", "optical"], steps=0).run()
    zero, student = tmp_path / "runs/hau/zero-shot/fold0-seed0", tmp_path / "runs/hau/optical/fold0-seed0"
    for task in ("clir", "sentence"):
        assert _run_lines(zero / f"{task}.run.gz") == _run_lines(student / f"{task}.run.gz")
        pd.testing.assert_frame_equal(pd.read_csv(zero / f"{task}.per_query.csv"),
                                      pd.read_csv(student / f"{task}.per_query.csv"))
    assert json.loads((student / "done.json").read_text())["best_step"] == 0


def test_finished_cells_are_skipped_and_configs_never_mixed(tmp_path, teacher):
    first = _runner(tmp_path, teacher, ["zero-shot", "sentence-kd"], steps=1)
    first.run()
    assert not any(info.get("skipped") for info in first.timings)
    second = _runner(tmp_path, teacher, ["zero-shot", "sentence-kd"], steps=1)
    second.run()
    assert all(info.get("skipped") for info in second.timings)
    changed = _runner(tmp_path, teacher, ["zero-shot", "sentence-kd"], steps=2)
    with pytest.raises(DataError, match="another configuration"):
        changed.run()
    assert changed.timings[0].get("skipped")  # zero-shot does not depend on training settings
    changed.resume = False
    changed.run()
    assert json.loads((tmp_path / "runs/hau/sentence-kd/fold0-seed0/train_summary.json").read_text())["steps"] == 2


def test_cli_compare_and_size_curve(tmp_path, monkeypatch, capsys):
    from optical_lab.cli import main

    monkeypatch.setattr(compare, "get_task", lambda name: SmallTask())
    args = ["compare", "--langs", "hau", "--methods", "zero-shot,translate-train,optical", "--folds", "1",
            "--preset", "tiny", "--steps", "2", "--mixed-precision", "no", "--no-progress", "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "verdict" in out and "optical" in out
    for name in ("summary.md", "summary.csv", "winners.csv", "significance.csv", "config.json"):
        assert (tmp_path / name).exists(), name
    cell = tmp_path / "runs/hau/optical/fold0-seed0"
    for name in ("clir.run.gz", "clir.per_query.csv", "sentence.per_query.csv", "config.json", "train_log.jsonl",
                 "train_summary.json", "done.json"):
        assert (cell / name).exists(), name
    saved = json.loads((cell / "config.json").read_text())
    assert saved["train"]["steps"] == 2 and saved["plan"]["langs"] == ["hau"]
    summary_md = (tmp_path / "summary.md").read_text()
    assert "Per-language winner" in summary_md
    # a finished comparison re-summarised from its folder alone gives the same document (nothing retrained)
    assert compare.Runner.from_folder(tmp_path).summarize(tmp_path / "runs").to_markdown() == summary_md

    assert main(args + ["--size-curve", "8,all"]) == 0
    curve = pd.read_csv(tmp_path / "size_curve/size_curve.csv")
    assert set(curve["method"]) == {"zero-shot", "optical", "translate-train"}
    assert set(curve["size"].astype(str)) == {"0", "8", "all"}
    assert {"mean", "ci_low", "ci_high", "train_pairs", "p_holm"} <= set(curve.columns)
    eight = curve[(curve["size"].astype(str) == "8")]
    assert (eight["train_pairs"] == 8).all()

    assert main(["compare", "--langs", "hau", "--methods", "optical,magic", "--out", str(tmp_path)]) == 1


def test_subsets_are_nested():
    from optical_lab.data import Bitext

    bitext = Bitext([f"e{i}" for i in range(50)], [f"f{i}" for i in range(50)], "hau")
    small, large = subsample(bitext, 10, seed=1), subsample(bitext, 30, seed=1)
    assert set(small.english) < set(large.english) and len(small) == 10
    assert subsample(bitext, None, 1) is bitext and subsample(bitext, 80, 1) is bitext


def test_bitext_sources():
    from optical_lab.experiments.compare import training_bitext

    fold = NtrexTask().folds("hau", 2, 0)[1]
    plan = ComparePlan(langs=["hau"], methods=["optical"], bitext="mafand")
    train, dev, source = training_bitext(plan, "hau", fold)
    assert source == "mafand-mt" and len(train) == 3098 and len(dev) > 100
    somali = NtrexTask().folds("som", 2, 0)[1]
    train, dev, source = training_bitext(plan, "som", somali)  # no MAFAND pair: the fold's own bitext
    assert train is somali.train and source == "ntrex-128"
    plan.bitext = "ntrex"
    train, _, _ = training_bitext(plan, "hau", fold)
    assert not set(train.doc_ids) & fold.eval_key  # never a sentence of an evaluation document


def test_qald_task_runs_through_the_same_harness(tmp_path, teacher):
    from optical_lab.experiments.tasks import get_task

    class SmallQald(type(get_task("qald"))):
        def folds(self, lang, k, seed):
            return [TaskFold(f.index, f.train.select(list(range(24))), f.dev.select(list(range(8))), f.eval_key)
                    for f in super().folds(lang, k, seed)]

    plan = ComparePlan(langs=["ukr"], methods=["zero-shot", "optical"], folds=1, seeds=1, task="qald",
                       train=preset("tiny", steps=1, mixed_precision="no"))
    runner = Runner(plan, tmp_path, task=SmallQald(), progress=False)
    runner._base = teacher
    summary = runner.run()
    assert summary.primary == ("qald", "F1")
    assert set(summary.means.metric) == {"F1", "Hits@1", "MRR"}
    assert (tmp_path / "runs/ukr/optical/fold0-seed0/qald.per_query.csv").exists()
