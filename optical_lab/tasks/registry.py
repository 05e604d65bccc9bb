"""Task name -> task class: the one list the runner, the ``evaluate`` and ``compare`` commands and
the summary tables read. Adding a task is one module plus one line here."""
from __future__ import annotations

from typing import Any

from ..data.errors import DataError
from .base import Task
from .ntrex import NtrexTask
from .ntrex_sentence import NtrexSentenceTask
from .qald import QaldTask
from .trec import TrecTask

TASKS: dict[str, type] = {
    "ntrex": NtrexTask,
    "ntrex-sentence": NtrexSentenceTask,
    "qald": QaldTask,
    "trec": TrecTask,
}


def get_task(name: str, **options: Any) -> Task:
    """A task object by registry name, with its options (dataclass fields; ``None`` = default)."""
    if name not in TASKS:
        raise DataError(f"unknown task {name!r}", fix=f"use one of: {', '.join(TASKS)}")
    return TASKS[name](**{k: v for k, v in options.items() if v is not None})


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
