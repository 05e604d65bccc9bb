"""Evaluation tasks the comparison harness can run, behind one small interface.

A task says, per language and fold, which bitext the student may train on (``train``), which
held-out bitext selects the model (``dev``), and how to score a (teacher, student) pair on the
fold's evaluation items — which never overlap the training bitext.

* ``ntrex``: NTREX known-item CLIR + sentence retrieval, document-level folds.
* ``qald``:  QALD-9-plus question -> SPARQL retrieval with answer-set F1
  (:mod:`optical_lab.experiments.qald_task`); students train on NTREX bitext.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ..data.bitext import Bitext
from ..data.collections import document_folds, fold_bitext
from ..data.ntrex import load_ntrex
from ..models.encoder import Encoder
from .evaluate import TaskResult, evaluate_ntrex


@dataclass
class TaskFold:
    index: int
    train: Bitext  # what the student may learn from
    dev: Bitext  # model selection only
    eval_key: Any  # what the task needs to score this fold (e.g. the evaluation document ids)


class Task(Protocol):
    name: str
    primary: str  # the headline metric column of the main sub-task, e.g. "MRR@10"

    def folds(self, lang: str, k: int, seed: int) -> list[TaskFold]: ...

    def evaluate(self, lang: str, fold: TaskFold, teacher: Encoder, student: Encoder) -> dict[str, TaskResult]: ...


class NtrexTask:
    """Known-item CLIR ("clir") and sentence retrieval ("sentence") on NTREX, document folds."""

    name = "ntrex"
    primary = "MRR@10"

    def __init__(self, sentence_task: bool = True) -> None:
        self.sentence_task = sentence_task

    def folds(self, lang: str, k: int, seed: int) -> list[TaskFold]:
        corpus = load_ntrex(lang)
        out = []
        for fold in document_folds(corpus.doc_ids, k=k, seed=seed):
            out.append(TaskFold(fold.index, fold_bitext(corpus, fold.train), fold_bitext(corpus, fold.dev), set(fold.eval)))
        return out

    def evaluate(self, lang: str, fold: TaskFold, teacher: Encoder, student: Encoder) -> dict[str, TaskResult]:
        return evaluate_ntrex(load_ntrex(lang), teacher, student, eval_docs=fold.eval_key, sentence_task=self.sentence_task)


def get_task(name: str) -> Task:
    if name == "ntrex":
        return NtrexTask()
    if name == "qald":
        from .qald_task import QaldTask

        return QaldTask()
    raise ValueError(f"unknown task {name!r}: use 'ntrex' or 'qald'")
