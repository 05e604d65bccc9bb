"""Evaluate one pair of encoders (query side, document side) on the NTREX tasks of one language.

Known-item CLIR (English first sentence -> target-language document) and sentence retrieval
(English sentence -> its translation), restricted to a set of evaluation documents so a trained
student is only ever scored on documents it never saw.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..data.collections import known_item_collection, sentence_collection
from ..data.ntrex import NtrexCorpus
from ..data.trec import Run, write_qrels, write_run, write_topics
from ..evaluation.metrics import CLIR_MEASURES, SENTENCE_MEASURES, aggregate, per_query
from ..models.encoder import Encoder
from ..retrieval.dense import retrieve


@dataclass
class TaskResult:
    """Run and per-query scores of one task."""

    task: str  # "clir" or "sentence"
    run: Run
    per_query: pd.DataFrame

    @property
    def summary(self) -> dict[str, float]:
        return aggregate(self.per_query)


def evaluate_ntrex(
    corpus: NtrexCorpus,
    query_encoder: Encoder,
    doc_encoder: Encoder,
    eval_docs: set[str] | None = None,
    sentence_task: bool = True,
    progress: bool = False,
) -> dict[str, TaskResult]:
    """Score ``query_encoder`` x ``doc_encoder`` on the known-item and sentence tasks."""
    clir = known_item_collection(corpus)
    if eval_docs is not None:
        clir = clir.restrict(eval_docs)
    results = {}
    run = retrieve(clir, query_encoder, doc_encoder, progress=progress)
    results["clir"] = TaskResult("clir", run, per_query(run, clir.qrels, CLIR_MEASURES))
    if sentence_task:
        sentences = sentence_collection(corpus, eval_docs)
        run = retrieve(sentences, query_encoder, doc_encoder, k=10, batch_size=128, progress=progress)
        results["sentence"] = TaskResult("sentence", run, per_query(run, sentences.qrels, SENTENCE_MEASURES))
    return results


def save_task_results(results: dict[str, TaskResult], corpus: NtrexCorpus, folder: Path, tag: str,
                      eval_docs: set[str] | None = None) -> None:
    """TREC topics/qrels/run and per-query CSV for every task, under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    clir = known_item_collection(corpus)
    if eval_docs is not None:
        clir = clir.restrict(eval_docs)
    write_topics(clir.queries, folder / "clir.topics.tsv")
    write_qrels(clir.qrels, folder / "clir.qrels")
    for name, result in results.items():
        write_run(result.run, folder / f"{name}.run", tag=tag)
        result.per_query.to_csv(folder / f"{name}.per_query.csv")
