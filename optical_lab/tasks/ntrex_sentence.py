"""NTREX sentence retrieval, and the NTREX document folds every NTREX task shares.

Each English sentence retrieves its own translation among all target sentences of the evaluated
documents (accuracy@1 and MRR). It runs as a task of its own (``--task ntrex-sentences``; the
older name ``ntrex-sentence`` is an alias) and, by
default, as the ``sentence`` sub-task of known-item CLIR (:class:`optical_lab.tasks.ntrex.NtrexTask`,
which extends this class).

**Folds** split *documents*, never sentences (:func:`optical_lab.data.collections.document_folds`):
a fold's evaluation documents contribute no sentence to that fold's training or dev bitext. The
comparison runner chooses the scheme (``fold_scheme``): ``held-out-dev`` for new comparisons (no
fold's dev document is evaluated by any fold), ``per-fold-dev`` for the committed results.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..data.collections import document_folds, fold_bitext, sentence_collection
from ..data.languages import normalize_lang
from ..data.ntrex import NtrexCorpus, load_ntrex, ntrex_file
from ..evaluation.metrics import SENTENCE_MEASURES
from .base import TaskBase, TaskFold, TaskResult, evaluate_collection

if TYPE_CHECKING:
    from ..models.encoder import Encoder

SUBTASK = "sentence"


def evaluate_sentences(
    corpus: NtrexCorpus,
    query_encoder: Encoder,
    doc_encoder: Encoder,
    eval_docs: set[str] | None = None,
    progress: bool = False,
) -> TaskResult:
    """Sentence retrieval restricted to the sentences of ``eval_docs`` (all when None)."""
    return evaluate_collection(
        SUBTASK,
        sentence_collection(corpus, eval_docs),
        query_encoder,
        doc_encoder,
        SENTENCE_MEASURES,
        k=10,
        batch_size=128,
        progress=progress,
    )


@dataclass
class NtrexSentenceTask(TaskBase):
    """Sentence retrieval on NTREX, document folds; the corpus of a language is read once."""

    name: ClassVar[str] = "ntrex-sentences"
    primary: ClassVar[str] = "acc@1"
    reported: ClassVar[dict[str, list[str]]] = {SUBTASK: ["acc@1"]}

    def corpus(self, lang: str) -> NtrexCorpus:
        """NTREX English + ``lang``, read once per task object."""
        return self.cached("ntrex", lang, load_ntrex)

    def folds(self, lang: str, k: int, seed: int) -> list[TaskFold]:
        corpus = self.corpus(lang)
        return [
            TaskFold(fold.index, fold_bitext(corpus, fold.train), fold_bitext(corpus, fold.dev), set(fold.eval))
            for fold in document_folds(corpus.doc_ids, k=k, seed=seed, scheme=self.fold_scheme)
        ]

    def eval_texts(self, lang: str, fold: TaskFold) -> dict[str, list[str]]:
        """The evaluated documents' sentences, both sides (the known-item queries and documents are
        made of them)."""
        corpus = self.corpus(lang)
        lines = [i for i, doc in enumerate(corpus.doc_ids) if fold.eval_key is None or doc in fold.eval_key]
        return {
            f"ntrex eng ({len(lines)} sentences)": [corpus.english[i] for i in lines],
            f"ntrex {corpus.lang}": [corpus.target[i] for i in lines],
        }

    def evaluate(self, lang: str, fold: TaskFold, teacher: Encoder, student: Encoder) -> dict[str, TaskResult]:
        return {SUBTASK: evaluate_sentences(self.corpus(lang), teacher, student, fold.eval_key)}

    def data_files(self, lang: str) -> list[Path]:
        english = ntrex_file("eng")
        return [english, ntrex_file(normalize_lang(lang)), english.parent / "DOCUMENT_IDS.tsv"]
