"""AfriQA question translation retrieval: a native question <-> its human English translation.

AfriQA (:mod:`optical_lab.data.afriqa`) has questions *written* in an African language by speakers
looking for information, each with a human English translation: unlike NTREX or FLORES, the
foreign side is not a translation of English. Two sub-tasks over a language's questions:

* ``afriqa-xx-en``: each native question (encoded by the **student**, ``role="query"``) retrieves
  its English translation among the English translations of all evaluated questions (the
  **teacher**, ``role="passage"``): the speaker's direction;
* ``afriqa-en-xx``: each English translation (teacher) retrieves its native question (student).

Per query ``acc@1``, ``MRR`` and ``xsim`` (the margin-free bitext-mining error; see
:mod:`.flores_sentences`, whose :func:`~.flores_sentences.evaluate_direction` scores both directions).

**Splits: nothing trained or selected on is evaluated.** ``afriqa_split="all"`` (default) evaluates
every question of every split the data holds (1,053-1,392 per language), so students may not train
on AfriQA: they train on NTREX bitext (folds that differ in their document-level train/dev split,
as for FLORES ``all``), or on MAFAND-MT / a user's bitext (``compare --bitext``), never on AfriQA.
``afriqa_split="test"`` evaluates the test questions only (295-490 per language); students then
train on the (native, English) pairs of the train questions and select on the dev questions: one
fold, fixed by the dataset. :class:`AfriqaTaskBase` is that data handling, shared with
``afriqa-passages`` (:mod:`.afriqa_passages`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..data.afriqa import AFRIQA_SPLITS, AfriqaLanguage, AfriqaQuestion, afriqa_files, load_afriqa
from ..data.bitext import Bitext
from ..data.errors import DataError
from ..data.languages import normalize_lang
from ..data.ntrex import load_ntrex
from .base import TaskBase, TaskFold, TaskResult, bitext_folds
from .flores_sentences import evaluate_direction

if TYPE_CHECKING:
    from ..models.encoder import Encoder

XX_EN, EN_XX = "afriqa-xx-en", "afriqa-en-xx"
SPLIT_CHOICES = ("all", "test")


@dataclass
class AfriqaTaskBase(TaskBase):
    """AfriQA data for a task: each language read once, the evaluated questions, folds, files."""

    afriqa_split: str = "all"
    dev_fraction: float = 0.1
    OPTIONS: ClassVar[dict[str, str]] = {
        "afriqa_split": "afriqa-*: 'all' (every question; students train on NTREX or --bitext, never on AfriQA) or "
        "'test' (test questions; students train on AfriQA train question pairs, select on dev)"
    }

    def __post_init__(self) -> None:
        if self.afriqa_split not in SPLIT_CHOICES:
            raise DataError(f"unknown --afriqa-split {self.afriqa_split!r}", fix="use --afriqa-split all or test")

    def afriqa(self, lang: str) -> AfriqaLanguage:
        """AfriQA questions and gold passages of ``lang`` (checked by the loader), read once."""
        return self.cached("afriqa", lang, load_afriqa)

    def eval_splits(self) -> tuple[str, ...]:
        return AFRIQA_SPLITS if self.afriqa_split == "all" else ("test",)

    def questions(self, lang: str) -> list[AfriqaQuestion]:
        """The evaluated questions of ``lang``, in file order."""
        return self.afriqa(lang).in_splits(self.eval_splits())

    def question_bitext(self, lang: str, split: str) -> Bitext:
        """(English translation, native question) pairs of one split: training data of ``afriqa_split="test"``."""
        questions = self.afriqa(lang).in_splits((split,))
        return Bitext(
            [q.english for q in questions],
            [q.question for q in questions],
            normalize_lang(lang),
            [q.qid for q in questions],
            source=f"afriqa/{split}",
        )

    def folds(self, lang: str, k: int, seed: int) -> list[TaskFold]:
        if self.afriqa_split == "test":
            return [TaskFold(0, self.question_bitext(lang, "train"), self.question_bitext(lang, "dev"), ("test",))]
        self.afriqa(lang)  # fail on a bad file before any training
        return bitext_folds(load_ntrex(lang), k, seed, self.dev_fraction, salt="afriqa", eval_key=AFRIQA_SPLITS)

    def eval_fold(self, lang: str, index: int, k: int, seed: int) -> TaskFold:
        return TaskFold(index, None, None, self.eval_splits())  # the same questions in every fold

    def data_files(self, lang: str) -> list[Path]:
        return afriqa_files(lang)


@dataclass
class AfriqaQuestionsTask(AfriqaTaskBase):
    """Native question <-> its English translation, both directions (module doc)."""

    name: ClassVar[str] = "afriqa-questions"
    primary: ClassVar[str] = "acc@1"
    reported: ClassVar[dict[str, list[str]]] = {XX_EN: ["acc@1", "MRR", "xsim"], EN_XX: ["acc@1", "MRR", "xsim"]}

    def eval_texts(self, lang: str, fold: TaskFold) -> dict[str, list[str]]:
        questions = self.questions(lang)
        splits = "+".join(self.eval_splits())
        return {
            f"afriqa questions {normalize_lang(lang)} ({splits})": [q.question for q in questions],
            f"afriqa questions eng ({splits})": [q.english for q in questions],
        }

    def evaluate(self, lang: str, fold: TaskFold, teacher: Encoder, student: Encoder) -> dict[str, TaskResult]:
        questions = self.questions(lang)
        ids = [q.qid for q in questions]
        native, english = [q.question for q in questions], [q.english for q in questions]
        return {
            XX_EN: evaluate_direction(XX_EN, ids, native, english, lang, student, teacher),
            EN_XX: evaluate_direction(EN_XX, ids, english, native, lang, teacher, student),
        }
