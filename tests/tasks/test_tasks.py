"""The task registry and a user's TREC collection end to end (synthetic files, the session's teacher)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from optical_lab.data import DataError
from optical_lab.experiments.summary import REPORTED
from optical_lab.tasks import TASKS, get_task
from optical_lab.tasks.base import Task


def test_every_registered_task_follows_the_protocol():
    for name, cls in TASKS.items():
        task = cls()
        assert isinstance(task, Task) and task.name == name
        assert task.primary in next(iter(task.reported.values()))  # the headline is a reported metric
        assert set(cls.OPTIONS) <= set(task.options())  # every command-line option is a field
        for sub, metrics in task.reported.items():
            assert REPORTED[sub] == list(metrics)  # the summary tables read the registry
    with pytest.raises(DataError, match="unknown task"):
        get_task("nope")


def test_ntrex_task_reads_its_corpus_once():
    task = get_task("ntrex")
    first = task.folds("hau", 2, 0)
    assert task.corpus("hau") is task.corpus("hau")  # read once, then kept
    assert [f.index for f in first] == [0, 1] and not set(first[0].train.doc_ids) & first[0].eval_key
    with pytest.warns(FutureWarning, match="'ntrex-sentence' is deprecated: use 'ntrex-sentences'"):
        old = get_task("ntrex-sentence")  # the old name is a deprecated alias
    assert old.reported == {"sentence": ["acc@1"]} and old.name == "ntrex-sentences"
    assert get_task("ntrex-clir").reported == {"clir": ["MRR@10", "nDCG@10", "MAP"]}


def _collection(tmp_path, corpus, n=6):
    """A tiny known-item collection in TREC files: English first sentences -> Hausa documents."""
    docs = corpus.documents()[:n]
    first = {d: next(i for i, x in enumerate(corpus.doc_ids) if x == d) for d in docs}
    (tmp_path / "topics.tsv").write_text("".join(f"q{k}\t{corpus.english[first[d]]}\n" for k, d in enumerate(docs)))
    (tmp_path / "qrels.txt").write_text("".join(f"q{k} 0 {d} 1\n" for k, d in enumerate(docs)))
    (tmp_path / "docs.jsonl").write_text(
        "".join(json.dumps({"doc_id": d, "text": corpus.target[first[d] + 1]}) + "\n" for d in docs)
    )
    return {
        "topics": str(tmp_path / "topics.tsv"),
        "qrels": str(tmp_path / "qrels.txt"),
        "docs": str(tmp_path / "docs.jsonl"),
    }


def test_a_user_trec_collection_is_a_task(tmp_path, teacher):
    corpus = get_task("ntrex").corpus("hau")
    task = get_task("trec", **_collection(tmp_path, corpus))
    folds = task.folds("hau", 2, 0)
    assert len(folds) == 2 and len(folds[0].train) + len(folds[0].dev) == len(corpus.english)
    assert folds[0].dev.doc_ids != folds[1].dev.doc_ids  # folds differ in their train/dev split only
    result = task.evaluate("hau", folds[0], teacher, teacher)["trec"]
    assert len(result.per_query) == 6 and {"MRR@10", "nDCG@10", "MAP"} <= set(result.per_query.columns)
    assert 0 < result.summary["MRR@10"] <= 1
    assert [p.name for p in task.data_files("hau")][:3] == ["topics.tsv", "qrels.txt", "docs.jsonl"]
    with pytest.raises(DataError, match="--docs"):
        get_task("trec", topics="t", qrels="q").folds("hau", 1, 0)


def test_trec_collection_through_the_cli(tmp_path, teacher, monkeypatch, capsys):
    from optical_lab.cli import main
    from optical_lab.models.encoder import Encoder

    files = _collection(tmp_path, get_task("ntrex").corpus("hau"))
    monkeypatch.setattr(Encoder, "load", classmethod(lambda cls, *a, **k: teacher))
    folder = tmp_path / "out"
    assert (
        main(
            [
                "evaluate",
                "--tasks",
                "trec",
                "--topics",
                files["topics"],
                "--qrels",
                files["qrels"],
                "--docs",
                files["docs"],
                "--langs",
                "hau",
                "--out",
                str(folder),
            ]
        )
        == 0
    )
    for name in (
        "trec.csv",
        "trec.md",
        "summary.md",
        "trec/hau/trec.run",
        "trec/hau/trec.qrels",
        "trec/hau/trec.topics.tsv",
        "trec/hau/trec.per_query.csv",
    ):
        assert (folder / name).exists(), name
    assert pd.read_csv(folder / "trec.csv").loc[0, "MRR@10"] > 0
    env = json.loads((folder / "environment.json").read_text())
    assert env["data_files_sha256"][files["docs"]] and env["teacher_files"]["files"] > 0
    assert main(["evaluate", "--tasks", "ntrex", "--docs", files["docs"], "--langs", "hau"]) == 1  # not ntrex's
    assert "not an option of task 'ntrex'" in capsys.readouterr().err
    assert (
        main(
            [
                "evaluate",
                "--tasks",
                "trec",
                "--topics",
                files["topics"],
                "--qrels",
                files["qrels"],
                "--docs",
                files["docs"],
                "--langs",
                "hau",
                "--out",
                str(folder),
            ]
        )
        == 1
    )  # never overwrites results
    assert "already holds evaluation results" in capsys.readouterr().err
