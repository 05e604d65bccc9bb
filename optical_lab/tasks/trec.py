"""A user's own TREC-style collection as a task: ``--task trec --topics T --qrels Q --docs D``.

The three files are read by :func:`optical_lab.data.trec.load_trec_collection` (topics
``qid<TAB>text``, qrels ``qid 0 docid rel``, documents as TSV or JSONL), once per task object.
Queries are English and encoded by the teacher; documents are in the language being studied and
encoded by the student, as in NTREX known-item CLIR, and scored with the same measures. The whole
collection is evaluated in every fold: the student trains on NTREX bitext of the language, whose
folds differ only in their document-level train/dev split (as for QALD). One collection is in one
language: the task refuses a second language (``--langs all`` would report it under every label),
and a file the user named but that is missing is an error, not a skipped language.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..data.collections import Collection
from ..data.errors import DataError
from ..data.languages import normalize_lang
from ..data.ntrex import load_ntrex, ntrex_file
from ..data.trec import load_trec_collection
from ..evaluation.metrics import CLIR_MEASURES
from .base import TaskBase, TaskFold, TaskResult, bitext_folds, evaluate_collection

if TYPE_CHECKING:
    from ..models.encoder import Encoder

SUBTASK = "trec"


@dataclass
class TrecTask(TaskBase):
    """Known-item or ad-hoc retrieval on a user's collection; students train on NTREX bitext."""

    topics: str | None = None
    qrels: str | None = None
    docs: str | None = None
    dev_fraction: float = 0.1
    missing_docs: str = "error"
    name: ClassVar[str] = "trec"
    SAVE_INPUTS: ClassVar[bool] = True
    primary: ClassVar[str] = "MRR@10"
    reported: ClassVar[dict[str, list[str]]] = {SUBTASK: ["MRR@10", "nDCG@10", "MAP"]}
    OPTIONS: ClassVar[dict[str, str]] = {
        "topics": "trec task: topics file (qid<TAB>English query text)",
        "qrels": "trec task: qrels file (qid 0 docid relevance)",
        "docs": "trec task: documents (docid<TAB>text TSV, or JSONL with doc_id and text)",
        "missing_docs": "trec task: qrels judging documents absent from --docs: "
        "'error' (default) or 'warn' (dropped, counted)",
    }
    _collections: dict[str, Collection] = field(default_factory=dict, init=False, repr=False, compare=False)

    def collection(self, lang: str) -> Collection:
        lang = normalize_lang(lang)
        missing = [name for name in ("topics", "qrels", "docs") if not getattr(self, name)]
        if missing:
            raise DataError(
                f"the trec task needs {', '.join('--' + m for m in missing)}",
                fix="e.g. --task trec --topics topics.tsv --qrels qrels.txt --docs docs.jsonl --langs swa",
            )
        if self.missing_docs not in ("error", "warn"):
            raise DataError(
                f"--missing-docs {self.missing_docs!r}", fix="use --missing-docs error or --missing-docs warn"
            )
        other = next((known for known in self._collections if known != lang), None)
        if other is not None:
            raise DataError(
                f"the trec collection {self.docs} is in one language: it was evaluated as {other}, now "
                f"asked for {lang}",
                fix=f"give --langs one language (e.g. --langs {other})",
            )
        if lang not in self._collections:
            self._collections[lang] = load_trec_collection(
                self.topics, self.qrels, self.docs, lang, missing_docs=self.missing_docs
            )
        return self._collections[lang]

    def unavailable(self, lang: str) -> str | None:
        """A file the user named that does not exist is an error naming it (not a language to skip)."""
        for name in ("topics", "qrels", "docs"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise DataError(f"--{name} {path}: no such file", path=path, fix=f"give --{name} an existing file")
        return super().unavailable(lang)

    def folds(self, lang: str, k: int, seed: int) -> list[TaskFold]:
        collection = self.collection(lang)  # fail on a bad file before any training
        return bitext_folds(load_ntrex(lang), k, seed, self.dev_fraction, salt="trec", eval_key=collection.name)

    def evaluate(self, lang: str, fold: TaskFold, teacher: Encoder, student: Encoder) -> dict[str, TaskResult]:
        return {SUBTASK: evaluate_collection(SUBTASK, self.collection(lang), teacher, student, CLIR_MEASURES)}

    def eval_texts(self, lang: str, fold: TaskFold) -> dict[str, list[str]]:
        collection = self.collection(lang)
        return {
            f"trec topics ({collection.name})": list(collection.queries.values()),
            f"trec documents ({collection.name})": list(collection.documents.values()),
        }

    def data_files(self, lang: str) -> list[Path]:
        english = ntrex_file("eng")
        return [Path(p) for p in (self.topics, self.qrels, self.docs) if p] + [
            english,
            ntrex_file(normalize_lang(lang)),
            english.parent / "DOCUMENT_IDS.tsv",
        ]
