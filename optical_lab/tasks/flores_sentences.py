"""FLORES-200 sentence retrieval (via SIB-200): English -> target and target -> English, with the xsim error.

SIB-200 (:mod:`optical_lab.data.sib`) holds 1,004 FLORES-200 sentences per language with the same
``index_id`` in every language, so the two languages' files are parallel by id. Two sub-tasks:

* ``flores-en-xx``: each English sentence (encoded by the **teacher**, ``role="query"``) retrieves
  its translation among all target sentences (encoded by the **student**, ``role="passage"``);
* ``flores-xx-en``: each target sentence (student, ``role="query"``) retrieves its English source
  among all English sentences (teacher, ``role="passage"``).

Per query: ``acc@1`` (the translation ranked first), ``MRR`` (ir_measures ``RR``) and ``xsim``, the
margin-free bitext-mining error of the FLORES/LASER literature: 1 when the gold translation is not
the *unique* nearest neighbour (another sentence scores at least as high), else 0. Its mean is the
xsim error rate; it equals 1 − acc@1 except where scores tie exactly.

**What the student may train on.** ``flores_split="all"`` (default) evaluates all 1,004 sentences,
so no FLORES sentence may be trained on: students train on NTREX bitext (folds that differ in their
document-level train/dev split, as for QALD and TREC). ``flores_split="test"`` evaluates the 204
test sentences and students train on FLORES train (701 pairs) and select on FLORES dev (99 pairs);
that split is fixed by the dataset, so there is one fold whatever ``--folds`` says (repeating it
would count the same student twice). :class:`SibTaskBase` is that data handling, shared with
``sib-topics`` (:mod:`.sib_topics`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..data.bitext import Bitext
from ..data.collections import Collection
from ..data.errors import DataError
from ..data.languages import canonical_code, dataset_code, normalize_lang
from ..data.ntrex import load_ntrex
from ..data.sib import SIB_ENGLISH, SIB_SPLITS, SibLanguage, load_sib, sib_files
from ..data.trec import Run
from ..evaluation.metrics import SENTENCE_MEASURES
from .base import TaskBase, TaskFold, TaskResult, bitext_folds, evaluate_collection

if TYPE_CHECKING:
    from ..models.encoder import Encoder

EN_XX, XX_EN = "flores-en-xx", "flores-xx-en"
SPLIT_CHOICES = ("all", "test")


@dataclass
class SibTaskBase(TaskBase):
    """SIB-200 data for a task: each language read once, bitext by ``index_id``, its files."""

    def sib(self, lang: str) -> SibLanguage:
        """SIB-200 train/dev/test of ``lang`` (checked against English by the loader), read once."""
        return self.cached("sib", lang, load_sib)

    def ids(self, lang: str, splits: tuple[str, ...]) -> list[str]:
        """The ``index_id`` s of ``splits``, in file order."""
        return [i for split in splits for i in self.sib(lang).splits[split].index_ids]

    def texts(self, lang: str, ids: list[str]) -> list[str]:
        by_id = {i: t for split in SIB_SPLITS for i, t in self.sib(lang).splits[split].text_by_id().items()}
        return [by_id[i] for i in ids]

    def bitext(self, lang: str, splits: tuple[str, ...]) -> Bitext:
        """English <-> ``lang`` sentence pairs of ``splits``, paired by ``index_id`` (the doc ids)."""
        ids = self.ids(lang, splits)
        return Bitext(
            self.texts("eng", ids), self.texts(lang, ids), normalize_lang(lang), list(ids), source="flores-200"
        )

    def sib_folds(self, lang: str) -> list[TaskFold]:
        """One fold: train on FLORES train, select on FLORES dev, evaluate the test split."""
        return [TaskFold(0, self.bitext(lang, ("train",)), self.bitext(lang, ("dev",)), ("test",))]

    def data_files(self, lang: str) -> list[Path]:
        codes = dict.fromkeys([SIB_ENGLISH, dataset_code(lang, "sib-200") or canonical_code(lang)])
        return list(dict.fromkeys(path for code in codes for path in sib_files(code)))


def xsim_errors(run: Run) -> dict[str, float]:
    """Per query: 1.0 when the gold document (the query's own id) is not the unique top score."""
    errors = {}
    for qid, scores in run.items():
        gold = scores.get(qid)
        errors[qid] = float(gold is None or any(s >= gold for d, s in scores.items() if d != qid))
    return errors


def evaluate_direction(
    name: str,
    ids: list[str],
    queries: list[str],
    documents: list[str],
    lang: str,
    query_encoder: Encoder,
    doc_encoder: Encoder,
) -> TaskResult:
    """Sentence retrieval of ``queries`` among ``documents`` (parallel by position, ids ``ids``)."""
    collection = Collection(name, lang, dict(zip(ids, queries)), dict(zip(ids, documents)), {i: {i: 1} for i in ids})
    result = evaluate_collection(name, collection, query_encoder, doc_encoder, SENTENCE_MEASURES, k=10, batch_size=128)
    errors = xsim_errors(result.run)
    result.per_query["xsim"] = [errors.get(qid, 1.0) for qid in result.per_query.index]
    return result


@dataclass
class FloresSentencesTask(SibTaskBase):
    """English <-> target sentence retrieval over FLORES-200 (SIB-200's copy); module doc."""

    flores_split: str = "all"
    dev_fraction: float = 0.1
    name: ClassVar[str] = "flores-sentences"
    primary: ClassVar[str] = "acc@1"
    reported: ClassVar[dict[str, list[str]]] = {EN_XX: ["acc@1", "MRR", "xsim"], XX_EN: ["acc@1", "MRR", "xsim"]}
    OPTIONS: ClassVar[dict[str, str]] = {
        "flores_split": "flores-sentences: 'all' (1,004 sentences; students train on NTREX bitext) or 'test' "
        "(204 sentences; students train on FLORES train, select on FLORES dev)"
    }

    def __post_init__(self) -> None:
        if self.flores_split not in SPLIT_CHOICES:
            raise DataError(
                f"unknown --flores-split {self.flores_split!r}", fix="use --flores-split all or --flores-split test"
            )

    def eval_splits(self) -> tuple[str, ...]:
        return SIB_SPLITS if self.flores_split == "all" else ("test",)

    def folds(self, lang: str, k: int, seed: int) -> list[TaskFold]:
        if self.flores_split == "test":
            return self.sib_folds(lang)
        self.sib(lang)  # fail on a bad file before any training
        return bitext_folds(load_ntrex(lang), k, seed, self.dev_fraction, salt="flores", eval_key=SIB_SPLITS)

    def eval_fold(self, lang: str, index: int, k: int, seed: int) -> TaskFold:
        return TaskFold(index, None, None, self.eval_splits())  # the same sentences in every fold

    def eval_texts(self, lang: str, fold: TaskFold) -> dict[str, list[str]]:
        ids = self.ids(lang, self.eval_splits())
        return {
            f"flores eng ({'+'.join(self.eval_splits())})": self.texts("eng", ids),
            f"flores {normalize_lang(lang)}": self.texts(lang, ids),
        }

    def evaluate(self, lang: str, fold: TaskFold, teacher: Encoder, student: Encoder) -> dict[str, TaskResult]:
        ids = self.ids(lang, self.eval_splits())
        english, target = self.texts("eng", ids), self.texts(lang, ids)
        return {
            EN_XX: evaluate_direction(EN_XX, ids, english, target, lang, teacher, student),
            XX_EN: evaluate_direction(XX_EN, ids, target, english, lang, student, teacher),
        }
