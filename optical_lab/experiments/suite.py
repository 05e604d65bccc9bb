"""What a comparison trains on and what it is judged on: a user's bitext, the evaluation tasks, the leak guard.

The comparison runner (:mod:`.runner`) calls these; they are kept apart from its cell loop.

* **User bitext** (``compare --bitext pairs.tsv`` or ``--bitext-en E --bitext-xx X``): read with the
  data layer's strict loaders (:mod:`optical_lab.data.user_bitext`), then split once into train and
  dev by the one train/dev rule (:func:`optical_lab.data.collections.split_dev`, each line its own
  "document", shuffled by ``fold_seed``). Every fold trains on the same split: a user's bitext has
  no folds, the evaluation items of each fold do.
* **Evaluation tasks** (``compare --eval-tasks ...``): every trained student is evaluated on the
  training task *and* on each evaluation task that has the language ("train once, evaluate
  everywhere"). Each evaluation task scores its own fold of the same index
  (:meth:`optical_lab.tasks.base.TaskBase.eval_fold`), so NTREX tasks of one comparison evaluate
  the same documents; a task whose sub-tasks the cell already has is not run twice.
* **Leak guard**: before anything is trained or written, every (language, fold)'s training and dev
  bitext (both sides) is compared with every text its student will be scored on, over all tasks
  (:func:`optical_lab.data.leakage.measure_overlap`: exact and normalised). Above ``allow_overlap``
  evaluation texts per (language, fold) the run is refused; otherwise the counts go to
  ``<out>/leakage.json``. Its dev bitext is also compared with the texts only the comparison's
  *other* folds are scored on: that is model selection reading another fold's test items, which the
  ``held-out-dev`` fold scheme rules out and the committed results' ``per-fold-dev`` scheme has; it is
  recorded and printed as a note, not refused, so the committed comparisons stay reproducible.
  The default allowance, :data:`DEFAULT_ALLOWED_OVERLAP` = 2, is what NTREX itself has: one
  sentence occurs in two documents (with and without a quotation mark), so a fold can train on the
  twin of one evaluation sentence, on the English and, for ``eng``, the target side.
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from tqdm.auto import tqdm

from ..data.bitext import Bitext
from ..data.collections import split_dev
from ..data.errors import DataError
from ..data.languages import known_languages
from ..data.leakage import LeakReport, measure_overlap
from ..data.user_bitext import load_bitext_files, load_bitext_tsv
from ..tasks.base import Task, TaskFold, TaskResult

if TYPE_CHECKING:
    from ..models.encoder import Encoder

DEFAULT_ALLOWED_OVERLAP = 2
USER_DEV_FRACTION = 0.1


# ------------------------------------------------------------------ a user's bitext
@lru_cache(maxsize=4)
def load_user_bitext(files: tuple[str, ...], lang: str) -> Bitext:
    """One TSV (``english<TAB>foreign``) or two line-aligned files, strictly validated."""
    if len(files) == 1:
        return load_bitext_tsv(files[0], lang)
    if len(files) == 2:
        return load_bitext_files(files[0], files[1], lang)
    raise DataError(
        f"a user bitext is one TSV file or two line-aligned files, not {len(files)} files",
        fix="--bitext pairs.tsv, or --bitext-en english.txt --bitext-xx foreign.txt",
    )


def split_user_bitext(bitext: Bitext, seed: int, dev_fraction: float = USER_DEV_FRACTION) -> tuple[Bitext, Bitext]:
    """(train, dev): each distinct pair is its own document for :func:`split_dev`, shuffled by ``seed``;
    a repeated pair goes where its first occurrence goes, so no dev pair is a copy of a training pair
    (a bitext without repeats splits exactly as before repeats were grouped)."""
    groups: dict[int, list[int]] = {}
    first: dict[tuple[str, str], int] = {}
    for index, pair in enumerate(zip(bitext.english, bitext.foreign)):
        groups.setdefault(first.setdefault(pair, index), []).append(index)
    lines = [str(i) for i in groups]
    random.Random(f"user-bitext-{seed}").shuffle(lines)
    train, dev = split_dev(lines, dev_fraction)

    def rows(ids: list[str]) -> list[int]:
        return sorted(j for i in ids for j in groups[int(i)])

    return bitext.select(rows(train)), bitext.select(rows(dev))


# ------------------------------------------------------------------ evaluation tasks
def evaluate_everywhere(
    task: Task,
    eval_tasks: Mapping[str, Task],
    lang: str,
    fold: TaskFold,
    k: int,
    seed: int,
    teacher: Encoder,
    student: Encoder,
) -> dict[str, TaskResult]:
    """The training task's results on ``fold``, then each evaluation task's on its own fold
    ``fold.index`` (tasks lacking ``lang``, or whose sub-tasks are already there, are skipped)."""
    results = dict(task.evaluate(lang, fold, teacher, student))
    for name, other in eval_tasks.items():
        if set(other.reported) <= set(results) or other.unavailable(lang):
            continue
        for sub, result in other.evaluate(lang, other.eval_fold(lang, fold.index, k, seed), teacher, student).items():
            results.setdefault(sub, result)
    return results


def skipped_eval_tasks(eval_tasks: Mapping[str, Task], langs: Iterable[str]) -> list[str]:
    """One line per (evaluation task, language) the task cannot evaluate, saying why."""
    return [
        f"{name} skips {lang}: {reason}"
        for name, other in eval_tasks.items()
        for lang in langs
        if (reason := other.unavailable(lang))
    ]


# ------------------------------------------------------------------ leak guard
def fold_eval_texts(
    task: Task, eval_tasks: Mapping[str, Task], lang: str, fold: TaskFold, k: int, seed: int
) -> dict[str, list[str]]:
    """Every text a student of ``fold`` is scored on, by ``<task>: <set>``."""
    texts = {f"{task.name}: {name}": list(values) for name, values in task.eval_texts(lang, fold).items()}
    for name, other in eval_tasks.items():
        if other.unavailable(lang):
            continue
        own = other.eval_fold(lang, fold.index, k, seed)
        texts.update({f"{name}: {set_name}": list(values) for set_name, values in other.eval_texts(lang, own).items()})
    return texts


def leak_reports(
    task: Task,
    eval_tasks: Mapping[str, Task],
    lang: str,
    folds: list[TaskFold],
    bitexts: list[tuple[Bitext, Bitext, str]],
    k: int,
    seed: int,
) -> list[tuple[LeakReport, LeakReport]]:
    """Per fold: (training + dev bitext vs the fold's evaluation texts, dev bitext vs the texts only
    the comparison's other folds are scored on)."""
    evaluation = [fold_eval_texts(task, eval_tasks, lang, fold, k, seed) for fold in folds]
    reports = []
    for i, (fold, (train, dev, source)) in enumerate(zip(folds, bitexts)):
        own = {t for texts in evaluation[i].values() for t in texts}
        others = {
            f"fold {j} {name}": [t for t in texts if t not in own]
            for j, sets in enumerate(evaluation)
            if j != i
            for name, texts in sets.items()
        }
        reports.append(
            (
                measure_overlap([train, dev], evaluation[i], f"{source} train+dev (fold {fold.index})"),
                measure_overlap(dev, {n: t for n, t in others.items() if t}, f"{source} dev (fold {fold.index})"),
            )
        )
    return reports


def guard(reports: Mapping[str, list[tuple[LeakReport, LeakReport]]], allow_overlap: int) -> dict[str, Any]:
    """Refuse (a :class:`DataError`) when a (language, fold)'s training/dev bitext holds more than
    ``allow_overlap`` of the texts its student is scored on; else the JSON record of every count
    (without the leaked texts themselves: a results folder holds no copy of the data)."""
    record: dict[str, Any] = {"allow_overlap": allow_overlap, "normalisation": None, "langs": {}}
    for lang, per_fold in reports.items():
        for index, (own, cross) in enumerate(per_fold):
            try:
                own.check(allow_overlap)
            except DataError as exc:
                problem = str(exc).split("\n  Fix:")[0]
                raise DataError(f"leak guard, {lang} fold {index}: {problem}", fix=exc.fix) from None
            entries = []
            for report in (own, cross):
                data = report.to_dict()
                record["normalisation"] = data.pop("normalisation")
                for s in data["sets"]:
                    s.pop("examples")
                entries.append(data)
            if cross.leaked:
                tqdm.write(
                    f"note: {lang} fold {index} selects its student on {cross.leaked} texts other folds are "
                    "scored on (fold scheme per-fold-dev; --fold-scheme held-out-dev avoids it)"
                )
            record["langs"].setdefault(lang, []).append(
                {
                    "fold": index,
                    "leaked": own.leaked,
                    "dev_leaked_to_other_folds": cross.leaked,
                    "train_and_dev_vs_this_fold": entries[0],
                    "dev_vs_other_folds": entries[1],
                }
            )
    return record


def note_skips(lines: list[str]) -> None:
    for line in lines:
        tqdm.write(f"note: {line}")


# ------------------------------------------------------------------ the leak survey of evaluation tasks
def training_sources(lang: str) -> dict[str, Bitext]:
    """Every training and dev bitext a comparison may use for ``lang`` in this data folder (by name):
    MAFAND-MT train and dev, NTREX (all documents: its folds train and select on subsets), FLORES-200
    train and dev (``--flores-split test``, ``sib-topics``) and AfriQA's train and dev question pairs
    (``--afriqa-split test``). A user's own bitext is checked by the runner's guard when it is given."""
    from ..data.afriqa import afriqa_languages
    from ..data.mafand import has_mafand, load_mafand
    from ..data.ntrex import load_ntrex
    from ..data.sib import sib_languages
    from ..tasks.afriqa_questions import AfriqaTaskBase
    from ..tasks.flores_sentences import SibTaskBase

    known = known_languages().get(lang)
    sources: dict[str, Bitext] = {}
    if has_mafand(lang):
        sources.update({f"mafand-mt {split}": load_mafand(lang, split) for split in ("train", "dev")})
    if known is not None and "ntrex-128" in known.datasets:
        sources["ntrex-128"] = load_ntrex(lang).bitext()
    if lang in sib_languages():
        sources.update({f"flores-200 {split}": SibTaskBase().bitext(lang, (split,)) for split in ("train", "dev")})
    if lang in afriqa_languages():
        sources.update(
            {f"afriqa {split} questions": AfriqaTaskBase().question_bitext(lang, split) for split in ("train", "dev")}
        )
    return sources


def survey_overlap(tasks: Mapping[str, Task], langs: Iterable[str]) -> list[dict[str, Any]]:
    """One row per (language, training source, evaluation set of a task): how many of the set's texts
    occur in that training/dev bitext (both sides), exactly and normalised
    (:func:`optical_lab.data.leakage.measure_overlap`). A source that *is* the evaluated data (AfriQA
    questions for an AfriQA task evaluating every split) is not compared with it: that task's students
    never train on it (:mod:`optical_lab.tasks.afriqa_questions`)."""
    rows = []
    for lang in langs:
        evaluation = {
            name: task.eval_texts(lang, task.eval_fold(lang, 0, 1, 0))
            for name, task in tasks.items()
            if not task.unavailable(lang)
        }
        for source, bitext in training_sources(lang).items():
            for name, sets in evaluation.items():
                if (
                    source.startswith("afriqa")
                    and name.startswith("afriqa")
                    and getattr(tasks[name], "afriqa_split", "") == "all"
                ):
                    continue
                for overlap in measure_overlap(bitext, sets, source).sets:
                    rows.append(
                        {
                            "lang": lang,
                            "train": source,
                            "task": name,
                            "set": overlap.name,
                            "texts": overlap.n_texts,
                            "exact": overlap.exact,
                            "normalised": overlap.normalised,
                        }
                    )
    return rows
