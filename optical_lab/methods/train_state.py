"""What a training run carries from step to step, what it returns, and when it must stop (divergence).

:class:`_State` is the trainer's state between steps (step, the best dev score and its weights, the dev
history, the patience rule: :meth:`_State.record`), saved in every checkpoint; :class:`TrainResult` is what
:meth:`optical_lab.methods.trainer.Trainer.train` returns and writes to ``train_summary.json``;
:func:`check_finite` stops a diverged run (:class:`TrainingDiverged`) before a NaN/inf step reaches the weights
(the trainer then returns the best dev state so far, flagged ``diverged``: "Divergence" below).
The names of a run's files (:data:`LOG_NAME`, :data:`SUMMARY_NAME`) live here too: the module imports no torch
(tensors and the encoder are annotations only), so readers of finished runs (``optical-lab stopping``) stay light.

**The training log's precision.** A ``"train"`` record of ``train_log.jsonl`` (one per step) is written at a
declared precision (:func:`logged_step`): its diagnostics — the loss, its terms, the gradient norm, the step's
seconds, the OT plan's indicators (``token_cos``, ``plan_entropy``, ``marginal_error``) — are rounded to
:data:`LOG_DIGITS` significant decimal digits, ``float(f"{x:.4g}")``. Their readers draw curves
(``reports/figures``, ``reports/evidence``, ``export --tensorboard``), average the last 20 steps
(``sweep_tables.last_diagnostics``, ``reports/v2_setup.diagnostics``) or sum and take medians of step times
(``compute_plan``, ``progress``, ``bench_train_step``): none needs more digits.
What is read exactly is never rounded (:data:`EXACT_LOG_KEYS`): the step, the learning rate, the OT problem counts
and the unconverged share (``reports/v3.unconverged`` sums the counts), nor any integral value; nor the ``"dev"``
records (``dev_mrr``, ``best``: model selection and the stopping rule) or the ``"end"`` record. So the committed
log is the very file the trainer wrote (its compaction stores the rounded columns' decimal digits, the ``sig`` form
of :mod:`optical_lab.columns`, losslessly) at about two thirds of the bytes of full float32 digits: compacted
bytes per step of the committed logs, full digits -> 4 digits (``optical-lab plan --grid v3-minilm``'s
measurement, 2026-12-07): OPTICAL 22.7 -> 15.5, OPTICAL+aug 26.6 -> 18.9, code-switch 17.4 -> 9.3, sentence-KD
11.0 -> 7.5, translate-train 10.3 -> 7.4 (3 digits: 12.1 for OPTICAL). The precision is not a training setting:
it enters no configuration or cell fingerprint, and a log written before it (full digits) reads as it always did.

**Divergence** (protocol v3 deviation 2). A step whose loss or gradient norm is not finite is never applied:
:func:`check_finite` raises :class:`TrainingDiverged` before the optimizer step. With dev selection the trainer stops
there and returns the best dev state so far, like any other run (the untrained student when nothing beat it),
flagged: :attr:`TrainResult.diverged` (the one-line message) and ``diverged_step``, a ``"diverged"`` record in the log,
then the ``"end"`` record and ``train_summary.json`` as always; with ``compare --keep-diverged`` (the v3 grids) a grid
cell is then evaluated and flagged in its ``done.json`` (``experiments/runner.py``, ``optical-lab report v3``'s
``diverged_cells``) instead of stopping the grid (without it the comparison stops with the one-line message),
and a sweep run still gets no score (deviation 2, ``experiments/sweep.py``). Its checkpoint is deleted, never kept
as resumable state (not even with ``keep_checkpoint``): a restart before the caller marks the run finished trains it
again from step 0 and diverges at the same step (same seed, same batches: CPU-deterministic). Without dev selection
there is no state to fall back on: the exception propagates. ``stopping.selected_steps`` leaves diverged runs out.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import TrainConfig

if TYPE_CHECKING:
    import torch

    from ..models.encoder import Encoder

LOG_NAME = "train_log.jsonl"  # one line per step, dev evaluation and the end (methods/trainer.py)
SUMMARY_NAME = "train_summary.json"  # TrainResult, written when the run ends
LOG_DIGITS = 4  # significant decimal digits of a logged training step's diagnostics (see the module doc)
# the keys of a "train" record read exactly, never rounded (an objective's auxiliary term "aux_<key>" alike)
EXACT_LOG_KEYS = frozenset({"step", "event", "lr", "ot_not_converged", "ot_problems", "ot_unconverged_share"})


def logged_value(x: float) -> float:
    """``x`` at the log's precision: :data:`LOG_DIGITS` significant decimal digits (non-finite values as they are)."""
    return float(f"{x:.{LOG_DIGITS}g}") if math.isfinite(x) else x


def logged_step(record: dict[str, Any]) -> dict[str, Any]:
    """A ``"train"`` record of the log at its declared precision: every non-integral float whose key (less an
    ``aux_`` prefix) is not in :data:`EXACT_LOG_KEYS` rounded by :func:`logged_value`; any other record as it is.
    Idempotent, so a log written at this precision is its own rounded form."""
    if record.get("event") != "train":
        return record
    return {
        key: logged_value(value)
        if type(value) is float and key.removeprefix("aux_") not in EXACT_LOG_KEYS and not value.is_integer()
        else value
        for key, value in record.items()
    }


def logged_lines(data: bytes) -> bytes:
    """A ``train_log.jsonl`` (written by ``json.dumps`` per record) as the trainer writes it now: its training
    steps at the declared precision (:func:`logged_step`); what ``compute_plan`` measures a log written before
    that at."""
    lines = data.decode("utf-8").splitlines(keepends=True)
    return "".join(
        json.dumps(logged_step(json.loads(line))) + ("\n" if line.endswith("\n") else "") if line.strip() else line
        for line in lines
    ).encode("utf-8")


@dataclass
class TrainResult:
    steps: int  # optimisation steps done
    best_step: int  # step of the selected state (0 = the untrained student)
    best_dev_mrr: float | None
    dev_history: list[tuple[int, float]] = field(default_factory=list)
    resumed_from: int | None = None
    stopped_early: bool = False  # by the patience rule, before the cap
    max_steps: int = 0  # the cap (``TrainConfig.steps``)
    train_pairs: int = 0
    dev_pairs: int = 0
    wall_s: float = 0.0
    mixed_precision: str = "no"
    checkpoints_written: int = 0  # by this process (a resumed run counts its own only)
    checkpoint_bytes: int = 0
    # the selected step lies before the cap: the run reached a dev plateau (or kept the untrained
    # student) instead of still improving at its last step
    selected_before_cap: bool = False
    # a run with dev selection whose step went non-finite (:class:`TrainingDiverged`): its one-line message, and the
    # step that diverged (never applied: the run stopped after step ``diverged_step - 1`` and returned its best dev
    # state). None otherwise, and in a summary written before 2026-12-07 (read as absent: the default)
    diverged: str | None = None
    diverged_step: int | None = None


@dataclass
class _State:
    step: int = 0
    best_step: int = 0
    best_score: float = -math.inf
    best_state: dict[str, torch.Tensor] | None = None
    history: list[tuple[int, float]] = field(default_factory=list)
    bad_evals: int = 0
    stopped: bool = False

    def record(self, step: int, score: float, student: Encoder, patience: int, min_delta: float = 0.0) -> bool:
        """Note dev ``score`` at ``step``; keep the student's state when it is the best so far. An evaluation
        that does not beat the best by more than ``min_delta`` counts against ``patience`` (stopping after
        ``patience`` such evaluations in a row; 0: never), even when it is kept as the new best."""
        self.history.append((step, score))
        progress = score > self.best_score + min_delta or self.best_score == -math.inf
        self.bad_evals = 0 if progress else self.bad_evals + 1
        self.stopped = bool(patience) and self.bad_evals >= patience
        if score > self.best_score:
            self.best_step, self.best_score = step, score
            self.best_state = {k: v.detach().cpu().clone() for k, v in student.state_dict().items()}
            return True
        return False


class TrainingDiverged(FloatingPointError):
    """A training step's loss or gradient is not finite: the run stops there. With dev selection the trainer
    returns its best dev state so far, flagged (``TrainResult.diverged``); without, this propagates."""


def check_finite(loss: float, grad_norm: float, config: TrainConfig) -> None:
    """Raise :class:`TrainingDiverged` (one line: the values and what to change) before a NaN/inf
    step reaches the weights. Rule: never skip such a step silently; the run stops, the
    same on every process (the loss and the norm are the global batch's)."""
    if math.isfinite(loss) and math.isfinite(grad_norm):
        return
    raise TrainingDiverged(
        f"training diverged: loss {loss}, gradient norm {grad_norm} (epsilon "
        f"{config.sinkhorn.epsilon:g}, lr {config.lr:g}, temperature {config.temperature:g}); "
        "the run stopped here - use a larger --epsilon or a smaller --lr"
    )
