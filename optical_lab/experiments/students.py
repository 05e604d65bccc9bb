"""Training one student outside a comparison: what notebooks, figures, the explorers and
``optical-lab train`` share.

:func:`distilled_student` trains (or loads from the user cache) the student of one language and
method on an NTREX fold, exactly as a comparison cell does (same folds, same training-pair
subsample, same trainer: :func:`optical_lab.methods.trainer.train_student`); :func:`notebook_config`
is the comparison's training configuration, or a few steps in small mode (``OPTICAL_LAB_SMALL=1``,
the notebook tests).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..io import read_jsonl
from ..methods.trainer import train_student
from ..models.encoder import Encoder
from .cache import ResultFolder, fingerprint_of

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ..methods import TrainConfig
    from ..methods.trainer import TrainResult
    from ..tasks.base import TaskFold

SMALL_ENV = "OPTICAL_LAB_SMALL"


def small_mode() -> bool:
    """``OPTICAL_LAB_SMALL=1``: the small configuration (few steps, few documents) used by the
    notebook tests; unset or ``0`` runs the notebooks at the comparison's default size."""
    return os.environ.get(SMALL_ENV, "").strip().lower() not in ("", "0", "false", "no")


def notebook_config(**overrides) -> "TrainConfig":
    """Training settings for notebooks and figures: the comparison's defaults, or a few steps on a
    few hundred pairs in small mode (about half a minute on 2 CPU cores)."""
    from ..methods import TrainConfig

    small = (
        dict(
            steps=12,
            batch_size=8,
            warmup_steps=2,
            max_train_pairs=240,
            max_dev_pairs=64,
            eval_every=6,
            checkpoint_every=0,
            n_iters=30,
        )
        if small_mode()
        else {}
    )  # n_iters: TrainConfig.sinkhorn's
    return TrainConfig(progress=False, checkpoint_every=0).replace(**{**small, **overrides})


def read_train_log(folder: str | Path) -> "pd.DataFrame":
    """The trainer's ``train_log.jsonl`` as a DataFrame (train steps and dev evaluations)."""
    import pandas as pd

    return pd.DataFrame(read_jsonl(Path(folder) / "train_log.jsonl"))  # plain or compacted (optical_lab.io)


@dataclass
class DistilledStudent:
    """A trained student with what produced it."""

    student: Encoder
    lang: str
    method: str
    fold: "TaskFold"
    config: "TrainConfig"
    folder: Path  # train_log.jsonl, train_summary.json, (cached) student.pt, done.json
    result: dict

    @property
    def log(self) -> "pd.DataFrame":
        return read_train_log(self.folder)


def student_key(
    teacher: Encoder, lang: str, method: str, config: "TrainConfig", fold: int = 0, n_folds: int = 2
) -> str:
    """What a cached student is: language, method, fold, teacher and training configuration."""
    return f"{lang}-{method}-fold{fold}of{n_folds}-{teacher.name or 'teacher'}-{config.fingerprint()}"


def student_folder(
    teacher: Encoder, lang: str, method: str, config: "TrainConfig", fold: int = 0, n_folds: int = 2
) -> Path:
    """Where :func:`distilled_student` keeps a student: ``<cache>/students/<key>/`` (outside the repository)."""
    from ..data.paths import cache_dir

    return cache_dir() / "students" / student_key(teacher, lang, method, config, fold, n_folds)


def save_student(student: Encoder, folder: str | Path) -> Path:
    """Write the student's weights to ``folder/student.pt`` atomically (what the cache reads)."""
    from ..methods.trainer import atomic_torch_save

    path = Path(folder) / "student.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(student.state_dict(), path)
    return path


def distilled_student(
    teacher: Encoder,
    lang: str,
    method: str = "optical",
    config: "TrainConfig | None" = None,
    fold: int = 0,
    n_folds: int = 2,
    cache: bool = True,
    force: bool = False,
    folder: str | Path | None = None,
) -> DistilledStudent:
    """Train (or load from the cache) a student for ``lang`` with the project's trainer.

    Exactly what a comparison cell does (same folds, same training-pair subsample, same trainer),
    so with the comparison's config this rebuilds that cell's student. It trains on fold
    ``fold``'s training documents only: align and retrieve on the fold's evaluation documents
    (``result.fold.eval_key``), which it never saw. Students are cached (:func:`student_folder`)
    so the notebooks, explorers and figures share one training run; ``force`` retrains. Processes that
    ask for the same student at the same time (two notebooks, the figures command, an explorer) take turns
    on the folder's lock: the first trains, the others wait and load its result. The folder is a
    :class:`~.cache.ResultFolder` keyed by :func:`student_key`: a ``folder`` holding another student is refused.
    """
    config = config or notebook_config()
    key = student_key(teacher, lang, method, config, fold, n_folds)
    folder = Path(folder) if folder is not None else student_folder(teacher, lang, method, config, fold, n_folds)
    store = student_store(folder, key)
    with store.lock(wait=STUDENT_LOCK_WAIT):
        return _distilled_student(teacher, lang, method, config, fold, n_folds, cache, force, store)


def student_store(folder: Path, key: str) -> ResultFolder:
    """The student cache ``folder`` as a :class:`~.cache.ResultFolder` keyed by :func:`student_key`."""
    return ResultFolder(
        folder, fingerprint_of({"student": key}), what="a student", fix="pass another folder, or force=True to retrain"
    )


def keep_student(
    student: Encoder,
    result: "TrainResult",
    teacher: Encoder,
    lang: str,
    method: str,
    config: "TrainConfig",
    fold: int = 0,
    n_folds: int = 2,
    folder: str | Path | None = None,
) -> Path:
    """Put a student trained on NTREX fold ``fold`` into the cache (weights, then ``done.json``) so that
    :func:`distilled_student` serves it (notebook 01 trains its student step by step, then keeps it)."""
    key = student_key(teacher, lang, method, config, fold, n_folds)
    store = student_store(Path(folder) if folder else student_folder(teacher, lang, method, config, fold, n_folds), key)
    save_student(student, store.folder)
    store.finish({"lang": lang, "method": method, "fold": fold, "n_folds": n_folds, "result": asdict(result)})
    return store.folder


STUDENT_LOCK_WAIT = 3600.0  # seconds a process waits for another that trains the same student


def _distilled_student(
    teacher: Encoder,
    lang: str,
    method: str,
    config: "TrainConfig",
    fold: int,
    n_folds: int,
    cache: bool,
    force: bool,
    store: ResultFolder,
) -> DistilledStudent:
    from ..tasks.registry import get_task

    task_fold = get_task("ntrex").folds(lang, n_folds, seed=0)[fold]
    folder, weights = store.folder, store.folder / "student.pt"
    if force or not cache:
        store.reopen()  # retrained: a crash from here on leaves no finished record of the old student
    finished = store.read()
    if finished is not None and weights.exists():
        student = teacher.copy()
        student.load_state_dict(torch.load(weights, map_location=student.device, weights_only=True))
        student.eval()
        return DistilledStudent(student, lang, method, task_fold, config, folder, finished["result"])
    student, _, result = train_student(
        teacher, teacher, method, task_fold.train, task_fold.dev, config, out_dir=folder, desc=f"{method} {lang}"
    )  # the comparison cell's pairs
    if cache:
        keep_student(student, result, teacher, lang, method, config, fold, n_folds, folder)
    student.eval()
    return DistilledStudent(student, lang, method, task_fold, config, folder, asdict(result))
