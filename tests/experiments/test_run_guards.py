"""Issue #14: no silently wrong result, clear errors, safe shared results folders.

Each test here failed on the code before it: bad arguments ran (or crashed with a traceback), a
changed data file was served from the cache, a refused re-run overwrote ``config.json``, and two
runs wrote into one folder at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_compare import SmallTask

from optical_lab.cli import main
from optical_lab.data import DataError
from optical_lab.experiments.identity import RESULTS_EPOCH
from optical_lab.experiments.plan import ComparePlan
from optical_lab.experiments.records import FolderLock
from optical_lab.experiments.runner import Runner
from optical_lab.io import write_json
from optical_lab.methods import TrainConfig, preset

COMPARE = [
    "compare",
    "--langs",
    "hau",
    "--methods",
    "zero-shot,optical",
    "--folds",
    "1",
    "--preset",
    "tiny",
    "--no-progress",
]


def _fails_cleanly(capsys, argv, *expected):
    """The CLI exits 1 with a short message holding every ``expected`` text and no traceback."""
    start = time.perf_counter()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error: "), err
    for text in expected:
        assert text in err, (text, err)
    return err, time.perf_counter() - start


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--steps", "-5"], ["steps = -5", "--steps"]),
        (["--steps", "0"], ["trains nothing", "--methods zero-shot"]),  # would report the teacher as 'optical'
        (["--folds", "0"], ["folds = 0", "--folds"]),
        (["--seeds", "0"], ["seeds = 0", "--seeds"]),
        (["--batch-size", "0"], ["batch_size = 0", "--batch-size"]),
        (["--max-train-pairs", "0"], ["max_train_pairs = 0", "--max-train-pairs"]),
        (["--lr", "-1"], ["lr = -1.0", "--lr"]),
        (["--threads", "-2"], ["threads = -2"]),
        (["--model", "minlm"], ["unknown model 'minlm'", "did you mean minilm?"]),
    ],
)
def test_bad_compare_arguments_fail_in_one_message_before_any_work(tmp_path, capsys, extra, expected):
    out = tmp_path / "out"
    _fails_cleanly(capsys, COMPARE + ["--out", str(out)] + extra, *expected)
    assert not out.exists()  # refused before anything was created, the model never loaded


def test_out_that_is_a_file_or_below_a_file(tmp_path, capsys):
    existing = tmp_path / "results.txt"
    existing.write_text("not a folder\n")
    _fails_cleanly(capsys, COMPARE + ["--out", str(existing)], "is an existing file", "Fix:")
    _fails_cleanly(capsys, COMPARE + ["--out", str(existing / "sub")], f"{existing} is a file")
    for command in (["evaluate", "--langs", "hau"], ["qald", "--langs", "uk"]):
        _fails_cleanly(capsys, command + ["--out", str(existing)], "is an existing file")
    assert existing.read_text() == "not a folder\n"


def test_evaluate_and_qald_validate_too(capsys):
    _fails_cleanly(capsys, ["evaluate", "--langs", "hau", "--model", "minlm"], "did you mean minilm?")
    _fails_cleanly(capsys, ["evaluate", "--langs", "hau", "--max-length", "0"], "max_length = 0", "--max-length")
    _fails_cleanly(capsys, ["qald", "--langs", "uk", "--model", "me5-smal"], "did you mean me5-small?")


def test_model_names_with_a_slash_still_go_to_the_loader():
    from optical_lab.models.registry import check_model_name

    check_model_name("some-org/some-model")  # maybe a hub id: not refused here
    check_model_name("minilm")
    with pytest.raises(DataError, match="unknown model"):
        check_model_name("bert-base-multilingual-cased-typo")


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(monkeypatch, capsys):
    from optical_lab.experiments import models_cli

    def broken(args):
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(models_cli, "main", broken)
    err, _ = _fails_cleanly(capsys, ["models", "list"], "RuntimeError: something broke", "--debug")
    assert err.count("\n") == 1
    with pytest.raises(RuntimeError):
        main(["--debug", "models", "list"])
    with pytest.raises(RuntimeError):
        main(["models", "list", "--debug"])


def test_config_objects_validate_however_they_are_built():
    for bad in (
        {"steps": -1},
        {"batch_size": 0},
        {"max_dev_pairs": 1},
        {"temperature": 0.0},
        {"code_switch_ratio": 1.5},
        {"aug_method": "nothing"},
        {"mixed_precision": "fp8"},
        {"lr": float("nan")},
    ):
        with pytest.raises(DataError):
            TrainConfig().replace(**bad)
        with pytest.raises(DataError):
            TrainConfig.from_dict(TrainConfig().to_dict() | bad)
    with pytest.raises(DataError, match="trains nothing"):
        ComparePlan(langs=["hau"], methods=["optical"], train=TrainConfig(steps=0))
    ComparePlan(langs=["hau"], methods=["zero-shot"], train=TrainConfig(steps=0))  # nothing trained: fine
    with pytest.raises(DataError, match="size-curve"):
        ComparePlan(langs=["hau"], methods=["optical"], size_curve=[0])


# ---------------------------------------------------------------- inputs are part of a cell's identity
@pytest.fixture
def data_copy(tmp_path, monkeypatch):
    """$OPTICAL_LAB_DATA = a folder of symlinks to the shared data, except the Hausa NTREX file: a
    real copy the test may change (the shared data itself is never touched)."""
    from optical_lab.data.ntrex import ntrex_file

    shared = ntrex_file("hau").parents[1]
    copy = tmp_path / "data"
    copy.mkdir()
    for entry in shared.iterdir():
        if entry.name != "ntrex-128":
            (copy / entry.name).symlink_to(entry)
    (copy / "ntrex-128").mkdir()
    for entry in (shared / "ntrex-128").iterdir():
        target = copy / "ntrex-128" / entry.name
        if entry.name == ntrex_file("hau").name:
            target.write_bytes(entry.read_bytes())
        else:
            target.symlink_to(entry)
    monkeypatch.setenv("OPTICAL_LAB_DATA", str(copy))
    return copy / "ntrex-128" / ntrex_file("hau").name


def _plan_runner(out, teacher, resume=True):
    plan = ComparePlan(
        langs=["hau"],
        methods=["zero-shot", "sentence-kd"],
        folds=1,
        seeds=1,
        train=preset("tiny", steps=1, mixed_precision="no"),
    )
    runner = Runner(plan, out, task=SmallTask(), resume=resume, progress=False)
    runner._base = teacher
    return runner


def test_a_changed_data_file_is_never_served_from_the_cache(tmp_path, teacher, data_copy, capsys):
    out = tmp_path / "out"
    first = _plan_runner(out, teacher)
    first.run()
    done = json.loads((out / "runs/hau/zero-shot/fold0-seed0/done.json").read_text())
    assert done["inputs"]["data"]["ntrex-128/" + data_copy.name] is not None
    assert done["inputs"]["epoch"] == RESULTS_EPOCH and len(done["inputs"]["model"]) == 64
    again = _plan_runner(out, teacher)
    again.run()
    assert all(info.get("skipped") for info in again.timings)  # same inputs: served

    config_before = (out / "config.json").read_bytes()
    lines = data_copy.read_text(encoding="utf-8").splitlines()
    # distinct lines, so the leak guard (which runs first) has no duplicate to refuse on
    data_copy.write_text("".join(f"xxxx {i}\n" for i in range(len(lines))), encoding="utf-8")
    capsys.readouterr()
    changed = _plan_runner(out, teacher)
    with pytest.raises(DataError, match=f"other inputs: ntrex-128/{data_copy.name} \\(content changed\\)"):
        changed.run()
    assert "cached" not in capsys.readouterr().out and not changed.timings
    assert (out / "config.json").read_bytes() == config_before  # nothing written by the refused run

    recomputed = _plan_runner(out, teacher, resume=False)
    recomputed.run()
    old = {info["method"]: info["metrics"] for info in again.timings}
    new = {info["method"]: info["metrics"] for info in recomputed.timings}
    assert not any(info.get("skipped") for info in recomputed.timings)
    assert new["zero-shot"]["clir"]["MRR@10"] < old["zero-shot"]["clir"]["MRR@10"]  # "xxxx" documents
    environment = json.loads((out / "environment_compare.json").read_text())
    assert Path(environment["data_dir"]) == data_copy.parents[1]  # the data folder is recorded (provenance)


# ---------------------------------------------------------------- one run per folder
_HOLDER = """
import sys, time
from optical_lab.experiments.records import FolderLock
lock = FolderLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(120)
"""


def test_a_second_run_into_a_locked_folder_refuses_and_a_dead_holder_frees_it(tmp_path, teacher, capsys):
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(out)],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = json.loads((out / FolderLock.NAME).read_text())
        assert lock["pid"] == holder.pid and lock["host"] and lock["started"]
        runner = _plan_runner(out, teacher)
        with pytest.raises(DataError, match=f"in use by another run \\(pid {holder.pid} on "):
            runner.run()
        assert sorted(p.name for p in out.iterdir()) == [FolderLock.NAME]  # the second run wrote nothing
        holder.kill()  # SIGKILL: no clean-up ran, the lock file stays behind ...
        holder.wait()
        assert (out / FolderLock.NAME).exists()
        with FolderLock(out):  # ... but it is free: a dead process holds no lock
            assert json.loads((out / FolderLock.NAME).read_text())["pid"] == os.getpid()
        assert not (out / FolderLock.NAME).exists()  # removed on a normal exit
    finally:
        holder.kill()
        holder.wait()


def test_two_locks_in_one_process_exclude_each_other(tmp_path):
    with FolderLock(tmp_path):
        with pytest.raises(DataError, match="in use by another run"):
            FolderLock(tmp_path).acquire()


def test_a_waiting_lock_gets_the_folder_once_the_holder_is_done(tmp_path):
    """``FolderLock(folder, wait=...)`` (the shared student cache) waits for the holder instead of refusing,
    and still refuses once its wait is over."""
    held = FolderLock(tmp_path).acquire()
    with pytest.raises(DataError, match="in use by another run"):
        FolderLock(tmp_path, wait=0.6).acquire()  # waited, then refused
    release = threading.Timer(0.8, held.release)
    release.start()
    tic = time.monotonic()
    with FolderLock(tmp_path, wait=30):
        assert time.monotonic() - tic >= 0.7  # it waited for the release
        assert json.loads((tmp_path / FolderLock.NAME).read_text())["pid"] == os.getpid()
    release.join()


def test_concurrent_writers_of_one_file_never_collide(tmp_path):
    # a fixed temporary name made the second writer rename the first one's temporary file away
    path, errors = tmp_path / "state.json", []

    def writer(tag):
        try:
            for i in range(150):
                write_json({"writer": tag, "i": i, "pad": "x" * 2000}, path)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(tag,)) for tag in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert json.loads(path.read_text())["i"] == 149
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_resumed_log_is_replaced_not_truncated_under_a_late_writer(tmp_path, teacher):
    # `_open_log` truncated the log in place and appended: a run still writing to it (killed, not yet
    # dead) appended its steps into the resumed run's log
    from optical_lab.data import Bitext
    from optical_lab.methods import build_objective
    from optical_lab.methods.trainer import LOG_NAME, Trainer

    config = preset("tiny", mixed_precision="no")
    pairs = Bitext(["a house", "a tree"], ["nyumba", "mti"], "swa")
    trainer = Trainer(
        teacher, teacher, build_objective("sentence-kd", config, pairs), pairs, None, config, out_dir=tmp_path
    )
    log = tmp_path / LOG_NAME
    log.write_text("".join(json.dumps({"step": s, "event": "train"}) + "\n" for s in range(4)))
    late = open(log, "a")
    trainer._open_log(keep_until=2)
    late.write(json.dumps({"step": 99, "event": "train"}) + "\n")
    late.close()
    trainer._log({"step": 3, "event": "train"})
    trainer._close_log()
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [0, 1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOG_NAME]


def test_the_teacher_hash_ignores_its_build_record_but_not_its_weights(tmp_path):
    """me5-small is rebuilt on every machine: its build record (build time, the source's local path) must
    not make committed cells "computed from other inputs"; a changed weight file must."""
    from optical_lab.experiments.records import folder_digest
    from optical_lab.models.me5 import BUILD_INFO

    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights")
    (model / BUILD_INFO).write_text('{"build_seconds": 4.4, "source": "/a/python3.11/e5-small-q4.bin"}')
    before = folder_digest(model)["sha256"]
    (model / BUILD_INFO).write_text('{"build_seconds": 17.0, "source": "/b/python3.12/e5-small-q4.bin"}')
    assert folder_digest(model)["sha256"] == before
    (model / "model.safetensors").write_bytes(b"other weights")
    assert folder_digest(model)["sha256"] != before


def test_the_runner_validates_its_own_final_plan_and_leaves_the_callers_unchanged(tmp_path):
    from types import SimpleNamespace

    plan = ComparePlan(langs=["hau"], methods=["zero-shot"], train=TrainConfig(mixed_precision="auto", progress=True))
    runner = Runner(plan, tmp_path, task=SimpleNamespace(), progress=False)
    assert plan.train.mixed_precision == "auto" and plan.train.progress  # the caller's plan, as it was
    assert runner.plan is not plan and runner.plan.train.mixed_precision in ("no", "bf16")
    assert not runner.plan.train.progress
    broken = ComparePlan(langs=["hau"], methods=["optical"])
    broken.train = broken.train.replace(steps=0)  # changed after its validation: the runner's plan is validated again
    with pytest.raises(DataError, match="trains nothing"):
        Runner(broken, tmp_path, task=SimpleNamespace(), progress=False)
