"""An ``ir_datasets`` collection as a task: ``--task irds --irds-id wikiclir/sw --doc-field text``.

The same evaluation as the ``trec`` task (:mod:`.trec`: English queries by the teacher, documents
by the student, ``MRR@10``/``nDCG@10``/``MAP``; students train on NTREX bitext of the language), on a
collection ``ir_datasets`` loads (:func:`optical_lab.data.trec.load_ir_datasets`; its download and
cache rules apply; ``pip install 'optical_lab[ir_datasets]'``). The document text field is named
explicitly (``--doc-field``, e.g. ``text``, ``body`` or ``title,text``) and checked against the
dataset's document type: a dataset whose text lives under another name is refused, never scored on
empty documents. The scored topics and qrels are written next to the runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from ..data.collections import Collection
from ..data.errors import DataError
from ..data.languages import normalize_lang
from ..data.trec import load_ir_datasets
from ..evaluation.metrics import CLIR_MEASURES
from .base import TaskFold, TaskResult, evaluate_collection
from .trec import TrecTask

if TYPE_CHECKING:
    from ..models.encoder import Encoder

SUBTASK = "irds"


@dataclass
class IrdsTask(TrecTask):
    """Retrieval on an ``ir_datasets`` collection (the ``trec`` task's evaluation and folds)."""

    irds_id: str | None = None
    doc_field: str | None = None
    query_field: str = "text"
    name: ClassVar[str] = "irds"
    reported: ClassVar[dict[str, list[str]]] = {SUBTASK: ["MRR@10", "nDCG@10", "MAP"]}
    OPTIONS: ClassVar[dict[str, str]] = {
        "irds_id": "irds task: the ir_datasets id, e.g. wikiclir/sw",
        "doc_field": "irds task: the document field(s) holding the text, e.g. text, body or title,text (required)",
        "query_field": "irds task: the query field(s) holding the text (default text)",
    }

    def collection(self, lang: str) -> Collection:
        lang = normalize_lang(lang)
        if not self.irds_id:
            raise DataError(
                "the irds task needs --irds-id", fix="e.g. --task irds --irds-id wikiclir/sw --doc-field text"
            )
        if lang not in self._collections:
            self._collections[lang] = load_ir_datasets(self.irds_id, lang, self.doc_field, self.query_field)
        return self._collections[lang]

    def evaluate(self, lang: str, fold: TaskFold, teacher: Encoder, student: Encoder) -> dict[str, TaskResult]:
        return {SUBTASK: evaluate_collection(SUBTASK, self.collection(lang), teacher, student, CLIR_MEASURES)}
