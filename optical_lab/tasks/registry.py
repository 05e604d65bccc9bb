"""Task name -> task class: the one list the runner, the ``evaluate`` and ``compare`` commands and
the summary tables read. Adding a task is one module plus one line here (a task on a downloadable
dataset: also one :class:`~optical_lab.data.sources.Source`; docs/architecture.md, the recipes).

The evaluation suite of issue #12 is ``SUITE``: NTREX known-item CLIR and sentence retrieval,
FLORES-200 sentence retrieval and SIB-200 topic classification. ``ntrex`` (``clir`` + ``sentence``
in one task) is what the committed comparisons ran; ``ntrex-sentence`` is the older spelling of
``ntrex-sentences`` (:data:`ALIASES`: deprecated names, still accepted with a ``FutureWarning``).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

from ..data.errors import DataError
from .afriqa_passages import AfriqaPassagesTask
from .afriqa_questions import AfriqaQuestionsTask
from .base import Task
from .flores_sentences import FloresSentencesTask
from .irds import IrdsTask
from .ntrex import NtrexClirTask, NtrexTask
from .ntrex_mining import NtrexMiningTask
from .ntrex_sentence import NtrexSentenceTask
from .qald import QaldTask
from .sib_topics import SibTopicsTask
from .tico_sentences import TicoSentencesTask
from .trec import TrecTask

TASKS: dict[str, type] = {
    "ntrex": NtrexTask,
    "ntrex-clir": NtrexClirTask,
    "ntrex-sentences": NtrexSentenceTask,
    "flores-sentences": FloresSentencesTask,
    "sib-topics": SibTopicsTask,
    "afriqa-passages": AfriqaPassagesTask,
    "afriqa-questions": AfriqaQuestionsTask,
    "tico-sentences": TicoSentencesTask,
    "qald": QaldTask,
    "trec": TrecTask,
    "irds": IrdsTask,
    "ntrex-mining": NtrexMiningTask,
}
ALIASES = {"ntrex-sentence": "ntrex-sentences"}  # deprecated name -> name
SUITE = ("ntrex-clir", "ntrex-sentences", "flores-sentences", "sib-topics")


def task_name(name: str) -> str:
    """The registry name of ``name`` (a deprecated alias resolved, with a warning), or a clear error."""
    name = name.strip()
    if name in ALIASES:
        warnings.warn(f"task {name!r} is deprecated: use {ALIASES[name]!r}", FutureWarning, stacklevel=2)
        name = ALIASES[name]
    if name not in TASKS:
        raise DataError(
            f"unknown task {name!r}", fix=f"use one of: {', '.join(TASKS)} (or 'suite' = {','.join(SUITE)})"
        )
    return name


def parse_tasks(text: str) -> list[str]:
    """``"ntrex-clir, sib-topics"`` or ``"suite"`` -> registry names, in order, each once."""
    names: list[str] = []
    for part in text.split(","):
        if part.strip():
            names += list(SUITE) if part.strip() == "suite" else [task_name(part)]
    if not names:
        raise DataError(f"no task in {text!r}", fix=f"e.g. --tasks {','.join(SUITE)}")
    return list(dict.fromkeys(names))


def get_task(name: str, **options: Any) -> Task:
    """A task object by registry name (or alias), with those of ``options`` that are its fields
    (``None`` = default). Options of other tasks are ignored, so one option set can configure a
    comparison's training task and its evaluation tasks; the command line refuses an option that
    none of its tasks has.

    >>> from optical_lab import get_task
    >>> task = get_task("ntrex-clir")
    >>> task.name, task.primary, task.reported
    ('ntrex-clir', 'MRR@10', {'clir': ['MRR@10', 'nDCG@10', 'MAP']})
    """
    cls = TASKS[task_name(name)]
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    return cls(**{k: v for k, v in options.items() if v is not None and k in fields})


def reported_metrics() -> dict[str, list[str]]:
    """Sub-task -> the metric columns the tables report, over every registered task."""
    out: dict[str, list[str]] = {}
    for cls in TASKS.values():
        for sub, metrics in cls.reported.items():
            out.setdefault(sub, list(metrics))
    return out


def cli_options() -> dict[str, str]:
    """Option field -> help, over every registered task (``compare``/``evaluate`` offer ``--<field>``)."""
    out: dict[str, str] = {}
    for cls in TASKS.values():
        out.update(cls.OPTIONS)
    return out
