"""The one training loop, for every objective.

``Trainer(student, teacher, objective, train, dev, config, out_dir).train()`` runs AdamW with a
linear warm-up (then linear decay), gradient clipping and seeded, resumable batches, through
:class:`accelerate.Accelerator` (CPU by default, CUDA when present).

* **Data-parallel** (``torchrun --nproc_per_node N -m optical_lab.cli compare ...`` or
  ``accelerate launch --multi_gpu --num_processes N -m optical_lab.cli compare ...``; on CPU too,
  with gloo): the student and the objective are one module (:class:`StepModule`) that
  ``accelerator.prepare`` wraps in DistributedDataParallel, and the optimizer is prepared with it.
  Every process draws the same *global* batch of ``batch_size`` pairs and trains on its share
  (pairs ``rank::N``); its loss is weighted by its share of the pairs, so the averaged gradient is
  the gradient of the global batch's mean loss, as in one process. The logged loss (and each
  logged term) is that of the global batch, written once, by the main process. The scheduler is
  not prepared: accelerate would step it once per process per step, while one step here is one
  global batch. What differs from one process: dropout masks (each process draws its own, as in
  any DDP run), float summation order, and in-batch negatives (translate-train, code-switch and
  optical+aug contrast each pair with the pairs of its own share only). For OPTICAL and
  sentence-KD with dropout off, 2 processes follow the 1-process loss trajectory and select the
  same step (``tests/experiments/test_data_parallel.py``). ``accelerate launch --cpu --num_processes N``
  starts *one* process (accelerate runs several CPU processes only through MPI): refused, with
  the commands that work.

* **Model selection** on the held-out *dev bitext* only: every ``eval_every`` steps the dev sentence-retrieval MRR
  (teacher English -> student foreign, the direction of the evaluation) is computed and the best student state is
  kept; the untrained student (step 0) is a candidate, so training that does not help on dev falls back to the
  starting point. Optional early stopping. With ``TrainConfig.dev_distractors`` (protocol v3) the score is foreign ->
  English among the dev English plus that many English distractors (:func:`dev_mrr`).
* **Divergence** (a non-finite loss or gradient): with dev selection the run stops and returns its best dev state so
  far, flagged ``TrainResult.diverged``; without, it raises (:mod:`~optical_lab.methods.train_state`, "Divergence").
* **Logs**: one JSON line per step (loss, its terms, lr, gradient norm, seconds) and per dev evaluation in
  ``train_log.jsonl``; ``train_summary.json`` at the end. A step's diagnostics are logged at
  :data:`~optical_lab.methods.train_state.LOG_DIGITS` significant digits, the counts, lr and dev scores exactly
  (:func:`~optical_lab.methods.train_state.logged_step`).
* **Checkpoints** by wall clock: one when ``checkpoint_seconds`` passed since the last one (a run killed at any point
  loses at most that much work), one when the run is interrupted by SIGINT/SIGTERM (the step in flight finishes first,
  then the signal takes its normal course), and the final state with ``keep_checkpoint``. Not every N steps: a default
  cell trains for about a minute, and a 270 MB checkpoint every 8 steps made ``make demo`` write ~7 GB for 2 MB of
  results. ``checkpoint_seconds=0`` writes one every ``checkpoint_every`` steps instead (tests); ``checkpoint_every=0``
  disables them. What a checkpoint holds and how it is written and read safely: :mod:`optical_lab.methods.checkpoint`. A
  resumed run finishes with the same step count and bit-identical weights as an uninterrupted run (CPU; the batch of
  step ``s`` is a pure function of ``(seed, s)``, :mod:`optical_lab.methods.batches`, so no sampler state is needed).
* **Batches** are reshuffled every epoch and, by default, grouped by length (less padding).
* **Modules**: the accelerator (:mod:`~optical_lab.methods.accelerator`), batches
  (:mod:`~optical_lab.methods.batches`), trainable weights and the optimizer (:mod:`~optical_lab.methods.optimizer`),
  checkpoints (:mod:`~optical_lab.methods.checkpoint`) and the run's state (:mod:`~optical_lab.methods.train_state`)
  live beside this one; here are the step, the loop, its dev evaluation and :func:`train_student`.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from ..data.bitext import Bitext
from ..data.mafand import dev_distractor_pool
from ..io import atomic_write, write_json
from ..models.encoder import Encoder, as_role, similarity
from .accelerator import make_accelerator
from .base import Objective
from .batches import batch_indices
from .checkpoint import (
    CHECKPOINT_NAME,
    _Interrupt,
    atomic_torch_save,  # noqa: F401  (experiments/students.py imports it from here)
    checkpoint_due,
    complete_log_lines,
    load_checkpoint,
    save_checkpoint,
)
from .config import TrainConfig
from .optimizer import clip_gradients, make_optimizer, make_trainable
from .registry import build_objective
from .teacher import FrozenTeacher, truncation
from .train_state import LOG_NAME, SUMMARY_NAME, TrainingDiverged, TrainResult, _State, check_finite, logged_step


@torch.no_grad()
def retrieval_mrr(queries: torch.Tensor, documents: torch.Tensor) -> float:
    """MRR when query i's only relevant document is document i (normalised embeddings).

    Scored by :func:`~optical_lab.retrieval.dense.similarity` (float32 under any autocast: a bf16 product
    inflated the untrained student's dev score by up to 0.025 MRR when the comparison runner computed it
    inside its autocast region). A tie with the relevant document (a duplicate dev sentence, a collapsed
    student) takes the mean of the tied ranks, so it neither helps nor hurts (before 2026-11-27 ties
    counted for the relevant document).

    A non-finite score (a diverged student) never helps: a query whose relevant document scores NaN
    or ±inf ranks it last (rank n), and any other NaN document ranks below every finite one (NaN
    compared as "not greater" used to give rank 0.5, i.e. MRR 2.0, and the diverged student won)."""
    scores = similarity(queries, documents)
    scores = torch.nan_to_num(scores, nan=-math.inf)
    gold = scores.diagonal()[:, None]
    rank = (scores > gold).sum(1) + ((scores == gold).sum(1) - 1) / 2 + 1
    rank = torch.where(torch.isfinite(gold[:, 0]), rank, float(scores.shape[1]))
    return float((1.0 / rank).mean())


def dev_mrr(english: torch.Tensor, foreign: torch.Tensor, distractors: torch.Tensor | None = None) -> float:
    """The dev selection score (:func:`retrieval_mrr`) of the teacher's ``english`` and the student's ``foreign``
    embeddings of the dev sample's pairs. Without ``distractors``: each English sentence ranks its foreign one
    among the sample's foreign sentences (protocols v1/v2). With ``distractors`` (the teacher's embeddings of
    ``TrainConfig.dev_distractors`` English sentences, protocol v3): each foreign sentence ranks its English among
    the sample's English *and* the distractors, a score that is not at its ceiling for a strong student."""
    if distractors is None:
        return retrieval_mrr(english, foreign)
    return retrieval_mrr(foreign, torch.cat([english, distractors.to(english.device)]))


# logged terms named ``*not_converged`` count problems in the batch (summed over processes under
# data-parallel); every other term is averaged over processes weighted by their pairs: exact for the
# loss terms (means over pairs), approximate for diagnostics averaged over tokens (plan_entropy)
COUNT_SUFFIX = "not_converged"


class StepModule(torch.nn.Module):
    """The student and the objective as one module: its forward is the objective's loss on a batch.

    Objectives call the student's own methods (``tokens``, ``pool``), not its ``forward``; DDP
    synchronises the gradients of a forward that ran through its wrapper only, so it is this module
    that ``accelerator.prepare`` wraps. The teacher is frozen and kept out of the module's
    parameters (nothing of it is broadcast or synchronised).
    """

    def __init__(self, student: Encoder, objective: Objective, teacher: FrozenTeacher) -> None:
        super().__init__()
        self.student, self.objective = student, objective
        self.__dict__["teacher"] = teacher  # not a submodule

    def forward(self, english: Sequence[str], foreign: Sequence[str]) -> torch.Tensor:
        return self.objective(self.student, self.teacher, english, foreign)


def train_step(
    student: Encoder,
    teacher: FrozenTeacher,
    objective: Objective,
    english: Sequence[str],
    foreign: Sequence[str],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    accelerator: Accelerator,
    config: TrainConfig,
    model: torch.nn.Module | None = None,
    share: tuple[int, int] | None = None,
) -> tuple[float, float]:
    """One optimisation step (forward, backward, gradient sync + clipping, AdamW, schedule).

    ``model``: the prepared :class:`StepModule` (DDP under data-parallel; built here when None).
    ``share``: (pairs this process trains on, pairs of the global batch) when ``english``/``foreign``
    are this process's share of a global batch (a share of 0 pairs passes one pair with weight 0:
    every process must take part in the gradient exchange).
    Returns (loss of the global batch, gradient norm before clipping), the same on every process;
    ``objective.last_logs`` is set to the global batch's terms. Used by :class:`Trainer` and the benchmark.
    """
    student.train()
    student.dropout_draws = config.dropout_draws  # the masks an unpadded forward draws (models/unpadded.py)
    model = model if model is not None else StepModule(student, objective, teacher)
    here, total = share if share is not None else (len(foreign), len(foreign))
    with truncation(student, config.max_length), as_role(student, config.training_role), accelerator.autocast():
        loss = model(english, foreign)
    # the gradient DDP averages over N processes is the global mean's when process r weighs its mean
    # loss by N * here / total (1 in one process: nothing is multiplied)
    weight = accelerator.num_processes * here / total
    accelerator.backward(loss if weight == 1 else loss * weight)
    if accelerator.num_processes > 1:  # the global batch's loss and terms
        terms = list(objective.last_logs)
        counts = torch.tensor([k.endswith(COUNT_SUFFIX) for k in terms], device=accelerator.device)
        values = torch.tensor(
            [float(loss.detach())] + [objective.last_logs[k] for k in terms],
            dtype=torch.float64,
            device=accelerator.device,
        )
        scale = torch.ones_like(values) * here / total  # means: pair-weighted over processes
        scale[1:][counts] = 1.0  # counts: summed
        pooled = accelerator.reduce(values * scale, reduction="sum").tolist()
        loss = torch.tensor(pooled[0])
        objective.last_logs = dict(zip(terms, pooled[1:]))
    params = [p for p in student.parameters() if p.grad is not None]
    if config.grad_clip > 0:
        grad_norm = clip_gradients(accelerator, params, config.grad_clip)
    else:
        grad_norm = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])))
    check_finite(float(loss.detach()), grad_norm, config)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach()), grad_norm


class Trainer:
    """Train ``student`` with ``objective`` on ``train``; select on ``dev``; write to ``out_dir``."""

    def __init__(
        self,
        student: Encoder,
        teacher: Encoder | FrozenTeacher,
        objective: Objective,
        train: Bitext,
        dev: Bitext | None,
        config: TrainConfig,
        out_dir: str | Path | None = None,
        accelerator: Accelerator | None = None,
        desc: str = "train",
        initial_dev_score: float | None = None,
        dev_distractors: Sequence[str] = (),
    ) -> None:
        if len(train) == 0:
            raise ValueError("empty training bitext")
        student.check_max_length(config.max_length)
        if isinstance(teacher, FrozenTeacher):
            if teacher.max_length != config.max_length:
                raise ValueError(f"teacher truncates at {teacher.max_length}, config at {config.max_length}")
            if teacher.encoder.prefix(teacher.role) != teacher.encoder.prefix(config.training_role):
                raise ValueError(
                    f"teacher targets are encoded as {teacher.role!r}, the config trains as "
                    f"{config.training_role!r} (use_prefixes={config.use_prefixes})"
                )
        else:
            teacher = FrozenTeacher(teacher, config.max_length, config.teacher_cache, role=config.training_role)
        self.student, self.teacher, self.objective = student, teacher, objective
        # the config's cap on training pairs (Bitext.subsample: the same pairs when the caller already capped)
        self.train_bitext, self.config = train.subsample(config.max_train_pairs, config.seed), config
        self.dev = config.dev_sample(dev) if dev is not None and len(dev) > 1 else None
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.accelerator = accelerator or make_accelerator(config.mixed_precision)
        self.desc = desc
        # dev MRR of the untrained student when the caller already knows it (every student of a
        # fold starts as the same copy of the teacher, so the comparison runner computes it once)
        self.initial_dev_score = initial_dev_score
        # English distractors of dev selection (dev_mrr), as many as config.dev_distractors says (its fingerprint)
        self.dev_distractors = list(dev_distractors) if self.dev is not None else []
        if self.dev is not None and len(self.dev_distractors) != config.dev_distractors:
            raise ValueError(
                f"config.dev_distractors = {config.dev_distractors} but {len(self.dev_distractors)} distractor "
                "texts given (train_student builds them with data.mafand.dev_distractor_pool)"
            )
        self._distractors: torch.Tensor | None = None  # their teacher embeddings, encoded once per run
        self._log_handle = None
        self._model: torch.nn.Module | None = None  # the prepared StepModule while training
        self._dev_tokens = None  # the dev sentences, tokenised at the first dev evaluation
        self.checkpoints_written = self.checkpoint_bytes = 0

    # ------------------------------------------------------------------ files
    @property
    def checkpoint_path(self) -> Path | None:
        return self.out_dir / CHECKPOINT_NAME if self.out_dir else None

    def _open_log(self, keep_until: int | None) -> None:
        if not (self.out_dir and self.accelerator.is_main_process):
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / LOG_NAME
        kept: list[str] = []
        if keep_until is not None and path.exists():  # resumed: drop what came after the checkpoint
            kept = [line for line in complete_log_lines(path) if json.loads(line)["step"] <= keep_until]
        # the kept lines replace the log atomically, as a new file: a writer still appending to the
        # old one (a run killed but not yet dead) writes into a file nobody reads
        text = "".join(line + "\n" for line in kept).encode("utf-8")
        atomic_write(path, lambda handle: handle.write(text))
        self._log_handle = open(path, "a", encoding="utf-8")

    def _log(self, record: dict[str, Any]) -> None:
        if self._log_handle is not None:
            self._log_handle.write(json.dumps(record) + "\n")
            self._log_handle.flush()

    def _save_checkpoint(self, state: _State, optimizer, scheduler) -> None:
        if not (self.checkpoint_path and self.accelerator.is_main_process):
            return
        save_checkpoint(self.checkpoint_path, state, self.student, optimizer, scheduler, self.config.fingerprint())
        self.checkpoints_written += 1
        self.checkpoint_bytes += self.checkpoint_path.stat().st_size

    def _checkpoint_due(self, step: int, last_save: float) -> bool:
        return checkpoint_due(step, last_save, self.config, self.accelerator)

    def _load_checkpoint(self, optimizer, scheduler) -> _State:
        return load_checkpoint(self.checkpoint_path, self.config.fingerprint(), self.student, optimizer, scheduler)

    # ------------------------------------------------------------------- loop
    def _dev_score(self, queries: torch.Tensor) -> float:
        if self._dev_tokens is None:  # tokenised once per run: only the weights change between dev evaluations
            self._dev_tokens = self.student.pretokenize(self.dev.foreign, self.config.dev_roles()[1], batch_size=64)
        with self.accelerator.autocast():
            documents = self.student.encode(self._dev_tokens)
        return dev_mrr(queries, documents, self._distractors)

    def train(self) -> TrainResult:
        cfg, acc = self.config, self.accelerator
        start = time.perf_counter()
        set_seed(cfg.seed)
        student = make_trainable(self.student.to(acc.device), cfg)
        if cfg.teacher_cache:
            with acc.autocast():  # the teacher's targets in the precision everything else runs in
                self.teacher.precompute(self.train_bitext.english)
        queries = None
        if self.dev is not None:
            with acc.autocast():
                queries = self.teacher.encode(self.dev.english, role=self.config.dev_roles()[0])
                if self.dev_distractors:
                    self._distractors = self.teacher.encode(self.dev_distractors, role=self.config.dev_roles()[0])
        optimizer, scheduler = make_optimizer(student, cfg)
        # DDP around student + objective under data-parallel, the very modules otherwise; the
        # scheduler stays unprepared (see the module doc)
        self._model, optimizer = acc.prepare(StepModule(student, self.objective, self.teacher), optimizer)

        resumed_from = None
        if self.checkpoint_path is not None and self.checkpoint_path.exists():
            state = self._load_checkpoint(optimizer, scheduler)
            resumed_from = state.step
            self._open_log(keep_until=state.step)
        else:
            state = _State()
            self._open_log(keep_until=None)
            if queries is not None and cfg.select_initial:
                score = self._dev_score(queries) if self.initial_dev_score is None else self.initial_dev_score
                state.record(0, score, student, cfg.patience, cfg.min_delta)
                self._log({"step": 0, "event": "dev", "dev_mrr": score, "best": True})

        bar = tqdm(
            total=cfg.steps,
            initial=state.step,
            desc=self.desc,
            leave=False,
            disable=not cfg.progress or not acc.is_local_main_process,
        )
        train = self.train_bitext
        lengths = [len(f) for f in train.foreign] if cfg.group_by_length else None
        last_save = time.monotonic()
        interrupt = _Interrupt(enabled=bool(cfg.checkpoint_every and self.checkpoint_path))
        with interrupt:
            diverged = self._loop(state, queries, optimizer, scheduler, bar, lengths, last_save, interrupt)
        bar.close()
        if interrupt.signum is not None:  # checkpointed in the loop: let the signal do what it does
            self._close_log()
            interrupt.deliver()
        if cfg.keep_checkpoint and diverged is None:  # the final state too, e.g. to compare runs
            self._save_checkpoint(state, optimizer, scheduler)
        if state.best_state is not None:  # the selected student, not merely the last one
            student.load_state_dict(state.best_state)
        else:
            state.best_step = state.step
        self._log(
            {
                "step": state.step,
                "event": "end",
                "selected_step": state.best_step,
                "cap": cfg.steps,
                "stopped_early": state.stopped,
                "selected_before_cap": state.best_step < cfg.steps,
            }
        )
        self._close_log()
        result = TrainResult(
            steps=state.step,
            best_step=state.best_step,
            best_dev_mrr=None if state.best_score == -math.inf else state.best_score,
            dev_history=state.history,
            resumed_from=resumed_from,
            stopped_early=state.stopped,
            max_steps=cfg.steps,
            selected_before_cap=state.best_step < cfg.steps,
            train_pairs=len(train),
            dev_pairs=len(self.dev) if self.dev is not None else 0,
            wall_s=round(time.perf_counter() - start, 2),
            mixed_precision=acc.mixed_precision,
            checkpoints_written=self.checkpoints_written,
            checkpoint_bytes=self.checkpoint_bytes,
            diverged=None if diverged is None else str(diverged),
            diverged_step=None if diverged is None else state.step + 1,
        )
        if self.out_dir is not None and acc.is_main_process:
            write_json(result, self.out_dir / SUMMARY_NAME)
            if (diverged is not None or not cfg.keep_checkpoint) and self.checkpoint_path.exists():
                self.checkpoint_path.unlink()  # a diverged run's state is never resumed (module doc)
        self._model = None
        acc.free_memory()  # the accelerator keeps every prepared model and optimizer until told
        student.eval()
        return result

    def _close_log(self) -> None:
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def _loop(
        self,
        state: _State,
        queries: torch.Tensor | None,
        optimizer,
        scheduler,
        bar,
        lengths,
        last_save: float,
        interrupt: _Interrupt,
    ) -> TrainingDiverged | None:
        """Steps until ``cfg.steps``, early stopping, an interrupt (then checkpointed) or, with dev selection
        (``queries``), a diverged step: logged and returned, not applied (without dev selection: raised)."""
        cfg, acc, student, train = self.config, self.accelerator, self.student, self.train_bitext
        while state.step < cfg.steps and not state.stopped:
            step = state.step + 1
            tic = time.perf_counter()
            batch = batch_indices(step, len(train), cfg.batch_size, cfg.seed, lengths)  # the global batch
            index = batch[acc.process_index :: acc.num_processes]  # this process's share
            share = (len(index), len(batch))
            index = index or batch[:1]  # a share of 0 pairs still takes part (weight 0)
            try:
                loss, grad_norm = train_step(
                    student,
                    self.teacher,
                    self.objective,
                    [train.english[i] for i in index],
                    [train.foreign[i] for i in index],
                    optimizer,
                    scheduler,
                    acc,
                    cfg,
                    model=self._model,
                    share=share,
                )
            except TrainingDiverged as error:
                if queries is None:  # no dev state to fall back on
                    raise
                optimizer.zero_grad(set_to_none=True)  # the diverged step's gradient is never applied
                self._log({"step": step, "event": "diverged", "message": str(error)})
                return error
            state.step = step
            record = {
                "step": step,
                "event": "train",
                "loss": loss,
                **self.objective.last_logs,
                "lr": scheduler.get_last_lr()[0],
                "grad_norm": grad_norm,
                "seconds": time.perf_counter() - tic,
            }
            self._log(logged_step(record))  # the diagnostics at the log's declared precision
            if queries is not None and ((cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps):
                score = self._dev_score(queries)
                best = state.record(step, score, student, cfg.patience, cfg.min_delta)
                self._log({"step": step, "event": "dev", "dev_mrr": score, "best": best})
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", dev=f"{state.best_score:.3f}" if state.history else "-")
            if interrupt.signum is not None:
                self._save_checkpoint(state, optimizer, scheduler)
                return
            if not state.stopped and self._checkpoint_due(step, last_save):
                self._save_checkpoint(state, optimizer, scheduler)
                acc.wait_for_everyone()
                last_save = time.monotonic()
        return None


def train_student(
    base: Encoder,
    teacher: Encoder | FrozenTeacher,
    method: str,
    train: Bitext,
    dev: Bitext | None,
    config: TrainConfig,
    out_dir: str | Path | None = None,
    **options,
) -> tuple[Encoder, Objective, TrainResult]:
    """Train a copy of ``base`` with ``method`` on ``train`` (at most ``config.max_train_pairs`` pairs,
    :meth:`Bitext.subsample` with ``config.seed``), selecting on ``dev``; ``options`` go to :class:`Trainer`.

    Every student is trained here: comparison cells, sweep settings, notebook students and
    ``optical-lab train``. Returns the trained student, its objective (e.g. the induced dictionary) and
    the :class:`TrainResult`.

    >>> from optical_lab import Encoder, TrainConfig, train_student
    >>> from optical_lab.data.bitext import Bitext
    >>> teacher = Encoder.load("minilm", device="cpu")
    >>> pairs = Bitext(["Good morning.", "Thank you very much.", "Where is the market?"],
    ...                ["Habari ya asubuhi.", "Asante sana.", "Soko liko wapi?"], "swa")
    >>> config = TrainConfig(steps=2, batch_size=2, warmup_steps=0, max_length=16, progress=False, checkpoint_every=0)
    >>> student, objective, result = train_student(teacher, teacher, "optical", pairs, None, config)
    >>> result.steps, result.train_pairs
    (2, 3)
    """
    if config.dev_distractors and dev is not None and "dev_distractors" not in options:
        options["dev_distractors"] = dev_distractor_pool(
            dev.lang, config.dev_distractors, config.dev_sample(dev).english
        )
    pairs = train.subsample(config.max_train_pairs, config.seed)
    objective = build_objective(method, config, pairs)
    if objective is None:
        raise ValueError(f"{method!r} trains nothing: use the teacher itself")
    student = base.copy()
    result = Trainer(student, teacher, objective, pairs, dev, config, out_dir=out_dir, **options).train()
    return student, objective, result
