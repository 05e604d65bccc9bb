"""AfriQA cross-lingual passage retrieval: a question written in an African language finds the English
Wikipedia passage that answers it.

The direction of a speaker searching English: each native question (encoded by the **student**,
``role="query"``) retrieves among **one English pool shared by all AfriQA languages** (encoded by
the **teacher**, ``role="passage"``): every gold passage of every language and split the data folder
holds, de-duplicated by text (4,727 passages in the mirror; a passage's id is a hash of its text,
:func:`optical_lab.data.afriqa.passage_id`). The relevant document of a question is its own gold
passage; questions without one (null context upstream) are not scored. A shared pool makes every
language search the same haystack, so their scores are comparable, and it is larger than any one
language's gold set. Per query: MRR@10, nDCG@10, R@1/10/100 (and MAP, which equals MRR here: one
relevant passage per question).

Splits and training as in ``afriqa-questions`` (:class:`~.afriqa_questions.AfriqaTaskBase`):
``afriqa_split="all"`` scores every question that has a gold passage, and students never train on
AfriQA; ``"test"`` scores the test questions, students train on the train questions' (English,
native) pairs and select on dev. Passages are never trained on in either case (the pool keeps the
train/dev questions' passages as distractors).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..data.afriqa import afriqa_files, afriqa_languages, passage_id
from ..data.collections import Collection
from ..data.languages import normalize_lang
from ..evaluation.metrics import CLIR_MEASURES
from .afriqa_questions import AfriqaTaskBase
from .base import TaskFold, TaskResult, evaluate_collection

if TYPE_CHECKING:
    from ..models.encoder import Encoder

SUBTASK = "afriqa-passages"


@dataclass
class AfriqaPassagesTask(AfriqaTaskBase):
    """Native question (student) -> its gold English passage (teacher) in the pool of every AfriQA language."""

    name: ClassVar[str] = "afriqa-passages"
    primary: ClassVar[str] = "MRR@10"
    reported: ClassVar[dict[str, list[str]]] = {SUBTASK: ["MRR@10", "nDCG@10", "R@10", "R@100"]}
    _pool: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def pool(self) -> dict[str, str]:
        """Passage id -> English passage, over every language and split of the data folder (built once)."""
        if not self._pool:
            for lang in afriqa_languages():
                for _, context in self.afriqa(lang).passages.values():
                    self._pool.setdefault(passage_id(context), context)
        return self._pool

    def collection(self, lang: str) -> Collection:
        """The evaluated questions of ``lang`` that have a gold passage, against the shared pool."""
        passages = self.afriqa(lang).passages
        scored = [q for q in self.questions(lang) if q.qid in passages]
        lang = normalize_lang(lang)
        return Collection(
            f"{SUBTASK}-{lang}",
            lang,
            {q.qid: q.question for q in scored},
            self.pool(),
            {q.qid: {passage_id(passages[q.qid][1]): 1} for q in scored},
        )

    def data_files(self, lang: str) -> list[Path]:
        """This language's files and every language's gold passages (the pool)."""
        files = afriqa_files(lang)
        return files + [
            f
            for other in afriqa_languages()
            for f in afriqa_files(other)
            if "gold_passages" in f.parts and f not in files
        ]

    def eval_texts(self, lang: str, fold: TaskFold) -> dict[str, list[str]]:
        collection = self.collection(lang)
        return {
            f"afriqa passage queries {normalize_lang(lang)} ({'+'.join(self.eval_splits())})": list(
                collection.queries.values()
            ),
            "afriqa passage pool eng (all languages and splits)": list(collection.documents.values()),
        }

    def evaluate(self, lang: str, fold: TaskFold, teacher: Encoder, student: Encoder) -> dict[str, TaskResult]:
        return {SUBTASK: evaluate_collection(SUBTASK, self.collection(lang), student, teacher, CLIR_MEASURES, k=100)}
