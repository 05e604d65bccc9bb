"""SIB-200 zero-shot cross-lingual topic classification: does the student still live in the teacher's space?

The SIB-200 protocol (Adelani et al., EACL 2024) with a frozen encoder: a scikit-learn
:class:`~sklearn.linear_model.LogisticRegression` is fitted on the **teacher's** embeddings of the
English **train** split (701 sentences, 7 topics) and applied, unchanged, to the **student's**
embeddings of the target-language **test** split (204 sentences). A student whose sentence
embeddings drifted away from the teacher's space loses accuracy here even when its retrieval
scores hold, which retrieval alone cannot show. Every text is encoded with ``role="query"`` (e5's
advice for classification; no prefix for MiniLM).

Per item (``topics.per_query.csv``, ``qid`` = ``index_id``): ``acc`` (1 when the predicted topic is
the gold one), so the comparison's paired tests work on it; ``TaskResult.extra`` adds the
non-decomposable ``macro-F1`` and the ceiling: the same classifier on the teacher's **English** test
embeddings (``eng_acc``, ``eng_macro-F1``). The run file lists each item's topic probabilities.

Students train on FLORES train and select on FLORES dev (one fold, :meth:`SibTaskBase.sib_folds`):
the test split is never trained on. The classifier depends on the teacher only, so it is fitted once
per teacher and task object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from ..data.languages import normalize_lang
from .base import TaskFold, TaskResult
from .flores_sentences import SibTaskBase

if TYPE_CHECKING:
    from ..models.encoder import Encoder

SUBTASK = "topics"


def fit_topic_classifier(embeddings: np.ndarray, labels: list[str], seed: int = 0) -> Any:
    """The SIB-200 probe: multinomial logistic regression (lbfgs, C = 1) on L2-normalised embeddings."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=2000, random_state=seed).fit(embeddings, labels)


def score_topics(classifier: Any, embeddings: np.ndarray, ids: list[str], gold: list[str]) -> TaskResult:
    """Per-item correctness, macro-F1 and the class probabilities (as a run) of ``classifier``."""
    from sklearn.metrics import f1_score

    predicted = classifier.predict(embeddings)
    probabilities = classifier.predict_proba(embeddings)
    per_item = pd.DataFrame({"acc": (predicted == np.asarray(gold)).astype(float)}, index=pd.Index(ids, name="qid"))
    run = {
        i: {str(label): float(p) for label, p in zip(classifier.classes_, row)} for i, row in zip(ids, probabilities)
    }
    macro = float(f1_score(gold, predicted, average="macro", labels=list(classifier.classes_), zero_division=0))
    return TaskResult(SUBTASK, run, per_item, None, {i: {g: 1} for i, g in zip(ids, gold)}, {"macro-F1": macro})


@dataclass
class SibTopicsTask(SibTaskBase):
    """Topic classifier fitted on the teacher's English train embeddings, scored on the student's test embeddings."""

    name: ClassVar[str] = "sib-topics"
    primary: ClassVar[str] = "acc"
    reported: ClassVar[dict[str, list[str]]] = {SUBTASK: ["acc"]}
    _fitted: dict[int, tuple[Encoder, Any, dict[str, float]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def classifier(self, teacher: Encoder) -> tuple[Any, dict[str, float]]:
        """(classifier fitted on ``teacher``'s English train embeddings, its English test scores)."""
        key = id(teacher)
        if key not in self._fitted:
            english = self.sib("eng")
            train, test = english.splits["train"], english.splits["test"]
            classifier = fit_topic_classifier(teacher.encode(train.texts, role="query").numpy(), train.categories)
            ceiling = score_topics(
                classifier, teacher.encode(test.texts, role="query").numpy(), test.index_ids, test.categories
            ).summary
            self._fitted[key] = (teacher, classifier, {"eng_acc": ceiling["acc"], "eng_macro-F1": ceiling["macro-F1"]})
        _, classifier, ceiling = self._fitted[key]
        return classifier, ceiling

    def folds(self, lang: str, k: int, seed: int) -> list[TaskFold]:
        return self.sib_folds(lang)

    def eval_fold(self, lang: str, index: int, k: int, seed: int) -> TaskFold:
        return TaskFold(index, None, None, ("test",))

    def eval_texts(self, lang: str, fold: TaskFold) -> dict[str, list[str]]:
        return {
            "sib test eng": self.sib("eng").splits["test"].texts,
            f"sib test {normalize_lang(lang)}": self.sib(lang).splits["test"].texts,
        }

    def evaluate(self, lang: str, fold: TaskFold, teacher: Encoder, student: Encoder) -> dict[str, TaskResult]:
        classifier, ceiling = self.classifier(teacher)
        test = self.sib(lang).splits["test"]
        result = score_topics(
            classifier, student.encode(test.texts, role="query").numpy(), test.index_ids, test.categories
        )
        result.extra.update(ceiling)
        return {SUBTASK: result}
