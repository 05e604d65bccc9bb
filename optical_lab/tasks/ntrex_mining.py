"""NTREX bitext mining scored as MTEB's ``NTREXBitextMining`` scores it: the external calibration.

MTEB publishes, per model, the F1 of subset ``eng_Latn-xxx_Script`` (English sentences are the
queries, the target-language sentences the corpus) and of ``xxx_Script-eng_Latn`` (the reverse) over
all 1,997 NTREX-128 lines. This task computes the same numbers on our NTREX files with
:mod:`optical_lab.evaluation.bitext_mining` (top-1 cosine neighbour, support-weighted F1 as
scikit-learn computes it), so our backbones can be put beside the published ones
(``docs/calibration.md``, written by ``optical-lab calibration``).

Sub-tasks: ``mining-en-xx`` (MTEB's ``eng_Latn-X``: English queries, encoded by the teacher, against
the target sentences, encoded by the student) and ``mining-xx-en`` (``X-eng_Latn``: the student's
target sentences against the teacher's English). No retrieval prefix is added to either side:
MTEB 1.38.3, which produced multilingual-e5-small's scores, encodes bitext-mining sentences with no
prompt type, and its e5 prompts exist only for the query / passage prompt types
(``mteb/models/wrapper.py: get_prompt_name``), so e5 saw the bare sentences.

Per query (``<sub-task>.per_query.csv``, ``qid`` = ``s<line>``): ``acc@1`` (1 when the gold sentence
is the nearest) and ``f1``, the query's share of the weighted F1 (``2 / (1 + p)`` when correct, where
``p`` counts the queries that picked the same sentence; 0 otherwise). Every sentence is the gold of
exactly one query, so their mean **is** MTEB's F1 and paired tests work on it. ``TaskResult.extra``
adds ``precision``, ``recall`` and ``f1_ci95``, the half-width of F1's 95 % confidence interval over
queries (Student t on the per-query ``f1``: the spread another 1,997 news sentences would give).
Folds and the evaluated documents are those of ``ntrex-sentences`` (the zero-shot ``evaluate``
scores every line, as MTEB does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from ..data.collections import sentence_collection
from .base import TaskFold, TaskResult
from .ntrex_sentence import NtrexSentenceTask

if TYPE_CHECKING:
    from ..models.encoder import Encoder

EN_XX, XX_EN = "mining-en-xx", "mining-xx-en"


def mining_result(name: str, ids: list[str], queries: np.ndarray, corpus: np.ndarray) -> TaskResult:
    """Bitext-mining result of line-aligned ``queries`` x ``corpus`` embeddings (row i's gold is row i)."""
    from ..evaluation.bitext_mining import mining_scores, nearest_neighbours, query_f1  # torch: when it scores
    from ..evaluation.significance import mean_ci

    predicted, cosine = nearest_neighbours(queries, corpus)
    gold = np.arange(len(ids))
    per_query = pd.DataFrame(
        {"acc@1": (predicted == gold).astype(float), "f1": query_f1(gold, predicted)}, index=pd.Index(ids, name="qid")
    )
    scores = mining_scores(gold, predicted)
    run = {q: {ids[j]: float(c)} for q, j, c in zip(ids, predicted, cosine)}
    extra = {"precision": scores["precision"], "recall": scores["recall"], "f1_ci95": mean_ci(per_query["f1"])[1]}
    return TaskResult(name, run, per_query, None, {q: {q: 1} for q in ids}, extra)


@dataclass
class NtrexMiningTask(NtrexSentenceTask):
    """MTEB's NTREX bitext mining (both directions) on the evaluated NTREX documents; module doc."""

    name: ClassVar[str] = "ntrex-mining"
    primary: ClassVar[str] = "f1"
    reported: ClassVar[dict[str, list[str]]] = {EN_XX: ["f1", "acc@1"], XX_EN: ["f1", "acc@1"]}

    def evaluate(self, lang: str, fold: TaskFold, teacher: Encoder, student: Encoder) -> dict[str, TaskResult]:
        collection = sentence_collection(self.corpus(lang), fold.eval_key)
        ids = list(collection.queries)
        english = teacher.encode([collection.queries[i] for i in ids]).numpy()
        target = student.encode([collection.documents[i] for i in ids]).numpy()
        return {EN_XX: mining_result(EN_XX, ids, english, target), XX_EN: mining_result(XX_EN, ids, target, english)}
