"""Issue #28: the toolkit used by a hostile neighbour and a careless user.

Nothing outside the results folder is touched (symbolic links inside ``--out`` are refused, result
files are replaced atomically, the lock file is never opened through a link); a diverged student is
never reported; every command that writes a results folder holds its lock. Each test failed on the
code before it.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_compare import _runner

from optical_lab.data import DataError
from optical_lab.data.trec import write_qrels, write_run, write_topics
from optical_lab.experiments.records import FolderLock, empty_folder
from optical_lab.experiments.workers import claim
from optical_lab.tasks.base import TaskResult, save_results

SECRET = "precious data outside the results folder\n"


@pytest.fixture
def outside(tmp_path):
    """A folder outside ``--out`` holding a file nobody may touch."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "precious.txt").write_text(SECRET)
    return folder


def _intact(outside: Path) -> None:
    assert sorted(p.name for p in outside.iterdir()) == ["precious.txt"]
    assert (outside / "precious.txt").read_text() == SECRET


# ------------------------------------------------------------------ 1. symbolic links inside --out
def test_a_linked_cell_folder_is_refused_and_its_target_kept(tmp_path, teacher, outside):
    """A cell folder that is a link to another folder, with --no-resume, used to have that folder's
    contents deleted by the clean-up loop (Runner.run_cell)."""
    out = tmp_path / "out"
    cell = out / "runs/hau/zero-shot/fold0-seed0"
    cell.parent.mkdir(parents=True)
    cell.symlink_to(outside, target_is_directory=True)
    runner = _runner(out, teacher, ["zero-shot"])
    runner.resume = False
    with pytest.raises(DataError, match="symbolic link inside the results folder"):
        runner.run()
    _intact(outside)
    with pytest.raises(DataError, match="symbolic link"):  # a join worker, which does not lock --out, too
        claim(cell, out, runner.accelerator)
    _intact(outside)


def test_emptying_a_folder_never_follows_a_link(tmp_path, outside):
    folder = tmp_path / "cell"
    folder.mkdir()
    (folder / "old.csv").write_text("x")
    (folder / "sub").mkdir()
    (folder / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(DataError, match="link"):
        empty_folder(folder)
    _intact(outside)
    (folder / "link").unlink()
    empty_folder(folder, keep={"old.csv"})
    assert [p.name for p in folder.iterdir()] == ["old.csv"]


def test_a_linked_lock_file_is_refused_and_its_target_kept(tmp_path, outside):
    """``FolderLock.acquire`` opened its lock with "a+" and truncated the link's target."""
    out = tmp_path / "out"
    out.mkdir()
    (out / FolderLock.NAME).symlink_to(outside / "precious.txt")
    with pytest.raises(DataError, match="symbolic link"):
        FolderLock(out).acquire()
    _intact(outside)
    lock = FolderLock(out)
    with pytest.raises(DataError, match="symbolic link"):  # the open itself never follows a link either
        lock._open()
    _intact(outside)


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_lock_path_that_is_no_regular_file_is_a_clear_error(tmp_path, kind):
    path = tmp_path / FolderLock.NAME
    path.mkdir() if kind == "folder" else os.mkfifo(path)
    with pytest.raises(DataError, match="lock file .* (is a folder|not a regular file).*\n  Fix: remove"):
        FolderLock(tmp_path).acquire()


def test_result_files_replace_a_planted_link_instead_of_writing_through_it(tmp_path, outside):
    """``save_results`` and ``data/trec.write_*`` wrote in place, through a link at the result's path."""
    folder = tmp_path / "cell"
    folder.mkdir()
    names = ["clir.per_query.csv", "clir.run.gz", "clir.topics.tsv", "clir.qrels.gz", "plain.run", "t.tsv", "q.qrels"]
    for name in names:
        (folder / name).symlink_to(outside / "precious.txt")
    result = TaskResult(
        "clir",
        {"q1": {"d1": 0.5}},
        pd.DataFrame({"MRR@10": [1.0]}, index=["q1"]),
        topics={"q1": "query"},
        qrels={"q1": {"d1": 1}},
    )
    save_results(folder, {"clir": result}, tag="t", inputs=True)
    write_run(result.run, folder / "plain.run")
    write_topics(result.topics, folder / "t.tsv")
    write_qrels(result.qrels, folder / "q.qrels")
    _intact(outside)
    assert all(not (folder / name).is_symlink() and (folder / name).stat().st_size > 0 for name in names)


# ------------------------------------------------------------------ 2. non-finite is an error
def test_nan_scores_rank_last_never_best():
    """``retrieval_mrr`` of NaN scores was 2.0 (every comparison false -> rank 0.5): the diverged student won."""
    from optical_lab.methods.trainer import retrieval_mrr

    n = 4
    nan = torch.full((n, 3), float("nan"))
    worst = 1.0 / n  # every query's relevant document ranked last
    assert retrieval_mrr(nan, nan) <= worst
    good = torch.nn.functional.normalize(torch.eye(n, 3) + 0.1, dim=-1)
    half = good.clone()
    half[0] = float("nan")  # one diverged document: its query ranks it last, the others are not helped by it
    assert retrieval_mrr(good, half) < retrieval_mrr(good, good)
    assert math.isfinite(retrieval_mrr(good, half))


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1.0, 0.0])
def test_epsilon_and_real_settings_must_be_finite(value):
    from optical_lab.methods import TrainConfig

    with pytest.raises(DataError, match="epsilon"):
        TrainConfig().replace(epsilon=value)
    with pytest.raises(DataError, match="lr"):
        TrainConfig().replace(lr=value)


def test_a_nan_loss_run_exits_non_zero_with_one_line(tmp_path, capsys):
    """``--epsilon 1e-300`` made the loss NaN and the run reported the NaN student as 'optical'."""
    from optical_lab.cli import main

    out = tmp_path / "out"
    code = main(
        [
            "compare",
            "--langs",
            "hau",
            "--methods",
            "optical",
            "--folds",
            "1",
            "--preset",
            "tiny",
            "--steps",
            "1",
            "--max-train-pairs",
            "8",
            "--no-progress",
            "--mixed-precision",
            "no",
            "--epsilon",
            "1e-300",
            "--out",
            str(out),
        ]
    )
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(err) == 1 and "training diverged: loss nan" in err[0], err
    assert not list(out.rglob("done.json")) and not (out / "summary.csv").exists()


def test_max_length_beyond_the_models_positions_is_refused(teacher):
    assert teacher.max_positions == 512
    with pytest.raises(DataError, match=r"--max-length 100000 is longer than minilm can embed \(512 tokens\)"):
        teacher.check_max_length(100_000)
    teacher.check_max_length(512)


# ------------------------------------------------------------------ 3. one lock and one done.json per results folder
def _trec_files(
    folder: Path,
    topics="q1\tthe weather today\nq2\ta football match\n",
    qrels="q1 0 d1 1\nq2 0 d2 1\n",
    docs="d1\thali ya hewa leo\nd2\tmechi ya mpira\nd3\tsoko la samaki\n",
    docs_name="docs.tsv",
) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("topics.tsv", topics), ("qrels.txt", qrels), (docs_name, docs)):
        (folder / name).write_text(text, encoding="utf-8")
    return [
        "--topics",
        str(folder / "topics.tsv"),
        "--qrels",
        str(folder / "qrels.txt"),
        "--docs",
        str(folder / docs_name),
    ]


def _cli(capsys, argv):
    """(exit status, stderr's error lines) of ``optical-lab argv``."""
    from optical_lab.cli import main

    code = main(argv)
    return code, [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]


def test_two_evaluate_runs_into_one_folder_the_second_is_refused(tmp_path, capsys):
    """Two ``evaluate`` runs into one folder mixed their results (no lock); a crashed one blocked its re-run
    (it checked config.json, not done.json)."""
    out = tmp_path / "out"
    argv = ["evaluate", "--tasks", "trec", "--langs", "swa", "--out", str(out), *_trec_files(tmp_path / "in")]
    with FolderLock(out):  # a first evaluation is running
        code, err = _cli(capsys, argv)
    assert code == 1 and "in use by another run" in err[0], err
    assert not (out / "config.json").exists()
    assert _cli(capsys, argv)[0] == 0 and (out / "done.json").exists()
    code, err = _cli(capsys, argv)  # the first has finished: its results are never overwritten
    assert code == 1 and "already holds evaluation results (a finished run: done.json)" in err[0], err
    (out / "done.json").unlink()  # a crash before the end: the same command redoes it ...
    assert _cli(capsys, argv)[0] == 0 and (out / "done.json").exists()
    (out / "done.json").unlink()  # ... another configuration is refused
    code, err = _cli(capsys, argv + ["--max-length", "128"])
    assert code == 1 and "unfinished run of another configuration" in err[0], err
    (out / "done.json").write_text('{"results_dir": ')  # a damaged marker names its file
    code, err = _cli(capsys, argv)
    assert code == 1 and "done.json: damaged completion marker" in err[0], err


def test_a_damaged_cell_marker_names_its_file(tmp_path, teacher):
    from optical_lab.experiments.records import read_done

    (tmp_path / "done.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="done.json: completion marker holds a list"):
        read_done(tmp_path)
    (tmp_path / "done.json").write_bytes(b"\xff\xfe")
    with pytest.raises(DataError, match="damaged completion marker"):
        read_done(tmp_path)


def test_sweep_refuses_negative_threads_before_loading_anything(tmp_path, capsys):
    code, err = _cli(capsys, ["sweep", "--threads", "-1", "--out", str(tmp_path / "sweep")])
    assert code == 1 and "--threads -1: must be an integer >= 0" in err[0], err
    assert not (tmp_path / "sweep").exists()


# ------------------------------------------------------------------ 4. every input checked at the door
@pytest.mark.parametrize(
    "name, text, expected",
    [
        (
            "docs.jsonl",
            '{"doc_id": 100, "text": "a"}\n{"doc_id": "100", "text": "b"}\n',
            "line 2: document id '100' appears twice",
        ),
        ("docs.tsv", "d1\tone\nd1\ttwo\n", "line 2: document id 'd1' appears twice (first on line 1"),
        ("docs.tsv", "\tno id\n", "line 1: empty document id"),
        ("docs.tsv", "d1\t   \n", "line 1: document 'd1' has an empty text"),
        ("docs.jsonl", '{"doc_id": "d1", "text": null}\n', "line 1: 'text' is null: expected a string"),
        ("docs.jsonl", '{"doc_id": "d1", "text": "x", "title": 3}\n', "line 1: 'title' is 3: expected a string"),
        ("docs.jsonl", '{"doc_id": null, "text": "x"}\n', "line 1: 'doc_id' is null"),
        ("docs.jsonl", '["d1", "x"]\n', "line 1: expected a JSON object, got a list"),
    ],
)
def test_bad_documents_name_file_and_line(tmp_path, name, text, expected):
    from optical_lab.data.trec import read_documents

    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=r"(?s)" + re.escape(f"{name}, {expected}") + ".*Fix: "):
        read_documents(tmp_path / name)


@pytest.mark.parametrize(
    "name, text, expected",
    [
        (
            "topics.tsv",
            "q1\tone\nq1\ttwo\n",
            "topics.tsv, line 2: topic id 'q1' appears twice",
        ),  # last won: MRR 0.288 -> 0.156
        ("topics.tsv", "q1\t \n", "topics.tsv, line 1: topic 'q1' has an empty text"),
        (
            "qrels.txt",
            "q1 0 d1 \u00b2\n",
            "qrels.txt, line 1: expected 'qid iteration docid relevance'",
        ),  # '²'.isdigit()
    ],
)
def test_bad_topics_and_qrels_name_file_and_line(tmp_path, name, text, expected):
    from optical_lab.data.trec import read_qrels, read_topics

    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(expected)):
        (read_topics if name.startswith("topics") else read_qrels)(tmp_path / name)


def test_qrels_naming_absent_documents_are_refused_or_dropped_and_counted(tmp_path):
    from optical_lab.data.trec import load_trec_collection

    args = _trec_files(tmp_path, qrels="q1 0 d1 1\nq2 0 d9 1\nq2 0 d2 1\n")
    files = [Path(a) for a in args[1::2]]
    with pytest.raises(
        DataError, match=r"qrels judge 1 documents not in .*document 'd9'.*\n  Fix: .*--missing-docs warn"
    ):
        load_trec_collection(*files, "swa")
    with pytest.warns(UserWarning, match="1 judgements name documents not in"):
        collection = load_trec_collection(*files, "swa", missing_docs="warn")
    assert collection.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}}


def test_a_trec_collection_is_one_language_and_a_missing_file_is_named(tmp_path, capsys):
    args = _trec_files(tmp_path / "in")
    code, err = _cli(capsys, ["evaluate", "--tasks", "trec", "--langs", "swa,hau", "--out", str(tmp_path / "o"), *args])
    assert code == 1 and "is in one language: it was evaluated as swa, now asked for hau" in err[0], err
    args[1] = str(tmp_path / "nowhere.tsv")
    code, err = _cli(capsys, ["evaluate", "--tasks", "trec", "--langs", "swa", "--out", str(tmp_path / "o"), *args])
    assert code == 1 and "--topics" in err[0] and "nowhere.tsv: no such file" in err[0], err
    assert not (tmp_path / "o").exists()


def test_two_spellings_of_one_language_are_one_language():
    from optical_lab.data.languages import parse_langs

    assert parse_langs("hau,ha,swa,sw") == ["hau", "swa"]


def test_a_bitext_of_repeated_pairs_is_refused_and_repeats_never_cross_the_split(tmp_path):
    from optical_lab.data.user_bitext import load_bitext_tsv
    from optical_lab.experiments.suite import split_user_bitext

    (tmp_path / "same.tsv").write_text("hello\tsannu\n" * 60, encoding="utf-8")
    with pytest.raises(DataError, match=r"same.tsv, line 2: 59 of 60 sentence pairs repeat an earlier pair"):
        load_bitext_tsv(tmp_path / "same.tsv", "hau")
    lines = [f"english {i}\tforeign {i}\n" for i in range(40)] + ["english 3\tforeign 3\n"] * 5
    (tmp_path / "some.tsv").write_text("".join(lines), encoding="utf-8")
    with pytest.warns(UserWarning, match="5 of 45 sentence pairs repeat an earlier pair"):
        bitext = load_bitext_tsv(tmp_path / "some.tsv", "hau")
    for seed in range(5):
        train, dev = split_user_bitext(bitext, seed, dev_fraction=0.2)
        assert len(train) + len(dev) == 45
        assert not set(zip(train.english, train.foreign)) & set(zip(dev.english, dev.foreign))


def test_an_unknown_method_config_key_is_named(tmp_path, capsys):
    from optical_lab.experiments.compare import read_method_config

    path = tmp_path / "chosen.json"
    path.write_text('{"optical": {"lrr": 0.001}}')
    with pytest.raises(
        DataError,
        match=r"chosen.json: --method-config, method 'optical': unknown training setting "
        r"'lrr' \(did you mean lr\?\)",
    ):
        read_method_config(str(path), ["optical"])
    path.write_text('{"optical": {"epsilon": "inf"}}')
    with pytest.raises(DataError, match="method 'optical'"):
        read_method_config(str(path), ["optical"])


# ------------------------------------------------------------------ 5. caches verified
from test_teacher_cache import TEXTS, _Counting, encoder  # noqa: E402,F401 - the tiny encoder fixture


def _cached(encoder, folder, monkeypatch):
    from optical_lab.methods.teacher import FrozenTeacher

    counter = _Counting(encoder, monkeypatch)
    frozen = FrozenTeacher(encoder, max_length=16, cache_dir=folder)
    frozen.precompute(TEXTS)
    return frozen, counter


def test_a_damaged_or_edited_teacher_cache_is_detected_and_recomputed(encoder, tmp_path, monkeypatch):
    """A truncated cache file failed every run, even with --no-resume; an edited one was used silently."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    first, _ = _cached(encoder, tmp_path, monkeypatch)
    (path,) = tmp_path.glob("*.safetensors")
    good = path.read_bytes()
    record = first.cache_record(TEXTS)
    assert record["file"] == path.name and len(record["sha256"]) == 64

    path.write_bytes(good[: len(good) // 2])  # truncated
    with pytest.warns(UserWarning, match="unreadable teacher cache"):
        second, counter = _cached(encoder, tmp_path, monkeypatch)
    assert counter.calls > 0 and second.cache_record(TEXTS) == record  # recomputed, rewritten with the same values

    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    tensors["embeddings"][0, 0] += 1.0  # a valid file with one altered value, its old checksum kept
    save_file(tensors, str(path), metadata=metadata)
    with pytest.warns(UserWarning, match="differ from its checksum"):
        third, counter = _cached(encoder, tmp_path, monkeypatch)
    assert counter.calls > 0
    for text in TEXTS:
        assert torch.equal(third._tokens[text][0], first._tokens[text][0])

    from optical_lab.methods.teacher import _read_rows

    renamed = path.rename(tmp_path / ("0" * 32 + ".safetensors"))  # a valid file under another key's name
    with pytest.raises(DataError, match="another key"):
        _read_rows(renamed, 3, renamed.stem)


def test_fetch_replaces_an_existing_file_that_differs_from_its_pin(tmp_path, monkeypatch, capsys):
    from test_fetch import MIRROR, _tamper, serve

    from optical_lab.data import fetch as fetch_module

    monkeypatch.setattr(fetch_module, "tqdm", lambda items, **_: items)
    opener = serve(lambda rel, good: good)
    dest = fetch_module.fetch(tmp_path, ("hau",), sib_langs=("hau_Latn",), opener=opener)
    edited = dest / "sib-200/data/annotated/hau_Latn/dev.tsv"
    edited.write_bytes(_tamper(edited.read_bytes()))  # same length: every line count still passes
    capsys.readouterr()
    fetch_module.fetch(tmp_path, ("hau",), sib_langs=("hau_Latn",), opener=opener)
    assert "dev.tsv: SHA-256 differs from its pin" in capsys.readouterr().out
    assert edited.read_bytes() == (MIRROR / "sib-200/data/annotated/hau_Latn/dev.tsv").read_bytes()


def test_a_torn_last_log_line_is_dropped_on_resume(tmp_path):
    from optical_lab.methods.trainer import complete_log_lines

    log = tmp_path / "train_log.jsonl"
    log.write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 0.9}\n{"step": 3, "lo')
    assert [json.loads(line)["step"] for line in complete_log_lines(log)] == [1, 2]
    log.write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "lo\n{"step": 3, "loss": 0.9}\n')
    with pytest.raises(DataError, match="train_log.jsonl, line 2: damaged training-log line"):
        complete_log_lines(log)


def test_sweep_and_figures_hold_the_folder_lock(tmp_path, capsys):
    """Every command that writes a results folder takes its lock: a second run into it refuses."""
    from optical_lab.experiments.records import FolderInUse
    from optical_lab.experiments.sweep import Sweep

    out = tmp_path / "sweep"
    with FolderLock(out):
        with pytest.raises(FolderInUse, match="in use by another run"):
            Sweep(out, lang="hau", preset_name="tiny", methods=["sentence-kd"], progress=False).run_all()
    figures = tmp_path / "figures"
    with FolderLock(figures):
        code, err = _cli(capsys, ["figures", "--results", str(tmp_path), "--out", str(figures), "--no-plans"])
    assert code == 1 and "in use by another run" in err[0], err
