"""The evaluation suite (issue #12) on synthetic data: a language the repository never names, FLORES
sentence retrieval, the SIB topic probe, train once / evaluate everywhere, user bitext, the leak guard.

Everything runs on a synthetic data folder in ``tmp_path`` (NTREX-128 and SIB-200 layouts, the
language ``quc``) with a one-layer, 32-dimensional BERT (the MiniLM tokenizer, random weights), so
each test takes seconds; ``OPTICAL_LAB_DATA`` points the code at it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_bert import tiny_encoder

from optical_lab.data import DataError
from optical_lab.io import open_stored, stored_exists
from optical_lab.models import registry
from optical_lab.models.encoder import Encoder

LANG = "quc"  # K'iche': in no table, default or docstring of the package (checked below)
TOPICS = ["science/technology", "travel", "politics", "sports", "health", "entertainment", "geography"]
REPO = Path(__file__).resolve().parents[2]


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def english_sib(i: int) -> str:
    return f"The {TOPICS[i % 7]} report number {i} came out today"


def foreign_sib(i: int) -> str:
    return f"ri {TOPICS[i % 7].split('/')[0]} wuj {i} xel kamik"


def make_data(root: Path, lang: str = LANG) -> Path:
    """NTREX-128 (1,997 lines, 123 documents) and SIB-200 (701/99/204) layouts for English and ``lang``."""
    ntrex = root / "ntrex-128"
    _write(ntrex / "newstest2019-src.eng.txt", [f"News line {i} about item {i * 7 % 31}" for i in range(1997)])
    _write(ntrex / f"newstest2019-ref.{lang}.txt", [f"tzij {i} chrij {i * 7 % 31}" for i in range(1997)])
    _write(ntrex / "DOCUMENT_IDS.tsv", [f"doc{i * 123 // 1997}\tx" for i in range(1997)])
    annotated = root / "sib-200" / "data" / "annotated"
    bounds = {"train": range(1, 702), "dev": range(702, 801), "test": range(801, 1005)}
    for code, text in (("eng_Latn", english_sib), (f"{lang}_Latn", foreign_sib)):
        _write(annotated / code / "labels.txt", TOPICS)
        for split, ids in bounds.items():
            _write(
                annotated / code / f"{split}.tsv",
                ["index_id\tcategory\ttext"] + [f"{i}\t{TOPICS[i % 7]}\t{text(i)}" for i in ids],
            )
    return root


@pytest.fixture(scope="module")
def tiny():
    """A fast real Encoder: MiniLM's tokenizer, a random one-layer BERT with 32 dimensions."""
    return tiny_encoder().eval()


@pytest.fixture
def data(tmp_path, monkeypatch, tiny):
    """The synthetic data folder in use, and ``Encoder.load("tiny")`` giving the tiny encoder."""
    root = make_data(tmp_path / "data")
    monkeypatch.setenv("OPTICAL_LAB_DATA", str(root))
    real_load = Encoder.load.__func__

    def load(cls, name_or_path="minilm", device=None, max_length=None):
        return tiny if name_or_path == "tiny" else real_load(cls, name_or_path, device="cpu", max_length=max_length)

    monkeypatch.setattr(Encoder, "load", classmethod(load))
    monkeypatch.setattr(registry, "NAMES", (*registry.NAMES, "tiny"))  # a known name, not a typo
    return root


def test_the_language_appears_nowhere_in_the_code():
    sources = [p.read_text(encoding="utf-8") for p in (REPO / "optical_lab").rglob("*.py")]
    assert not any(LANG in text for text in sources)


def test_evaluate_a_language_only_the_data_folder_has(data, tmp_path, capsys):
    from optical_lab.cli import main

    out = tmp_path / "out"
    assert main(["evaluate", "--tasks", "suite", "--langs", LANG, "--model", "tiny", "--out", str(out)]) == 0
    for name in ("ntrex-clir", "ntrex-sentences", "flores-sentences", "sib-topics"):
        table = pd.read_csv(out / f"{name}.csv", index_col="lang")
        assert list(table.index) == [LANG], name
        assert (out / f"{name}.md").exists()
    flores = pd.read_csv(out / "flores-sentences.csv", index_col="lang").loc[LANG]
    assert {"acc@1", "MRR", "xsim", "flores-xx-en_acc@1", "flores-xx-en_xsim"} <= set(flores.index)
    per_query = pd.read_csv(out / f"flores-sentences/{LANG}/flores-en-xx.per_query.csv")
    assert len(per_query) == 1004 and set(per_query["xsim"]) <= {0.0, 1.0}
    topics = pd.read_csv(out / f"sib-topics/{LANG}/topics.per_query.csv")
    assert len(topics) == 204 and set(topics["acc"]) <= {0.0, 1.0}  # per-item correctness
    sib = pd.read_csv(out / "sib-topics.csv", index_col="lang").loc[LANG]
    assert sib["acc"] == pytest.approx(topics["acc"].mean()) and 0 <= sib["macro-F1"] <= 1 and "eng_acc" in sib
    config = json.loads((out / "config.json").read_text())
    assert config["langs"] == [LANG] and config["method"] == "zero-shot"
    assert "## sib-topics" in (out / "summary.md").read_text()
    # a language a task lacks is skipped with one line saying why; the others still run
    (data / "ntrex-128" / f"newstest2019-ref.{LANG}.txt").unlink()
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--tasks",
                "ntrex-clir,flores-sentences",
                "--langs",
                LANG,
                "--model",
                "tiny",
                "--out",
                str(tmp_path / "out2"),
            ]
        )
        == 0
    )
    assert f"skip ntrex-clir {LANG}: no " in capsys.readouterr().out
    assert pd.read_csv(tmp_path / "out2/skipped.csv").loc[0, "task"] == "ntrex-clir"
    assert not (tmp_path / "out2/ntrex-clir.csv").exists() and (tmp_path / "out2/flores-sentences.csv").exists()


def test_topic_probe_is_fitted_on_the_teacher_and_applied_to_the_student(data):
    from optical_lab.tasks.sib_topics import SibTopicsTask, fit_topic_classifier, score_topics

    # the probe on a tiny example: two separable topics, one item predicted wrong on purpose
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    classifier = fit_topic_classifier(x, ["a", "a", "b", "b"])
    result = score_topics(
        classifier, np.array([[1.0, 0.0], [0.0, 1.0], [0.95, 0.05]]), ["1", "2", "3"], ["a", "b", "b"]
    )
    assert list(result.per_query["acc"]) == [1.0, 1.0, 0.0]
    assert result.summary["acc"] == pytest.approx(2 / 3)
    assert result.summary["macro-F1"] == pytest.approx((2 / 3 + 2 / 3) / 2)  # a: P 1/2 R 1; b: P 1 R 1/2
    assert set(result.run["3"]) == {"a", "b"} and result.qrels["3"] == {"b": 1}

    class Table:
        """An encoder by lookup: the topic's one-hot vector, or noise for a 'drifted' student."""

        def __init__(self, drift: bool) -> None:
            self.drift = drift

        def encode(self, texts, role=None, batch_size=64, progress=False):
            out = torch.zeros(len(texts), 8)
            for row, text in enumerate(texts):
                topic = next(k for k, t in enumerate(TOPICS) if t.split("/")[0] in text)
                out[row, (topic + 1) % 7 if self.drift else topic] = 1.0
            return out

    task, teacher = SibTopicsTask(), Table(drift=False)
    fold = task.folds(LANG, 2, 0)[0]
    assert len(task.folds(LANG, 2, 0)) == 1 and len(fold.train) == 701 and len(fold.dev) == 99  # FLORES train/dev
    kept = task.evaluate(LANG, fold, teacher, Table(drift=False))["topics"].summary
    moved = task.evaluate(LANG, fold, teacher, Table(drift=True))["topics"].summary
    assert kept["acc"] == 1.0 and kept["eng_acc"] == 1.0  # the student stayed in the teacher's space
    assert moved["acc"] == 0.0 and moved["eng_acc"] == 1.0  # it drifted: the teacher's classifier fails on it
    assert task.eval_texts(LANG, fold)[f"sib test {LANG}"][0] == foreign_sib(801)


def test_flores_sentences_folds_and_xsim(data):
    from optical_lab.tasks.flores_sentences import FloresSentencesTask, xsim_errors
    from optical_lab.tasks.registry import get_task

    assert xsim_errors({"1": {"1": 0.9, "2": 0.5}, "2": {"1": 0.7, "2": 0.7}, "3": {"1": 0.8}}) == {
        "1": 0.0,
        "2": 1.0,
        "3": 1.0,
    }
    everything = FloresSentencesTask()
    folds = everything.folds(LANG, 2, 0)  # all 1,004 evaluated: students train on NTREX, never on FLORES
    assert len(folds) == 2 and folds[0].train.source == "ntrex-128"
    assert sum(len(v) for v in everything.eval_texts(LANG, folds[0]).values()) == 2 * 1004
    test_only = get_task("flores-sentences", flores_split="test")
    (fold,) = test_only.folds(LANG, 2, 0)
    evaluated = set(test_only.eval_texts(LANG, fold)[f"flores {LANG}"])
    assert len(evaluated) == 204 and not evaluated & set(fold.train.foreign) and not evaluated & set(fold.dev.foreign)
    assert fold.train.english[0] == english_sib(1) and fold.train.foreign[0] == foreign_sib(1)  # paired by index_id
    with pytest.raises(DataError, match="flores-split"):
        FloresSentencesTask(flores_split="dev")


def _compare(tmp_path, out, *extra):
    return [
        "compare",
        "--langs",
        LANG,
        "--methods",
        "optical",
        "--folds",
        "1",
        "--preset",
        "tiny",
        "--steps",
        "1",
        "--mixed-precision",
        "no",
        "--no-progress",
        "--model",
        "tiny",
        "--task",
        "ntrex-sentences",
        "--max-train-pairs",
        "all",
        "--out",
        str(out),
        *extra,
    ]


def test_leak_guard_refuses_a_planted_duplicate_and_writes_nothing(data, tmp_path, capsys):
    from optical_lab.cli import main

    pairs = [f"Clean English line {i}\tclean foreign line {i}" for i in range(30)]
    planted = pairs + [f"{english_sib(i)}\t{foreign_sib(i)}" for i in (801, 802)]  # two SIB test items
    _write(tmp_path / "planted.tsv", planted)
    out = tmp_path / "refused"
    assert main(_compare(tmp_path, out, "--bitext", str(tmp_path / "planted.tsv"), "--eval-tasks", "sib-topics")) == 1
    err = capsys.readouterr().err
    assert "leak guard" in err and "4 evaluation texts" in err and "--allow-overlap 4" in err
    assert not out.exists()  # refused before anything was written
    # the same bitext without the sib-topics evaluation set does not leak into NTREX sentences
    clean = tmp_path / "clean"
    assert main(_compare(tmp_path, clean, "--bitext", str(tmp_path / "planted.tsv"))) == 0
    leakage = json.loads((clean / "leakage.json").read_text())
    assert leakage["langs"][LANG][0]["leaked"] == 0 and leakage["allow_overlap"] == 2
    # knowingly accepted: the run goes on and the counts are on record
    accepted = tmp_path / "accepted"
    assert (
        main(
            _compare(
                tmp_path,
                accepted,
                "--bitext",
                str(tmp_path / "planted.tsv"),
                "--eval-tasks",
                "sib-topics",
                "--allow-overlap",
                "4",
            )
        )
        == 0
    )
    record = json.loads((accepted / "leakage.json").read_text())["langs"][LANG][0]
    assert record["leaked"] == 4
    assert {s["name"]: s["exact"] for s in record["train_and_dev_vs_this_fold"]["sets"]}[
        f"sib-topics: sib test {LANG}"
    ] == 2


def test_user_bitext_trains_once_and_every_task_scores_the_student(data, tmp_path):
    from optical_lab.cli import main

    _write(tmp_path / "en.txt", [f"Clean English line {i}" for i in range(40)])
    _write(tmp_path / "xx.txt", [f"clean foreign line {i}" for i in range(40)])
    out = tmp_path / "out"
    assert (
        main(
            _compare(
                tmp_path,
                out,
                "--bitext-en",
                str(tmp_path / "en.txt"),
                "--bitext-xx",
                str(tmp_path / "xx.txt"),
                "--eval-tasks",
                "suite",
                "--save-student",
            )
        )
        == 0
    )
    cell = out / "runs" / LANG / "optical" / "fold0-seed0"
    for name in ("sentence", "clir", "flores-en-xx", "flores-xx-en", "topics"):
        assert stored_exists(cell / f"{name}.per_query.csv"), name
    done = json.loads((cell / "done.json").read_text())
    assert done["bitext"] == "user:en.txt+xx.txt" and done["train_pairs"] == 36  # 4 of 40 lines are dev
    plan = json.loads((out / "config.json").read_text())
    assert plan["bitext"] == "user" and plan["eval_tasks"] == ["ntrex-clir", "flores-sentences", "sib-topics"]
    assert plan["fold_scheme"] == "held-out-dev"
    summary = (out / "summary.md").read_text()
    assert "acc@1 (flores-en-xx)" in summary and "acc (topics)" in summary  # the statistics cover every sub-task
    # the saved student is a reusable encoder: `evaluate --student` scores it (its teacher recorded with it)
    student = cell / "student"
    assert (student / "model.safetensors").exists() and json.loads((student / "optical_lab_encoder.json").read_text())[
        "teacher"
    ] == "tiny"
    from optical_lab.data import load_ntrex
    from optical_lab.tasks import get_task
    from optical_lab.tasks.ntrex_sentence import evaluate_sentences

    loaded = Encoder.load(str(student))
    assert loaded.settings() | {"source": ""} == Encoder.load("tiny").settings() | {"name": "tiny", "source": ""}
    saved = pd.read_csv(open_stored(cell / "sentence.per_query.csv"), dtype={"qid": str}).set_index("qid")
    task = get_task("ntrex-sentences")
    task.fold_scheme = "held-out-dev"
    fold_docs = task.folds(LANG, 1, 0)[0].eval_key  # the cell's evaluation documents
    again_in_cell = evaluate_sentences(load_ntrex(LANG), Encoder.load("tiny"), loaded, eval_docs=fold_docs).per_query
    pd.testing.assert_frame_equal(
        again_in_cell, saved, check_exact=False, check_dtype=False
    )  # the saved student is the trained one
    rescored = evaluate_sentences(load_ntrex(LANG), Encoder.load("tiny"), loaded, eval_docs=None).per_query
    assert len(rescored) == 1997 and len(saved) < 1997
    evaluated = tmp_path / "student-eval"
    assert (
        main(
            [
                "evaluate",
                "--tasks",
                "ntrex-sentences",
                "--langs",
                LANG,
                "--student",
                str(student),
                "--max-length",
                "64",
                "--out",
                str(evaluated),
            ]
        )
        == 0
    )  # the tiny model has 64 positions
    assert json.loads((evaluated / "config.json").read_text())["model"] == "tiny"  # the teacher the student names
    again = pd.read_csv(evaluated / f"ntrex-sentences/{LANG}/sentence.per_query.csv", dtype={"qid": str}).set_index(
        "qid"
    )
    pd.testing.assert_frame_equal(again, rescored, check_exact=False, check_dtype=False)


def test_trec_collection_through_compare(data, tmp_path):
    from optical_lab.cli import main

    _write(tmp_path / "topics.tsv", ["q1\tWhat about item 0?", "q2\tWhat about item 16?"])
    _write(tmp_path / "qrels.txt", ["q1 0 d1 1", "q2 0 d2 1"])
    _write(tmp_path / "docs.tsv", ["d1\ttzij chrij 0 kamik", "d2\ttzij chrij 16 kamik", "d3\tsomething else"])
    out = tmp_path / "out"
    args = _compare(
        tmp_path,
        out,
        "--topics",
        str(tmp_path / "topics.tsv"),
        "--qrels",
        str(tmp_path / "qrels.txt"),
        "--docs",
        str(tmp_path / "docs.tsv"),
    )
    args[args.index("ntrex-sentences")] = "trec"
    assert main(args) == 0
    assert len(pd.read_csv(open_stored(out / "runs" / LANG / "optical" / "fold0-seed0" / "trec.per_query.csv"))) == 2


@pytest.mark.parametrize(
    "files, message",
    [
        ({"planted.tsv": ["one\ttwo\tthree"]}, "2 tabs, expected exactly 1"),
        ({"en.txt": ["a", "b", "c"], "xx.txt": ["a", "b"]}, "bitext is ragged: 3 lines here but 2"),
        ({"en.txt": ["a", "b"]}, "--bitext-xx is missing"),
        ({}, "no such bitext file"),
    ],
)
def test_bad_bitext_is_refused_and_nothing_written(data, tmp_path, capsys, files, message):
    from optical_lab.cli import main

    for name, lines in files.items():
        _write(tmp_path / name, lines)
    extra = (
        ["--bitext", str(tmp_path / "planted.tsv")]
        if "xx.txt" not in files and "en.txt" not in files
        else ["--bitext-en", str(tmp_path / "en.txt")]
        + (["--bitext-xx", str(tmp_path / "xx.txt")] if "xx.txt" in files else [])
    )
    out = tmp_path / "out"
    assert main(_compare(tmp_path, out, *extra)) == 1
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_bad_sib_file_is_refused_before_evaluate_writes(data, tmp_path, capsys):
    from optical_lab.cli import main

    test_file = data / "sib-200/data/annotated" / f"{LANG}_Latn" / "test.tsv"
    lines = test_file.read_text().splitlines()
    test_file.write_text("\n".join(["category\ttext"] + lines[1:]) + "\n")  # header without index_id
    out = tmp_path / "out"
    assert (
        main(["evaluate", "--tasks", "ntrex-clir,sib-topics", "--langs", LANG, "--model", "tiny", "--out", str(out)])
        == 1
    )
    err = capsys.readouterr().err
    assert "test.tsv, line 1" in err and "no index_id column" in err
    assert not out.exists()
    assert main(["evaluate", "--tasks", "nope", "--langs", LANG, "--out", str(out)]) == 1
    assert "unknown task 'nope'" in capsys.readouterr().err and not out.exists()
    assert main(["evaluate", "--langs", LANG, "--student", str(tmp_path), "--out", str(out)]) == 1
    assert "not a saved encoder folder" in capsys.readouterr().err and not out.exists()


def test_guard_records_a_dev_set_that_other_folds_evaluate(data, tmp_path):
    from optical_lab.experiments.plan import ComparePlan
    from optical_lab.experiments.runner import Runner

    for scheme, reads_other_folds in (("per-fold-dev", True), ("held-out-dev", False)):
        plan = ComparePlan(
            langs=[LANG], methods=["optical"], folds=2, task="ntrex-sentences", model="tiny", fold_scheme=scheme
        )
        record = Runner(plan, tmp_path / scheme, progress=False).check_leakage()
        for fold in record["langs"][LANG]:
            assert fold["leaked"] == 0 and (fold["dev_leaked_to_other_folds"] > 0) == reads_other_folds
        assert not (tmp_path / scheme).exists()  # measuring writes nothing


def test_wall_clock_reads_both_time_formats():
    from optical_lab.experiments.evaluate import wall_clock

    assert (
        wall_clock("58:20.59") == "58 min 21 s" and wall_clock("1:02:03") == "1 h 02 min 03 s" and wall_clock("") == "?"
    )
