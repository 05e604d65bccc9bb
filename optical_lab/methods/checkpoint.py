"""Training checkpoints and logs on disk: what a resume needs, written atomically, read without running code.

A checkpoint holds only what a resume needs, as tensors and plain data (student, optimizer, scheduler, every
RNG state (:func:`_rng_state`), step, best-so-far state unless it is the student itself, dev history), written
atomically (temporary file + rename, :func:`atomic_torch_save`) and read with ``torch.load(weights_only=True)``
(:func:`read_checkpoint`): a crafted ``checkpoint.pt`` in a shared results folder cannot run code, it is refused
with a :class:`~optical_lab.data.errors.DataError`. :class:`_Interrupt` lets the step in flight finish on
SIGINT/SIGTERM so the trainer can checkpoint before the signal takes its normal course;
:func:`complete_log_lines` reads a training log whose last line a kill may have torn. When checkpoints are
written (by wall clock) and how a run resumes from one: :mod:`optical_lab.methods.trainer`.
"""

from __future__ import annotations

import json
import pickle
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator

from ..data.errors import DataError
from ..io import atomic_write
from ..models.encoder import Encoder
from .config import TrainConfig
from .train_state import _State

CHECKPOINT_NAME = "checkpoint.pt"


def _rng_state() -> dict[str, Any]:
    """Every RNG state as tensors and plain data (what ``torch.load(weights_only=True)`` accepts)."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(mt), gauss],
        "numpy": [str(kind), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


CHECKPOINT_KEYS = (
    "step",
    "fingerprint",
    "student",
    "optimizer",
    "scheduler",
    "rng",
    "best_step",
    "best_score",
    "best_state",
    "history",
    "bad_evals",
    "stopped",
)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A training checkpoint, read safely: tensors and plain data only (``weights_only=True``).

    Results folders are shared between people, so a ``checkpoint.pt`` found there is untrusted
    input: a pickle that would import or call anything is refused before any of it runs.
    ``best_state`` is restored to the student's weights when the checkpoint says they are the same.
    """
    fix = (
        "delete it (it only lets a killed run resume; the cell then trains from step 0), "
        "or train into another --out folder"
    )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise DataError(
            "refusing to load this checkpoint: it holds more than tensors and plain data, and "
            f"unpickling it could run code ({str(exc).splitlines()[0][:160]})",
            path=path,
            fix=fix,
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise DataError(f"unreadable checkpoint ({exc})", path=path, fix=fix) from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise DataError(f"not a training checkpoint of this trainer (missing {', '.join(missing)})", path=path, fix=fix)
    if ckpt.get("best_is_student"):
        ckpt["best_state"] = {k: v.clone() for k, v in ckpt["student"].items()}
    return ckpt


class _Interrupt:
    """Catch SIGINT/SIGTERM during training so that the step in flight finishes and a checkpoint is
    written; then the signal is delivered again with the handler that was there before (Ctrl-C still
    raises ``KeyboardInterrupt``, SIGTERM still ends the process). A second signal acts at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        self.signum = signum
        self.restore()

    def __enter__(self) -> "_Interrupt":
        if self.enabled:  # signals someone chose to ignore stay ignored
            self._previous = {
                sig: signal.signal(sig, self._handler)
                for sig in self.SIGNALS
                if signal.getsignal(sig) is not signal.SIG_IGN
            }
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __exit__(self, *exc: Any) -> None:
        self.restore()

    def deliver(self) -> None:
        """Re-deliver the caught signal; never return normally (the run did not finish)."""
        if self.signum is not None:
            self.restore()
            signal.raise_signal(self.signum)
            raise KeyboardInterrupt(f"training interrupted by signal {self.signum}; resumable from its checkpoint")


def complete_log_lines(path: Path) -> list[str]:
    """The JSON lines of a training log, without a torn last line (a kill in the middle of a write:
    the checkpoint is fine, only that line is lost). A damaged line elsewhere is a :class:`DataError`."""
    lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    for number, line in enumerate(lines, start=1):
        try:
            json.loads(line)
        except ValueError:
            if number == len(lines):
                return lines[:-1]
            raise DataError(
                "damaged training-log line",
                path=path,
                line=number,
                fix="delete the cell folder (or re-run with --no-resume) to train it again",
            ) from None
    return lines


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a uniquely named temporary file, flushed to disk, then renamed over ``path``
    (:func:`optical_lab.io.atomic_write`)."""
    atomic_write(path, lambda handle: torch.save(obj, handle))


def save_checkpoint(path: Path, state: _State, student: Encoder, optimizer, scheduler, fingerprint: str) -> None:
    """Write everything a resume needs (:data:`CHECKPOINT_KEYS`) to ``path``, atomically."""
    best_is_student = state.best_state is not None and state.best_step == state.step
    atomic_torch_save(
        {
            "step": state.step,
            "fingerprint": fingerprint,
            "student": student.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": _rng_state(),
            "best_step": state.best_step,
            "best_score": state.best_score,
            # the selected weights only when they differ from the student's (saves a model's size)
            "best_state": None if best_is_student else state.best_state,
            "best_is_student": best_is_student,
            "history": [list(h) for h in state.history],
            "bad_evals": state.bad_evals,
            "stopped": state.stopped,
        },
        path,
    )


def load_checkpoint(path: Path, fingerprint: str, student: Encoder, optimizer, scheduler) -> _State:
    """Restore the student, optimizer, scheduler and every RNG from ``path``; the run's state to go on from.
    A checkpoint of another training configuration (``fingerprint``) is a :class:`DataError`."""
    ckpt = read_checkpoint(path)
    if ckpt["fingerprint"] != fingerprint:
        raise DataError(
            "this checkpoint was written with another training configuration",
            path=path,
            fix="delete it or train into another folder",
        )
    student.load_state_dict(ckpt["student"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    _set_rng_state(ckpt["rng"])
    return _State(
        ckpt["step"],
        ckpt["best_step"],
        ckpt["best_score"],
        ckpt["best_state"],
        [tuple(h) for h in ckpt["history"]],
        ckpt["bad_evals"],
        ckpt["stopped"],
    )


def checkpoint_due(step: int, last_save: float, config: TrainConfig, accelerator: Accelerator) -> bool:
    """Whether to checkpoint after ``step``: wall clock (or every N steps), never after the last step
    (the run is about to finish); every process takes the same decision."""
    if not config.checkpoint_every or step >= config.steps:
        return False
    if config.checkpoint_seconds <= 0:
        return step % config.checkpoint_every == 0
    due = time.monotonic() - last_save >= config.checkpoint_seconds
    if accelerator.num_processes > 1:  # clocks differ between processes: follow the slowest
        due = bool(
            accelerator.reduce(torch.tensor([float(due)], device=accelerator.device), reduction="sum").item() > 0
        )
    return due
