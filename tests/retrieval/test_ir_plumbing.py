"""IR plumbing with the field's libraries: runs re-scored by ir_measures from `optical-lab export`, and an
ir_datasets collection as the ``irds`` task (offline: ``ir_datasets.load`` returns a fixture dataset built
from ir_datasets' own TSV/TREC format classes)."""

from __future__ import annotations

import contextlib
import io
from typing import NamedTuple

import pandas as pd
import pytest

from optical_lab.data.errors import DataError
from optical_lab.experiments.evaluate import EvaluateConfig, evaluate_student, run_evaluation
from optical_lab.experiments.export_cli import export

ir_datasets = pytest.importorskip("ir_datasets", reason="pip install 'optical_lab[ir_datasets]'")
ir_measures = pytest.importorskip("ir_measures")

QUERIES = {
    "q1": "Where is the market?",
    "q2": "Good morning, my friend",
    "q3": "The price of bread went up",
    "q4": "The children play football after school",
}
DOCS = {
    "d1": ("Market", "Soko liko wapi?"),
    "d2": ("Greeting", "Habari ya asubuhi, rafiki yangu"),
    "d3": ("Bread", "Bei ya mkate imepanda"),
    "d4": ("Football", "Watoto wanacheza mpira baada ya shule"),
    "d5": ("Weather", "Mvua inanyesha leo"),
}
QRELS = [("q1", "d1", 1), ("q2", "d2", 1), ("q3", "d3", 1), ("q4", "d4", 1), ("q4", "d5", 0)]


class Doc(NamedTuple):  # a dataset whose text field is not called "text"
    doc_id: str
    title: str
    body: str


@pytest.fixture
def fixture_dataset(tmp_path, monkeypatch):
    """``ir_datasets.load("fixture/sw")`` -> a real ir_datasets Dataset over three small local files."""
    from ir_datasets.datasets.base import Dataset
    from ir_datasets.formats import TrecQrels, TsvDocs, TsvQueries
    from ir_datasets.util import LocalDownload

    (tmp_path / "docs.tsv").write_text("".join(f"{d}\t{t}\t{b}\n" for d, (t, b) in DOCS.items()))
    (tmp_path / "queries.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in QUERIES.items()))
    (tmp_path / "qrels").write_text("".join(f"{q} 0 {d} {r}\n" for q, d, r in QRELS))
    dataset = Dataset(
        TsvDocs(LocalDownload(tmp_path / "docs.tsv"), doc_cls=Doc, lang="sw"),
        TsvQueries(LocalDownload(tmp_path / "queries.tsv"), lang="en"),
        TrecQrels(LocalDownload(tmp_path / "qrels"), {0: "not relevant", 1: "relevant"}),
    )
    real = ir_datasets.load
    monkeypatch.setattr(ir_datasets, "load", lambda name: dataset if name == "fixture/sw" else real(name))
    return dataset


def test_irds_task_reads_the_named_text_field(fixture_dataset, teacher):
    results = evaluate_student(teacher, "irds", "swa", irds_id="fixture/sw", doc_field="title,body")
    result = results["irds"]
    assert set(result.run) == set(QUERIES) and result.qrels["q4"] == {"d4": 1, "d5": 0}
    assert len(result.per_query) == 4 and 0 < result.summary["MRR@10"] <= 1
    from optical_lab.tasks.registry import get_task

    collection = get_task("irds", irds_id="fixture/sw", doc_field="body").collection("swa")
    assert collection.documents["d3"] == "Bei ya mkate imepanda" and collection.queries["q1"] == QUERIES["q1"]


@pytest.mark.parametrize("field", [None, "text", "body,txt"])
def test_irds_task_refuses_a_missing_text_field(fixture_dataset, field):
    from optical_lab.tasks.registry import get_task

    with pytest.raises(DataError, match=r"document (text )?field.*\(title, body\)\n.*--doc-field body"):
        get_task("irds", irds_id="fixture/sw", doc_field=field).collection("swa")


def test_irds_from_the_command_line_refuses_before_loading(fixture_dataset, capsys):
    from optical_lab.cli import main

    assert main(["evaluate", "--tasks", "irds", "--irds-id", "fixture/sw", "--langs", "swa", "--out", "unused"]) == 1
    assert "--doc-field" in capsys.readouterr().err


def test_exported_runs_rescore_to_the_stored_metrics(fixture_dataset, teacher, tmp_path, monkeypatch):
    """`optical-lab export` writes plain TREC runs and qrels; ir_measures re-scores them to the toolkit's numbers."""
    from optical_lab.models.encoder import Encoder

    monkeypatch.setattr(Encoder, "load", classmethod(lambda cls, *a, **k: teacher))  # the session's MiniLM
    config = EvaluateConfig(langs=["swa"], tasks=["irds"], task_options={"irds_id": "fixture/sw", "doc_field": "body"})
    with contextlib.redirect_stdout(io.StringIO()):
        table = run_evaluation(config, tmp_path / "results", progress=False)["irds"]
    index = export(tmp_path / "results", tmp_path / "trec")
    assert list(index["run"]) == ["irds_swa_irds.run"] and index["qrels"][0] == "irds_swa_irds.qrels"
    qrels = list(ir_measures.read_trec_qrels(str(tmp_path / "trec" / index["qrels"][0])))
    run = list(ir_measures.read_trec_run(str(tmp_path / "trec" / index["run"][0])))
    measures = {"MRR@10": ir_measures.RR @ 10, "nDCG@10": ir_measures.nDCG @ 10, "MAP": ir_measures.AP}
    rescored = ir_measures.calc_aggregate(measures.values(), qrels, run)
    for name, measure in measures.items():
        assert rescored[measure] == pytest.approx(table.loc["swa", name], abs=1e-6)
    stored = pd.read_csv(tmp_path / "results" / index["per_query"][0])
    assert stored["MRR@10"].mean() == pytest.approx(rescored[ir_measures.RR @ 10], abs=1e-5)
    assert (tmp_path / "trec" / "irds_swa_irds.topics.tsv").read_text().startswith("q1\tWhere is the market?")


def test_training_curves_as_tensorboard_event_files(tmp_path):
    """`optical-lab export --tensorboard`: each cell's train_log.jsonl, read back from the event files."""
    pytest.importorskip("tensorboard", reason="pip install 'optical_lab[tensorboard]'")
    import json

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from optical_lab.experiments.export_cli import write_tensorboard

    cell = tmp_path / "runs" / "hau" / "optical" / "fold0-seed0"
    cell.mkdir(parents=True)
    log = [
        {"step": 1, "event": "train", "loss": 0.5, "lr": 1e-4, "seconds": 0.1},
        {"step": 2, "event": "train", "loss": 0.25, "lr": 5e-5, "seconds": 0.1},
        {"step": 2, "event": "dev", "dev_mrr": 0.7, "best": True},
    ]
    (cell / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    assert write_tensorboard(tmp_path / "runs", tmp_path / "tb") == 1
    events = EventAccumulator(str(tmp_path / "tb" / "hau" / "optical" / "fold0-seed0"))
    events.Reload()
    assert sorted(events.Tags()["scalars"]) == ["dev/best", "dev/dev_mrr", "train/loss", "train/lr"]
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [(1, 0.5), (2, 0.25)]
    assert events.Scalars("dev/dev_mrr")[0].value == pytest.approx(0.7)
