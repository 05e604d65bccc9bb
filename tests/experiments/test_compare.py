"""The comparison runner on a small slice of NTREX: zero-shot identity, resume/skip, CLI, size curve."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pandas as pd
import pytest

from optical_lab.data import DataError
from optical_lab.experiments import runner as runner_module
from optical_lab.experiments.plan import ComparePlan, plan_from_saved, training_bitext
from optical_lab.experiments.runner import Runner
from optical_lab.io import open_stored, read_json, stored_exists
from optical_lab.methods import TrainConfig, preset
from optical_lab.methods.train_state import TrainingDiverged
from optical_lab.tasks.base import TaskFold
from optical_lab.tasks.ntrex import NtrexTask


class SmallTask(NtrexTask):
    """NTREX folds cut down to seconds: 40 training pairs, 10 dev pairs, 6 evaluation documents."""

    def folds(self, lang, k, seed):
        return [
            TaskFold(
                f.index, f.train.select(list(range(40))), f.dev.select(list(range(10))), set(sorted(f.eval_key)[:6])
            )
            for f in super().folds(lang, k, seed)
        ]


def _runner(tmp_path, teacher, methods, **train):
    config = preset("tiny", mixed_precision="no", **train)
    plan = ComparePlan(
        langs=["hau"], methods=methods, folds=1, seeds=1, train=config.replace(steps=max(config.steps, 1))
    )
    runner = Runner(plan, tmp_path, task=SmallTask(), progress=False)
    # steps=0 with a trained method is refused by ComparePlan.validate: set past it on purpose
    runner.plan.train = runner.plan.train.replace(steps=config.steps)
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
        pd.testing.assert_frame_equal(
            pd.read_csv(open_stored(zero / f"{task}.per_query.csv")),
            pd.read_csv(open_stored(student / f"{task}.per_query.csv")),
        )
    assert json.loads((student / "done.json").read_text())["best_step"] == 0


def test_finished_cells_are_skipped_and_configs_never_mixed(tmp_path, teacher):
    first = _runner(tmp_path, teacher, ["zero-shot", "sentence-kd"], steps=1)
    first.run()
    assert not any(info.get("skipped") for info in first.timings)
    second = _runner(tmp_path, teacher, ["zero-shot", "sentence-kd"], steps=1)
    second.run()
    assert all(info.get("skipped") for info in second.timings)
    config_before = (tmp_path / "config.json").read_bytes()
    changed = _runner(tmp_path, teacher, ["zero-shot", "sentence-kd"], steps=2)
    with pytest.raises(DataError, match="sentence-kd.*another configuration"):
        changed.run()
    # refused before anything is written: the folder still describes the cells it holds
    assert (tmp_path / "config.json").read_bytes() == config_before and not changed.timings
    assert not (tmp_path / ".optical-lab.lock").exists()
    changed.resume = False
    changed.run()
    assert read_json(tmp_path / "runs/hau/sentence-kd/fold0-seed0/train_summary.json")["steps"] == 2  # compacted


def test_a_cell_of_the_other_precision_is_refused_with_the_way_to_continue(tmp_path, teacher):
    # "auto" resolves by CPU: a run resumed on a CPU of the other kind meets cells of the other precision
    _runner(tmp_path, teacher, ["sentence-kd"], steps=1).run()  # precision "no"
    done = json.loads((tmp_path / "runs/hau/sentence-kd/fold0-seed0/done.json").read_text())
    assert done["precision"] == "no" and done["device"].startswith("cpu: ") and "flags" in done["device"]
    other = _runner(tmp_path, teacher, ["sentence-kd"], steps=1)
    other.plan.train = other.plan.train.replace(mixed_precision="bf16")
    with pytest.raises(
        DataError, match="only the precision differs: the cell was computed with no.*--mixed-precision no"
    ):
        other.run()
    changed = _runner(tmp_path, teacher, ["sentence-kd"], steps=2)  # a real change gets no precision hint
    with pytest.raises(DataError, match="another configuration") as error:
        changed.run()
    assert "precision" not in str(error.value)


def test_cells_another_process_holds_are_waited_for_and_computed_if_it_dies(tmp_path, teacher):
    import threading

    from optical_lab.experiments.records import FolderLock

    runner = _runner(tmp_path, teacher, ["zero-shot", "sentence-kd"], steps=1)
    runner.poll_seconds = 0.2
    cell = tmp_path / "runs/hau/sentence-kd/fold0-seed0"
    other = FolderLock(cell).acquire()  # another process is computing this cell ...
    threading.Timer(1.0, other.release).start()  # ... and dies without finishing it
    runner.run()
    assert (cell / "done.json").exists() and (tmp_path / "summary.md").exists()
    assert [info["method"] for info in runner.timings] == ["zero-shot", "sentence-kd"]  # the free cell first


def test_a_joined_worker_computes_the_free_cells_and_leaves_the_summary_to_the_owner(tmp_path, teacher):
    from optical_lab.experiments.records import FolderLock

    with pytest.raises(DataError, match="no comparison to join"):
        worker = _runner(tmp_path, teacher, ["zero-shot", "sentence-kd"], steps=1)
        worker.worker = True
        worker.run()
    owner = _runner(tmp_path, teacher, ["zero-shot", "sentence-kd"], steps=1)
    owner.accept("compare", owner.check_leakage())  # the owning run has set the folder up (config.json)
    held = FolderLock(tmp_path / "runs/hau/sentence-kd/fold0-seed0").acquire()  # the owner computes this one
    worker = _runner(tmp_path, teacher, ["zero-shot", "sentence-kd"], steps=1)
    worker.worker = True
    worker.plan.train = worker.plan.train.replace(progress=True)  # progress bars and threads may differ
    worker.plan.threads = 1
    assert worker.run() is None
    assert (tmp_path / "runs/hau/zero-shot/fold0-seed0/done.json").exists()
    assert (
        not (tmp_path / "runs/hau/sentence-kd/fold0-seed0/done.json").exists()
        and not (tmp_path / "summary.md").exists()
    )
    held.release()
    other = _runner(tmp_path, teacher, ["zero-shot", "sentence-kd"], steps=2)
    other.worker = True
    with pytest.raises(DataError, match="differs from the comparison.*train"):
        other.run()
    # waiting (--join-wait) for a plan that never comes still ends, with the same error
    other.join_wait, other.poll_seconds = 0.3, 0.1
    started = time.monotonic()
    with pytest.raises(DataError, match="differs from the comparison.*train"):
        other.run()
    assert time.monotonic() - started >= 0.3


def test_a_worker_started_with_its_owner_waits_for_the_folder_to_be_set_up(tmp_path, teacher):
    import threading

    owner = _runner(tmp_path, teacher, ["zero-shot"], steps=1)
    worker = _runner(tmp_path, teacher, ["zero-shot"], steps=1)
    worker.worker, worker.join_wait, worker.poll_seconds = True, 60.0, 0.1
    setup = threading.Timer(0.5, lambda: owner.accept("compare", owner.check_leakage()))
    setup.start()
    assert worker.run() is None  # joined once config.json appeared, then computed the free cell
    setup.join()
    assert (tmp_path / "runs/hau/zero-shot/fold0-seed0/done.json").exists()


def test_cli_compare_and_size_curve(tmp_path, monkeypatch, capsys):
    from optical_lab.cli import main

    monkeypatch.setattr(runner_module, "get_task", lambda name, **options: SmallTask())
    args = [
        "compare",
        "--langs",
        "hau",
        "--methods",
        "zero-shot,translate-train,optical",
        "--folds",
        "1",
        "--preset",
        "tiny",
        "--steps",
        "2",
        "--mixed-precision",
        "no",
        "--no-progress",
        "--out",
        str(tmp_path),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "verdict" in out and "optical" in out
    for name in ("summary.md", "summary.csv", "winners.csv", "significance.csv", "config.json"):
        assert (tmp_path / name).exists(), name
    cell = tmp_path / "runs/hau/optical/fold0-seed0"
    for name in (
        "clir.run.gz",
        "clir.per_query.csv",
        "sentence.per_query.csv",
        "config.json",
        "train_log.jsonl",
        "train_summary.json",
        "done.json",
    ):
        assert stored_exists(cell / name), name  # stored compactly as the cell finished (experiments/compact.py)
    saved = read_json(cell / "config.json")
    assert saved["train"]["steps"] == 2 and saved["plan"]["langs"] == ["hau"]
    summary_md = (tmp_path / "summary.md").read_text()
    assert "Per-language winner" in summary_md
    # a finished comparison re-summarised from its folder alone gives the same document (nothing retrained)
    assert Runner.from_folder(tmp_path).summarize(tmp_path / "runs").to_markdown() == summary_md

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
    small, large = bitext.subsample(10, seed=1), bitext.subsample(30, seed=1)
    assert set(small.english) < set(large.english) and len(small) == 10
    assert bitext.subsample(None, 1) is bitext and bitext.subsample(80, 1) is bitext


def test_bitext_sources():
    fold = NtrexTask().folds("hau", 2, 0)[1]
    plan = ComparePlan(langs=["hau"], methods=["optical"], bitext="mafand")
    train, dev, source = training_bitext(plan, "hau", fold)
    assert source == "mafand-mt" and len(train) == 3098 and len(dev) > 100
    somali = NtrexTask().folds("som", 2, 0)[1]
    with pytest.raises(DataError, match="MAFAND-MT has no en-som pair"):  # no pair: an error, never another bitext
        training_bitext(plan, "som", somali)
    plan.bitext = "ntrex"
    train, _, _ = training_bitext(plan, "hau", fold)
    assert not set(train.doc_ids) & fold.eval_key  # never a sentence of an evaluation document


def test_qald_task_runs_through_the_same_harness(tmp_path, teacher):
    from optical_lab.tasks import get_task

    class SmallQald(type(get_task("qald"))):
        def folds(self, lang, k, seed):
            return [
                TaskFold(f.index, f.train.select(list(range(24))), f.dev.select(list(range(8))), f.eval_key)
                for f in super().folds(lang, k, seed)
            ]

    plan = ComparePlan(
        langs=["ukr"],
        methods=["zero-shot", "optical"],
        folds=1,
        seeds=1,
        task="qald",
        train=preset("tiny", steps=1, mixed_precision="no"),
    )
    runner = Runner(plan, tmp_path, task=SmallQald(), progress=False)
    runner._base = teacher
    summary = runner.run()
    assert summary.primary == ("qald", "F1")
    assert set(summary.means.metric) == {"F1", "Hits@1", "MRR"}
    assert stored_exists(tmp_path / "runs/ukr/optical/fold0-seed0/qald.per_query.csv")


@pytest.mark.parametrize("results", ["results/compare-minilm", "results/compare-me5-small"])
def test_committed_results_are_still_recognised(results):
    # TrainConfig now nests the OT settings in a SinkhornSpec: the saved (flat) configs must still load
    # and every finished cell must keep its fingerprint, or a resumed run would refuse/recompute it
    from optical_lab.experiments.identity import cell_fingerprint

    folder = Path(__file__).resolve().parents[2] / results
    checked = before = 0
    for name, runs in (("config.json", "runs"), ("config_size_curve.json", "size_curve/runs")):
        if not (folder / name).exists():
            continue
        saved = json.loads((folder / name).read_text())
        assert "epsilon" in saved["train"] and "sinkhorn" not in saved["train"]  # the old flat layout
        runner = Runner.from_folder(folder) if name == "config.json" else None
        plan = runner.plan if runner else plan_from_saved(saved)
        assert "fold_scheme" not in saved and plan.fold_scheme == "per-fold-dev"  # what an old config ran
        assert plan.train.fingerprint() == saved["train_fingerprint"]
        assert (
            plan.train.sinkhorn.epsilon == saved["train"]["epsilon"]
            and plan.train.sinkhorn.n_iters == saved["train"]["n_iters"]
        )
        served = Runner(plan, folder, progress=False)
        for done in sorted((folder / runs).glob("*/*/*/done.json")):
            info = json.loads(done.read_text())
            assert cell_fingerprint(plan, info["method"], info.get("size", "default")) == info["fingerprint"], done
            # recorded before input hashing: served on the configuration alone (nothing loaded, nothing written)
            assert served.finished(done.parent, info["lang"], info["method"], info.get("size", "default")) == info
            checked += 1
        assert served._base is None and len(served._unhashed) == checked - before
        before = checked
    assert checked >= 84


def test_task_options_reach_the_task_and_the_fingerprint(tmp_path):
    from optical_lab.experiments.identity import cell_fingerprint
    from optical_lab.tasks.trec import TrecTask

    plan = ComparePlan(
        langs=["hau"],
        methods=["zero-shot"],
        task="trec",
        task_options={"topics": "t.tsv", "qrels": "q.txt", "docs": "d.tsv"},
    )
    runner = Runner(plan, tmp_path, progress=False)
    assert isinstance(runner.task, TrecTask) and runner.task.docs == "d.tsv"
    assert runner.task.options() == {
        "topics": "t.tsv",
        "qrels": "q.txt",
        "docs": "d.tsv",
        "dev_fraction": 0.1,
        "missing_docs": "error",
    }
    other = ComparePlan(
        langs=["hau"], methods=["zero-shot"], task="trec", task_options={**plan.task_options, "docs": "e.tsv"}
    )
    assert cell_fingerprint(plan, "zero-shot") != cell_fingerprint(other, "zero-shot")


def test_compare_help_lists_ot_settings_and_the_method_registry():
    from optical_lab.cli import build_parser
    from optical_lab.methods.registry import SPECS

    parser = build_parser()
    compare_parser = parser._subparsers._group_actions[0].choices["compare"]
    actions = {opt: a for a in compare_parser._actions for opt in a.option_strings}
    assert {"--epsilon", "--n-iters", "--ot-grad", "--topics", "--qrels", "--docs", "--qald-file"} <= set(actions)
    for spec in SPECS:  # the help is generated from the registry, not typed
        assert f"{spec.name} ({spec.help})" in actions["--methods"].help
    assert actions["--aug-method"].choices == ["translate-train", "code-switch"]
    args = parser.parse_args(["compare", "--epsilon", "0.1", "--n-iters", "7", "--ot-grad", "autodiff"])
    from optical_lab.experiments.compare import plan_from_args

    assert plan_from_args(args).train.sinkhorn.replace() == TrainConfig().sinkhorn.replace(
        epsilon=0.1, n_iters=7, grad="autodiff"
    )
    with pytest.raises(DataError, match="epsilon"):
        plan_from_args(parser.parse_args(["compare", "--epsilon", "0"]))


def test_provenance_names_commit_data_and_model(tmp_path):
    import hashlib
    import subprocess

    from optical_lab.experiments.records import provenance

    data = tmp_path / "file.txt"
    data.write_text("some data\n")
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\x00\x01")
    record = provenance([data, tmp_path / "missing.txt"], model)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
    ).stdout.strip()
    assert record["git"]["commit"] == head and isinstance(record["git"]["dirty"], bool)
    assert record["data_files_sha256"][str(data)] == hashlib.sha256(b"some data\n").hexdigest()
    assert record["data_files_sha256"][str(tmp_path / "missing.txt")] is None
    assert record["teacher_files"]["files"] == 1 and len(record["teacher_files"]["sha256"]) == 64
    (model / "weights.bin").write_bytes(b"\x00\x02")
    assert provenance([], model)["teacher_files"]["sha256"] != record["teacher_files"]["sha256"]


@pytest.mark.parametrize(
    "target, results", [("full", "results/compare-minilm"), ("full-me5", "results/compare-me5-small")]
)
def test_the_makefile_command_still_finds_the_committed_cells_finished(target, results):
    # `make full` re-run into the committed folder must skip every cell (same fingerprints), so the
    # fold scheme those results ran (per-fold-dev) is named on its command line
    import re
    import shlex

    from optical_lab.cli import build_parser
    from optical_lab.experiments.compare import plan_from_args
    from optical_lab.experiments.identity import cell_fingerprint

    root = Path(__file__).resolve().parents[2]
    recipe = re.search(
        rf"^{re.escape(target)}:.*\n\t\$\(BIN\)/optical-lab (compare .*)$",
        (root / "Makefile").read_text(),
        flags=re.MULTILINE,
    ).group(1)
    plan = plan_from_args(build_parser().parse_args(shlex.split(recipe)))
    plan.train = plan.train.replace(
        mixed_precision=json.loads((root / results / "config.json").read_text())["train"]["mixed_precision"]
    )
    cells = sorted((root / results / "runs").glob("*/*/*/done.json"))
    assert len(cells) >= 84
    for done in cells:
        info = json.loads(done.read_text())
        assert cell_fingerprint(plan, info["method"]) == info["fingerprint"], done


def test_a_diverged_cell_is_evaluated_with_its_best_dev_state_and_flagged(tmp_path, teacher, monkeypatch):
    """Protocol v3 deviation 2: a cell whose step 2 goes NaN stops there, keeps its best dev state (here the
    untrained student, step 0: its only dev evaluation), is evaluated like any cell and flagged in done.json;
    the grid goes on, and a restart reads the cell as finished instead of training it into divergence again."""
    from optical_lab.methods import trainer as trainer_module

    build = trainer_module.build_objective

    def nan_from_step_2(method, config, pairs):
        objective, calls = build(method, config, pairs), [0]
        forward = objective.forward

        def nan_loss(*args):
            calls[0] += 1
            loss = forward(*args)
            return loss if calls[0] < 2 else loss * float("nan")

        objective.forward = nan_loss
        return objective

    monkeypatch.setattr(trainer_module, "build_objective", nan_from_step_2)
    stopping = _runner(tmp_path / "stop", teacher, ["sentence-kd"])  # the default: the run stops, nothing kept
    with pytest.raises(TrainingDiverged, match="training diverged: loss nan"):
        stopping.run()
    assert not (tmp_path / "stop/runs/hau/sentence-kd/fold0-seed0/done.json").exists()
    first = _runner(tmp_path, teacher, ["zero-shot", "sentence-kd"])
    first.keep_diverged = True  # compare --keep-diverged (the v3 grids)
    first.run()
    cell = tmp_path / "runs/hau/sentence-kd/fold0-seed0"
    done = read_json(cell / "done.json")
    assert done["diverged"].startswith("training diverged: loss nan") and done["diverged_step"] == 2
    assert done["steps"] == 1 and done["best_step"] == 0 and done["metrics"]
    assert read_json(cell / "train_summary.json")["diverged_step"] == 2
    assert "diverged" not in read_json(tmp_path / "runs/hau/zero-shot/fold0-seed0/done.json")
    zero = tmp_path / "runs/hau/zero-shot/fold0-seed0"  # step 0 kept: the very zero-shot runs
    assert _run_lines(zero / "clir.run.gz") == _run_lines(cell / "clir.run.gz")
    monkeypatch.setattr(trainer_module, "build_objective", lambda *a: pytest.fail("retrained"))
    again = _runner(tmp_path, teacher, ["zero-shot", "sentence-kd"])
    again.run()
    assert all(info.get("skipped") for info in again.timings)
