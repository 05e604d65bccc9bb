"""What every evaluation task is: the protocol the runner, the ``evaluate`` command and the reports use.

A task says, per language and fold, which bitext the student may train on (``train``), which
held-out bitext selects the model (``dev``), and how to score a (teacher, student) pair on the
fold's evaluation items — which never overlap the training bitext. A task object carries its
data: it loads a corpus or collection once per language and keeps it (:meth:`TaskBase.cached`), so a
comparison never re-reads files per cell.

A task's ``evaluate`` returns one :class:`TaskResult` per **sub-task** (NTREX gives ``clir`` and
``sentence``); the sub-task name names the result files (``<sub-task>.run.gz``,
``<sub-task>.per_query.csv``) and the rows of the summary tables, and ``reported`` says which
metric columns the tables show for it.

Options (a TREC collection's files, QALD's translation policy) are the task's dataclass fields;
``options()`` is what a results folder records, and ``OPTIONS`` (field -> help) is what the
command line offers as ``--<field>``.

Besides the protocol, :class:`TaskBase` gives every task what the suite and the leak guard need:
``unavailable(lang)`` (why a language cannot be evaluated, or None), ``eval_texts(lang, fold)``
(every text the fold is scored on, for the leak guard) and ``eval_fold(lang, index, k, seed)``
(the fold whose evaluation items score a student trained for fold ``index`` of another task).

A task module imports no torch when it is imported (the encoder is only an annotation; the retrieval
code is imported by the functions that score), so the registry, the command line's parsers and help
read every task's declaration (``name``, ``primary``, ``reported``, ``OPTIONS``) without it
(``tests/test_cli.py``).
"""

from __future__ import annotations

import dataclasses
import gzip
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Protocol, Sequence, TypeVar, runtime_checkable

import pandas as pd

from ..data.bitext import Bitext
from ..data.collections import LEGACY_FOLD_SCHEME, Collection, fold_bitext, split_dev
from ..data.errors import DataError
from ..data.languages import normalize_lang
from ..data.ntrex import NtrexCorpus
from ..data.trec import Qrels, Run, qrels_text, run_text, write_topics
from ..evaluation.metrics import aggregate, per_query
from ..io import atomic_write, write_csv, write_text

if TYPE_CHECKING:  # only annotations: a task module imports without torch (the parsers read it)
    from ..models.encoder import Encoder

T = TypeVar("T")


@dataclass
class TaskFold:
    """One fold of a task for one language."""

    index: int
    train: Bitext  # what the student may learn from
    dev: Bitext  # model selection only
    eval_key: Any  # what the task needs to score this fold (e.g. the evaluation document ids)


@dataclass
class TaskResult:
    """Run and per-query scores of one sub-task."""

    task: str  # the sub-task name, e.g. "clir", "sentence", "qald"
    run: Run
    per_query: pd.DataFrame
    topics: dict[str, str] | None = None  # the queries scored (written with ``save_results(inputs=True)``)
    qrels: Qrels | None = None
    extra: dict[str, float] = dataclasses.field(default_factory=dict)  # metrics that are no per-query mean (macro-F1)

    @property
    def summary(self) -> dict[str, float]:
        return aggregate(self.per_query) | self.extra


@runtime_checkable
class Task(Protocol):
    name: str
    primary: str  # the headline metric column of the main sub-task, e.g. "MRR@10"
    reported: ClassVar[Mapping[str, Sequence[str]]]  # sub-task -> metric columns the tables show

    def folds(self, lang: str, k: int, seed: int) -> list[TaskFold]: ...

    def evaluate(self, lang: str, fold: TaskFold, teacher: Encoder, student: Encoder) -> dict[str, TaskResult]: ...

    def data_files(self, lang: str) -> list[Path]: ...


class TaskBase:
    """Shared plumbing for task dataclasses: their options and the files they read."""

    OPTIONS: ClassVar[dict[str, str]] = {}  # option field -> command-line help
    # How NTREX document folds pick dev documents (data.collections.FOLD_SCHEMES). The runner sets it
    # from the comparison's plan; direct callers (figures, notebooks) keep the committed results' scheme.
    fold_scheme = LEGACY_FOLD_SCHEME
    # Whether ``optical-lab evaluate`` writes the scored topics and qrels next to the runs: for a
    # user's own collection (trec) yes; for the public datasets they would be copies of the data.
    SAVE_INPUTS: ClassVar[bool] = False

    def options(self) -> dict[str, Any]:
        """The task's settings as saved with a result (its dataclass fields, without name/primary)."""
        if not dataclasses.is_dataclass(self):
            return {}
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.init and f.name not in ("name", "primary") and not f.name.startswith("_")
        }

    def data_files(self, lang: str) -> list[Path]:  # pragma: no cover - every task overrides it
        return []

    def cached(self, kind: str, lang: str, load: Callable[[str], T]) -> T:
        """``load(lang)`` the first time this task object is asked for ``(kind, lang)``, the kept value after:
        a task reads each corpus once, however many cells and folds use it. ``lang`` is normalised first
        (:func:`~optical_lab.data.languages.normalize_lang`: ``ha`` and ``hau`` are one entry); ``kind`` names
        what is kept (``"sib"``, ``"afriqa"``, ...), so one task can keep several things per language. The
        memory is the object's own (not a dataclass field: it is no option, never compared or printed)."""
        memory: dict[tuple[str, str], Any] = self.__dict__.setdefault("_loaded", {})
        key = (kind, normalize_lang(lang))
        if key not in memory:
            memory[key] = load(key[1])
        return memory[key]

    def unavailable(self, lang: str) -> str | None:
        """Why this task cannot evaluate ``lang`` (a missing data file), or None when it can."""
        try:
            files = self.data_files(lang)
        except DataError as exc:  # the problem, on one line (the fix is for the user who asked for the language)
            return str(exc).split("\n  Fix:")[0]
        missing = [f for f in files if not Path(f).is_file()]
        return f"no {missing[0]}" if missing else None

    def eval_texts(
        self, lang: str, fold: TaskFold
    ) -> dict[str, list[str]]:  # pragma: no cover - every task overrides it
        """Every text the fold is scored on (queries, documents, sentences; both languages), by set
        name: what the leak guard compares with the training and dev bitext."""
        raise NotImplementedError

    def eval_fold(self, lang: str, index: int, k: int, seed: int) -> TaskFold:
        """The fold whose evaluation items score a student trained for fold ``index`` of a
        comparison with ``k`` folds (of this or another task): this task's own fold ``index``, or
        its last one when it has fewer (tasks that evaluate the same items in every fold)."""
        folds = self.folds(lang, k, seed)
        return folds[min(index, len(folds) - 1)]


def evaluate_collection(
    name: str,
    collection: Collection,
    query_encoder: Encoder,
    doc_encoder: Encoder,
    measures: tuple[str, ...],
    k: int = 100,
    batch_size: int = 32,
    progress: bool = False,
) -> TaskResult:
    """Dense retrieval over ``collection`` (queries by ``query_encoder``, documents by ``doc_encoder``),
    scored per query with ir_measures: the whole evaluation of a TREC-style sub-task."""
    from ..retrieval.dense import retrieve

    run = retrieve(collection, query_encoder, doc_encoder, k=k, batch_size=batch_size, progress=progress)
    return TaskResult(name, run, per_query(run, collection.qrels, measures), collection.queries, collection.qrels)


def bitext_folds(
    corpus: NtrexCorpus, k: int, seed: int, dev_fraction: float, salt: str, eval_key: Any
) -> list[TaskFold]:
    """Folds of a task that evaluates on the same items in every fold (QALD, a user's TREC collection)
    and trains on NTREX bitext: the folds differ only in the document-level train/dev split, a
    shuffle seeded by ``(salt, seed, fold index)``."""
    folds = []
    for index in range(max(1, k)):
        docs = list(dict.fromkeys(corpus.doc_ids))
        random.Random(f"{salt}-dev-{seed}-{index}").shuffle(docs)
        train, dev = split_dev(docs, dev_fraction)
        folds.append(TaskFold(index, fold_bitext(corpus, train), fold_bitext(corpus, dev), eval_key))
    return folds


def save_results(
    folder: Path, results: Mapping[str, TaskResult], tag: str, compress: bool = True, inputs: bool = False
) -> None:
    """Per sub-task: its TREC run (:func:`optical_lab.data.trec.write_run`), the qrels it was scored
    against (ids and relevance only: small) and its per-query CSV; with ``inputs``, also its topics
    (query texts, when the task kept them). Runs and qrels are gzipped when ``compress``. Any TREC
    tool re-scores a run from these files (``optical-lab export``). The one place results of any task are written."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, result in results.items():
        if inputs and result.topics is not None:
            write_topics(result.topics, folder / f"{name}.topics.tsv")
        texts = {f"{name}.run": run_text(result.run, tag)}
        if result.qrels is not None:  # the qrels it was scored against: any TREC tool re-scores the run
            texts[f"{name}.qrels"] = qrels_text(result.qrels)
        for filename, text in texts.items():  # atomically: a link planted at the path is replaced, never followed
            if compress:
                packed = gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)
                atomic_write(folder / f"{filename}.gz", lambda handle, data=packed: handle.write(data))
            else:
                write_text(text, folder / filename)
        write_csv(result.per_query, folder / f"{name}.per_query.csv", float_format="%.6g")
