"""QaldTask (the Task protocol), a real zero-shot English run, and the `qald` command."""

from __future__ import annotations

import argparse
import json

import pandas as pd
import pytest

from optical_lab.data.errors import DataError
from optical_lab.models.encoder import Encoder
from optical_lab.tasks import get_task
from optical_lab.tasks.qald import QaldTask, chance_scores, get_dataset, qald_summary, question_texts


def test_get_task_and_folds():
    task = get_task("qald")
    assert isinstance(task, QaldTask) and task.name == "qald" and task.primary == "F1"
    folds = task.folds("uk", k=2, seed=0)
    assert [f.index for f in folds] == [0, 1]
    for fold in folds:
        assert len(fold.train) + len(fold.dev) == 1997  # all of NTREX, split by document
        assert set(fold.train.doc_ids).isdisjoint(fold.dev.doc_ids)
        assert len(set(fold.dev.doc_ids)) == 12 and 100 < len(fold.dev) < 400
        assert fold.train.lang == "ukr" and len(fold.eval_key) == 150
    assert folds[0].dev.doc_ids != folds[1].dev.doc_ids  # folds differ only in the dev split
    assert folds[0].eval_key == folds[1].eval_key
    again = task.folds("ukr", k=2, seed=0)  # deterministic, ISO 639-3 accepted
    assert again[1].dev.english == folds[1].dev.english
    assert len(task.folds("hy", k=1, seed=3)[0].eval_key) == 20
    english = task.folds("en", k=1, seed=0)[0]  # identity bitext, must not crash
    assert english.train.english == english.train.foreign
    with pytest.raises(DataError, match="no QALD question has a swa translation"):
        task.folds("swa", k=1, seed=0)


def test_question_texts_first_or_all():
    ds = get_dataset()
    first = question_texts(ds, "lt")
    every = question_texts(ds, "lt", "all")
    assert len(first) == 140 and len(every) == 186
    assert first["99"] == ("99", "Kokia Solt Leik Sičio laiko zona?") and every["99#2"][0] == "99"


def test_zero_shot_english_well_above_chance(teacher):
    task = QaldTask()
    fold = task.folds("en", k=1, seed=0)[0]
    result = task.evaluate("en", fold, teacher, teacher)["qald"]
    table = result.per_query
    assert len(table) == 150 and {"F1", "precision", "recall", "Hits@1", "MRR", "tp", "fp", "fn"} <= set(table.columns)
    summary = qald_summary(result)
    chance = chance_scores(get_dataset())
    assert chance["Hits@1"] == pytest.approx(1 / 150) and chance["macro_F1"] < 0.1
    assert summary["Hits@1"] > 0.8  # chance is 0.0067
    assert summary["macro_F1"] > 0.8 > chance["macro_F1"] + 0.5
    assert result.summary["F1"] == pytest.approx(summary["macro_F1"])  # harness mean == macro F1
    assert 0 <= summary["micro_F1"] <= 1 and summary["MRR"] >= summary["Hits@1"]
    # a question whose own query is ranked first gets F1 = 1
    assert (table.loc[table["Hits@1"] == 1, "F1"] == 1).all()


def test_cli_writes_results(tmp_path, teacher, monkeypatch, capsys):
    from optical_lab.experiments import qald_cli

    # a three-question QALD file keeps this fast; the model is the session's teacher
    ds = get_dataset()
    raw = json.loads(ds.path.read_text(encoding="utf-8"))
    small = tmp_path / "small.json"
    small.write_text(
        json.dumps({"questions": [q for q in raw["questions"] if q["id"] in ("99", "6", "81")]}), encoding="utf-8"
    )
    monkeypatch.setattr(Encoder, "load", classmethod(lambda cls, *a, **k: teacher))
    parser = argparse.ArgumentParser()
    qald_cli.add_arguments(parser)
    qald_cli.main(
        parser.parse_args(
            ["--langs", "lt,en", "--translations", "all", "--qald-file", str(small), "--out", str(tmp_path / "out")]
        )
    )
    folder = next((tmp_path / "out").iterdir())
    for name in (
        "config.json",
        "environment.json",
        "metrics.csv",
        "metrics.md",
        "candidates.tsv",
        "lit/qald.run",
        "lit/qald.per_query.csv",
        "lit/qald.qrels",
        "eng/qald.topics.tsv",
    ):
        assert (folder / name).exists(), name
    config = json.loads((folder / "config.json").read_text())
    assert config["model"] == "minilm" and config["n_questions"] == 3 and config["langs"] == ["lit", "eng"]
    rows = pd.read_csv(folder / "lit" / "qald.per_query.csv", dtype={"qid": str})["qid"].tolist()
    assert {"99#1", "99#2"} <= set(rows)  # every Lithuanian translation is its own query
    out = capsys.readouterr().out
    assert "macro_F1" in out and "qald_macro_F1" in out and "micro_F1" in out
