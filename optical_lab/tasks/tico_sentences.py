"""TICO-19 sentence retrieval: English -> target and target -> English over COVID-19 / medical segments.

TICO-19 (:mod:`optical_lab.data.tico`) translates 3,071 English segments from about 30 documents
(PubMed abstracts, Wikipedia, CMU's medical-domain sentences, Wikinews, ...) into each of its
languages. Its domain is not news, so for students distilled on news bitext (NTREX, MAFAND-MT) it
is an out-of-domain test. Two sub-tasks over all segments of a language, scored exactly as
FLORES sentence retrieval (:func:`.flores_sentences.evaluate_direction`):

* ``tico-en-xx``: each English segment (**teacher**, ``role="query"``) retrieves its translation
  among all target segments (**student**, ``role="passage"``);
* ``tico-xx-en``: each target segment (student) retrieves its English source (teacher).

Per query ``acc@1``, ``MRR`` and ``xsim`` (1 when the gold translation is not the unique nearest
neighbour; a segment whose English text occurs twice in the file, e.g. "All samples received are
being tested for influenza and COVID-19.", can only tie).

**Splits: nothing trained or selected on is evaluated.** Every segment is evaluated, so students
never train on TICO-19: they train on NTREX bitext (folds that differ in their document-level
train/dev split, as for FLORES ``all``) or on MAFAND-MT / a user's bitext (``compare --bitext``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..data.ntrex import load_ntrex
from ..data.tico import TicoCorpus, load_tico, tico_file
from .base import TaskBase, TaskFold, TaskResult, bitext_folds
from .flores_sentences import evaluate_direction

if TYPE_CHECKING:
    from ..models.encoder import Encoder

EN_XX, XX_EN = "tico-en-xx", "tico-xx-en"
ALL = "all"


@dataclass
class TicoSentencesTask(TaskBase):
    """English <-> target segment retrieval over every TICO-19 segment (module doc)."""

    dev_fraction: float = 0.1
    name: ClassVar[str] = "tico-sentences"
    primary: ClassVar[str] = "acc@1"
    reported: ClassVar[dict[str, list[str]]] = {EN_XX: ["acc@1", "MRR", "xsim"], XX_EN: ["acc@1", "MRR", "xsim"]}

    def corpus(self, lang: str) -> TicoCorpus:
        """The English/``lang`` translation memory (checked by the loader), read once."""
        return self.cached("tico", lang, load_tico)

    def folds(self, lang: str, k: int, seed: int) -> list[TaskFold]:
        self.corpus(lang)  # fail on a bad file before any training
        return bitext_folds(load_ntrex(lang), k, seed, self.dev_fraction, salt="tico", eval_key=ALL)

    def eval_fold(self, lang: str, index: int, k: int, seed: int) -> TaskFold:
        return TaskFold(index, None, None, ALL)  # the same segments in every fold

    def data_files(self, lang: str) -> list[Path]:
        return [tico_file(lang)]

    def eval_texts(self, lang: str, fold: TaskFold) -> dict[str, list[str]]:
        corpus = self.corpus(lang)
        return {f"tico eng ({corpus.code})": corpus.english, f"tico {corpus.lang}": corpus.target}

    def evaluate(self, lang: str, fold: TaskFold, teacher: Encoder, student: Encoder) -> dict[str, TaskResult]:
        corpus = self.corpus(lang)
        ids, english, target = corpus.tuids, corpus.english, corpus.target
        return {
            EN_XX: evaluate_direction(EN_XX, ids, english, target, lang, teacher, student),
            XX_EN: evaluate_direction(XX_EN, ids, target, english, lang, student, teacher),
        }
