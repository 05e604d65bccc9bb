"""The recipes of docs/architecture.md, followed: a toy method and a toy downloadable task, added the
documented way (here the registries are monkeypatched instead of edited), work end to end.

* **method** (recipe "add a method"): an :class:`~optical_lab.methods.base.Objective` and one
  :class:`~optical_lab.methods.registry.MethodSpec` — it trains a few steps in a tiny comparison, and
  the committed protocol-v2 report renders byte-identically with it registered (v2's arms are frozen);
* **downloadable task** (recipe "add a downloadable task"): one :class:`~optical_lab.data.sources.Source`
  (files, pins, language file pattern) and one task module with its registry line — ``data fetch``
  plans and verifies its files, the data folder's languages include its language, and it evaluates.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest
from tiny_bert import tiny_encoder

from optical_lab.data import DataError, load_ntrex, sources
from optical_lab.data.fetch import download, planned_downloads
from optical_lab.data.languages import dataset_code, known_languages
from optical_lab.data.paths import data_dir
from optical_lab.io import open_stored, read_json, read_jsonl
from optical_lab.methods import preset, registry
from optical_lab.methods.base import Objective
from optical_lab.methods.registry import MethodSpec, derived_lists
from optical_lab.tasks import registry as task_registry
from optical_lab.tasks.base import TaskBase, TaskFold, TaskResult, bitext_folds
from optical_lab.tasks.flores_sentences import evaluate_direction

ROOT = Path(__file__).resolve().parents[1]
MIRROR = ROOT.parent / "shared" / "data"


# ----------------------------------------------------------------- the toy method (recipe: add a method)
class ToyLoss(Objective):
    """1 − cosine between the student's foreign sentence and the teacher's English one (methods/toy.py)."""

    def forward(self, student, teacher, english, foreign):
        loss = 1 - (student(list(foreign)).float() * teacher.pooled(english)).sum(-1).mean()
        self.log(toy_cos=1 - loss)
        return loss


TOY_METHOD = MethodSpec(
    "toy-aug", lambda config, bitext: ToyLoss(), "toy", "cosine to the teacher", "#123456", augmentation=True
)


@pytest.fixture
def toy_method(monkeypatch):
    """The registry as if the toy line were appended to SPECS in the source: SPECS and every list derived from
    it re-derived, in the registry and in every module that imported one of those lists by name."""
    specs = (*registry.SPECS, TOY_METHOD)
    before = {name: getattr(registry, name) for name in derived_lists(specs)}
    after = derived_lists(specs)
    monkeypatch.setattr(registry, "SPECS", specs)
    monkeypatch.setitem(registry.BY_NAME, TOY_METHOD.name, TOY_METHOD)  # a dict: extended in place
    for module in [m for name, m in sys.modules.items() if name.startswith("optical_lab") and m is not None]:
        for attribute, value in list(vars(module).items()):
            for name, old in before.items():
                if value is old and name != "BY_NAME":
                    monkeypatch.setattr(module, attribute, after[name])
    return TOY_METHOD


# ------------------------------------------------- the toy downloadable dataset (recipe: add a task)
TOY_LINES = [
    f"toy-{i}\tThe toy sentence number {i} talks about item {i}.\tJimla ta wasa lamba {i} akan abu {i}."
    for i in range(12)
]
TOY_BYTES = ("\n".join(TOY_LINES) + "\n").encode("utf-8")
TOY_URL = "https://example.org/toy-parallel/v1/{file}"
TOY_SOURCE = sources.Source(
    "toy-parallel",
    (sources.SourceFile(TOY_URL.format(file="hau.tsv"), "hau.tsv", hashlib.sha256(TOY_BYTES).hexdigest()),),
    r"(?P<code>[a-z]{3})\.tsv",
)


def load_toy(lang: str) -> list[tuple[str, str, str]]:
    """(id, English, foreign) rows of ``lang``'s file (a real loader checks its file with DataError)."""
    path = TOY_SOURCE.language_files(data_dir(TOY_SOURCE.folder))[dataset_code(lang, TOY_SOURCE.folder)]
    return [tuple(line.split("\t")) for line in path.read_text(encoding="utf-8").splitlines()]


@dataclass
class ToyTask(TaskBase):
    """English sentence -> its translation among the toy file's sentences (tasks/toy.py)."""

    dev_fraction: float = 0.1
    name: ClassVar[str] = "toy-sentences"
    primary: ClassVar[str] = "acc@1"
    reported: ClassVar[dict[str, list[str]]] = {"toy-en-xx": ["acc@1", "MRR"]}

    def rows(self, lang: str) -> list[tuple[str, str, str]]:
        return self.cached("toy", lang, load_toy)

    def folds(self, lang: str, k: int, seed: int) -> list[TaskFold]:
        self.rows(lang)  # a bad file fails before any training
        return bitext_folds(load_ntrex(lang), k, seed, self.dev_fraction, salt="toy", eval_key="all")

    def data_files(self, lang: str) -> list[Path]:
        return [data_dir(TOY_SOURCE.folder) / TOY_SOURCE.folder / "hau.tsv"]

    def eval_texts(self, lang: str, fold: TaskFold) -> dict[str, list[str]]:
        rows = self.rows(lang)
        return {"toy eng": [r[1] for r in rows], "toy foreign": [r[2] for r in rows]}

    def evaluate(self, lang, fold, teacher, student) -> dict[str, TaskResult]:
        ids, english, foreign = map(list, zip(*self.rows(lang)))
        return {"toy-en-xx": evaluate_direction("toy-en-xx", ids, english, foreign, lang, teacher, student)}


class FakeResponse(io.BytesIO):
    headers: dict[str, str] = {}


@pytest.fixture
def toy_task(tmp_path, monkeypatch):
    """A data folder with NTREX (for the training bitext) and the toy source, fetched as `data fetch` does."""
    data = tmp_path / "data"
    data.mkdir()
    if not (MIRROR / "ntrex-128").is_dir():
        pytest.skip("no NTREX mirror in ../shared/data")
    (data / "ntrex-128").symlink_to(MIRROR / "ntrex-128")
    monkeypatch.setenv("OPTICAL_LAB_DATA", str(data))
    monkeypatch.setattr(sources, "SOURCES", [*sources.SOURCES, TOY_SOURCE])
    monkeypatch.setitem(task_registry.TASKS, ToyTask.name, ToyTask)
    served = {TOY_URL.format(file="hau.tsv"): TOY_BYTES}
    planned = [d for d in planned_downloads((), ()) if d.relative.startswith(TOY_SOURCE.folder + "/")]
    assert [(d.url, d.relative, d.sha256) for d in planned] == [
        (f.url, f"toy-parallel/{f.path}", f.sha256) for f in TOY_SOURCE.files
    ]
    tampered = lambda url, timeout: FakeResponse(served[url].replace(b"toy", b"tay"))
    with pytest.raises(DataError, match="SHA-256"):
        download(planned[0], data, opener=tampered)  # the pin is checked
    assert not (data / "toy-parallel" / "hau.tsv").exists()
    for item in planned:
        download(item, data, opener=lambda url, timeout: FakeResponse(served[url]))
    return data


def test_toy_dataset_is_a_data_folder_with_languages(toy_task):
    known = known_languages()
    assert known["hau"].datasets["toy-parallel"] == "hau" and "ntrex-128" in known["hau"].datasets
    assert data_dir("toy-parallel") == toy_task  # $OPTICAL_LAB_DATA holds the source's folder
    task = task_registry.get_task("toy-sentences")
    assert task.unavailable("hau") is None and len(task.rows("ha")) == len(TOY_LINES)
    assert task.rows("hau") is task.rows("ha")  # read once (TaskBase.cached), whatever the spelling


def test_toy_method_trains_in_a_tiny_comparison_on_the_toy_task(toy_method, toy_task, tmp_path):
    from optical_lab.experiments.runner import ComparePlan, Runner

    config = preset("tiny", mixed_precision="no")
    plan = ComparePlan(langs=["hau"], methods=["zero-shot", "toy-aug"], folds=1, task="toy-sentences", train=config)
    runner = Runner(plan, tmp_path / "out", progress=False)
    runner._base = tiny_encoder().requires_grad_(False)  # seconds instead of MiniLM's minutes
    runner.run()
    cell = tmp_path / "out" / "runs" / "hau" / "toy-aug" / "fold0-seed0"
    summary = read_json(cell / "train_summary.json")  # (the runner compacts a finished cell: the stored readers)
    assert summary["steps"] == config.steps == 3
    log = read_jsonl(cell / "train_log.jsonl")
    assert [r["step"] for r in log if r.get("event") == "train"] == [1, 2, 3]
    assert all(-1 <= r["toy_cos"] <= 1 for r in log if r.get("event") == "train")  # the toy loss ran
    for method in ("zero-shot", "toy-aug"):  # and the toy task scored both arms on its 12 sentences
        scores = pd.read_csv(open_stored(cell.parents[1] / method / "fold0-seed0" / "toy-en-xx.per_query.csv"))
        assert len(scores) == len(TOY_LINES) and scores["acc@1"].between(0, 1).all()


@pytest.mark.skipif(not (ROOT / "results" / "v2-minilm" / "analysis.json").exists(), reason="no committed v2 results")
def test_v2_report_is_byte_identical_with_the_toy_method(toy_method, tmp_path, monkeypatch):
    """An augmentation method added after protocol v2 is no v2 arm: the committed report is unchanged."""
    from optical_lab.reports.v2 import analyse, render

    assert "toy-aug" in registry.AUGMENTATIONS  # registered as an augmentation method
    shutil.copytree(ROOT / "results" / "v2-minilm", tmp_path / "results" / "v2-minilm")
    monkeypatch.chdir(tmp_path)  # the report names its folder as given: results/v2-minilm
    analysis = analyse(Path("results/v2-minilm"))
    assert (tmp_path / "results/v2-minilm/analysis.json").read_bytes() == (
        ROOT / "results/v2-minilm/analysis.json"
    ).read_bytes()
    assert render(Path("results/v2-minilm"), analysis) == (ROOT / "docs" / "results_v2.md").read_text(encoding="utf-8")
