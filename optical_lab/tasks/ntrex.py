"""NTREX known-item CLIR (the design of Sasaki et al., 2018 and CLIRMatrix), with document folds.

For each NTREX document the query is the English document's first sentence and the relevant
document is the target-language text of the same document without that first sentence (123
queries against 123 documents per language; :func:`optical_lab.data.collections.known_item_collection`).
Queries are encoded by the teacher, documents by the student. By default the task also runs
NTREX sentence retrieval on the same evaluation documents, so one cell gives both sub-tasks,
``clir`` and ``sentence`` (``ntrex-clir`` is the same task with ``clir`` only); folds and corpus handling are
the sentence task's
(:class:`optical_lab.tasks.ntrex_sentence.NtrexSentenceTask`, which this class extends).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from ..data.collections import known_item_collection
from ..data.ntrex import NtrexCorpus
from ..evaluation.metrics import CLIR_MEASURES
from .base import TaskFold, TaskResult, evaluate_collection
from .ntrex_sentence import SUBTASK as SENTENCE
from .ntrex_sentence import NtrexSentenceTask, evaluate_sentences

if TYPE_CHECKING:
    from ..models.encoder import Encoder

SUBTASK = "clir"


def evaluate_known_item(
    corpus: NtrexCorpus,
    query_encoder: Encoder,
    doc_encoder: Encoder,
    eval_docs: set[str] | None = None,
    progress: bool = False,
) -> TaskResult:
    """Known-item CLIR restricted to the documents ``eval_docs`` (all when None)."""
    collection = known_item_collection(corpus)
    if eval_docs is not None:
        collection = collection.restrict(eval_docs)
    return evaluate_collection(SUBTASK, collection, query_encoder, doc_encoder, CLIR_MEASURES, progress=progress)


def evaluate_ntrex(
    corpus: NtrexCorpus,
    query_encoder: Encoder,
    doc_encoder: Encoder,
    eval_docs: set[str] | None = None,
    sentence_task: bool = True,
    progress: bool = False,
) -> dict[str, TaskResult]:
    """``clir`` (and ``sentence``) results of ``query_encoder`` x ``doc_encoder`` on ``eval_docs``."""
    results = {SUBTASK: evaluate_known_item(corpus, query_encoder, doc_encoder, eval_docs, progress)}
    if sentence_task:
        results[SENTENCE] = evaluate_sentences(corpus, query_encoder, doc_encoder, eval_docs, progress)
    return results


@dataclass
class NtrexTask(NtrexSentenceTask):
    """Known-item CLIR ("clir") and sentence retrieval ("sentence") on NTREX, document folds."""

    sentence_task: bool = True
    name: ClassVar[str] = "ntrex"
    primary: ClassVar[str] = "MRR@10"
    reported: ClassVar[dict[str, list[str]]] = {SUBTASK: ["MRR@10", "nDCG@10", "MAP"], SENTENCE: ["acc@1"]}
    OPTIONS: ClassVar[dict[str, str]] = {}

    def evaluate(self, lang: str, fold: TaskFold, teacher: Encoder, student: Encoder) -> dict[str, TaskResult]:
        return evaluate_ntrex(
            self.corpus(lang), teacher, student, eval_docs=fold.eval_key, sentence_task=self.sentence_task
        )


@dataclass
class NtrexClirTask(NtrexTask):
    """Known-item CLIR only (``clir``): the suite's ``ntrex-clir``, next to ``ntrex-sentences``."""

    sentence_task: bool = False
    name: ClassVar[str] = "ntrex-clir"
    reported: ClassVar[dict[str, list[str]]] = {SUBTASK: ["MRR@10", "nDCG@10", "MAP"]}
