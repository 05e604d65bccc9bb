"""Running a comparison: the :class:`Runner` trains every method per language, fold and seed, evaluates,
and compares.

``optical-lab compare`` (:mod:`.compare`) builds a :class:`~.plan.ComparePlan` and runs it here. For each
(language, method, fold, seed) **cell** (:mod:`.identity`) the student (a copy of the frozen English teacher)
is trained on the fold's training bitext only, selected on the fold's dev bitext, and evaluated by the task
(queries by the teacher, documents by the student; :mod:`optical_lab.tasks`). A cell's folder receives its
TREC runs (gzipped), per-query metrics, config and training log as soon as it is done; ``done.json`` is written
last (:class:`~.cache.ResultFolder`), so a re-run into the same ``--out`` skips finished cells (``--resume``,
the default) and a killed cell resumes from its last training checkpoint. Then :mod:`.summary` writes
``summary.md``/``.csv`` (means ± 95% CI, Holm-corrected paired randomization tests against ``optical``, winners).

What the runner owns: resume (a finished cell is served only when its fingerprint and inputs match, else the
run refuses, naming what changed, **before anything is written**: :meth:`Runner.check_existing`;
``--no-resume`` recomputes), the leak guard's call (:meth:`Runner.check_leakage`), the folder lock, per-cell
claims and ``--join`` workers (:mod:`.workers`), data-parallel (one writer), and the size curve:
``--size-curve 100,300,all`` trains ``optical`` and ``aug_method`` (default translate-train) on nested subsets
of each fold's training bitext and writes ``size_curve/size_curve.csv`` (:meth:`Runner.run_size_curve`, tables
by :mod:`.size_curve`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..data.bitext import Bitext
from ..data.errors import DataError
from ..data.mafand import dev_distractor_pool, mafand_family, mafand_files
from ..io import BLOBS, read_json, write_json
from ..methods.registry import REFERENCE
from ..methods.runtime import device_description, release_memory, set_threads
from ..methods.teacher import FrozenTeacher
from ..methods.train_state import TrainingDiverged
from ..methods.trainer import dev_mrr, make_accelerator, train_student
from ..models.encoder import Encoder
from ..tasks.base import Task, TaskFold, save_results
from ..tasks.registry import get_task
from .cache import ResultFolder
from .compact import compact_cell
from .encodings import EvalEncoder
from .identity import (
    RUNS,
    cell_fingerprint,
    cell_folder,
    cell_inputs,
    input_changes,
    plan_cells,
    precision_hint,
    size_label,
)
from .plan import ComparePlan, plan_from_saved, training_bitext
from .records import FolderLock, empty_folder, environment, provenance
from .size_curve import CURVE, write_curve
from .suite import evaluate_everywhere, guard, leak_reports, note_skips, skipped_eval_tasks
from .summary import ComparisonSummary, summarize_plan
from .workers import claim, locked, wait_for_plan


class Runner:
    """Runs the cells of a plan into ``out``; skips finished ones."""

    def __init__(
        self,
        plan: ComparePlan,
        out: str | Path,
        task: Task | None = None,
        resume: bool = True,
        progress: bool = True,
        save_student: bool = False,
        keep_diverged: bool = False,
        worker: bool = False,
        poll_seconds: float = 30.0,
        join_wait: float = 0.0,
    ) -> None:
        self.out, self.resume, self.progress = Path(out), resume, progress
        # a --join worker computes cells of a comparison another process owns (see join/run_variants);
        # it waits up to join_wait seconds for that run to write this plan's config.json
        self.worker, self.poll_seconds, self.join_wait = worker, poll_seconds, join_wait
        if worker and not resume:
            raise DataError(
                "--join needs --resume: a worker must never delete cells others finished", fix="drop --no-resume"
            )
        self.save_student = save_student  # write each trained student to <cell>/student (Encoder.save)
        # a diverged cell: kept with its best dev state and flagged (protocol v3, deviation 2), or the run stops
        self.keep_diverged = keep_diverged
        self.task = task or get_task(plan.task, **plan.task_options)
        self.eval_tasks = {name: get_task(name, **plan.task_options) for name in plan.eval_tasks if name != plan.task}
        for each in (self.task, *self.eval_tasks.values()):
            each.fold_scheme = plan.fold_scheme
        self.accelerator = make_accelerator(plan.train.mixed_precision)
        # the final plan (this machine's precision, progress bars), validated as a new plan: the caller's is unchanged
        self.plan = replace(
            plan, train=plan.train.replace(mixed_precision=self.accelerator.mixed_precision, progress=progress)
        )
        self._base: Encoder | None = None
        self._teacher: EvalEncoder | None = None
        self.timings: list[dict[str, Any]] = []
        self._initial: dict[int, float] = {}
        self._busy = False  # whether this process has been computing (its threads are in the load average)
        self._provenance: dict[str, Any] | None = None
        self._unhashed: set[Path] = set()  # finished cells recorded before input hashing

    # -------------------------------------------------------------- set-up
    @property
    def base(self) -> Encoder:
        """The frozen teacher, loaded once; students start as copies of it."""
        if self._base is None:
            self._base = Encoder.load(
                self.plan.model, device=self.accelerator.device, max_length=self.plan.eval_max_length
            )
            self._base.requires_grad_(False)
        return self._base

    @property
    def teacher(self) -> EvalEncoder:
        if self._teacher is None:
            # the teacher's evaluation encodings (English queries and passages), on disk: every cell and run shares them
            self._teacher = EvalEncoder(
                self.base, memo=True, batch_size=self.plan.eval_batch_size, cache_dir=self.out / ".cache" / "encodings"
            )
        return self._teacher

    def record(self, kind: str = "compare") -> dict[str, Any]:
        """The plan as ``config.json`` saves it (and as :func:`.summary.summarize_plan` reads it)."""
        return {"kind": kind, **asdict(self.plan), "train_fingerprint": self.plan.train.fingerprint()}

    def lang_files(self, lang: str) -> list[Path]:
        """Every data file the cells of ``lang`` read: the task's, the evaluation tasks' that have
        ``lang``, a user's bitext, MAFAND-MT's when it is the bitext, and the MAFAND-MT dev files of the other
        family languages when dev selection draws distractors from them (``TrainConfig.dev_distractors``)."""
        files = list(self.task.data_files(lang))
        files += [f for task in self.eval_tasks.values() if not task.unavailable(lang) for f in task.data_files(lang)]
        files += self.plan.bitext_files
        if self.plan.bitext == "mafand":
            files += mafand_files(lang)
        if self.plan.train.dev_distractors:
            files += [f for other in mafand_family() if other != lang for f in mafand_files(other, ("dev",))]
        return list(dict.fromkeys(files))

    def data_files(self) -> list[Path]:
        """Every data file this plan reads."""
        return list(dict.fromkeys(f for lang in self.plan.langs for f in self.lang_files(lang)))

    def provenance(self) -> dict[str, Any]:
        """:func:`~.records.provenance` of this run (data files and teacher hashed once per run)."""
        if self._provenance is None:
            self._provenance = provenance(self.data_files(), self.base.source)
        return self._provenance

    def inputs(self, lang: str) -> dict[str, Any]:
        """The :func:`cell_inputs` of every cell of ``lang``."""
        return cell_inputs(self.provenance(), self.lang_files(lang), self.plan.model)

    def write_plan(self, kind: str) -> None:
        if not self.accelerator.is_main_process:
            return
        write_json(self.record(kind), self.out / ("config.json" if kind == "compare" else f"config_{kind}.json"))
        write_json(
            environment() | {"torch_threads": torch.get_num_threads()} | self.provenance(),
            self.out / f"environment_{kind}.json",
        )

    # -------------------------------------------------------------- acceptance
    def finished(self, folder: Path, lang: str, method: str, size: int | None | str) -> dict[str, Any] | None:
        """The record of a finished cell this run may serve as it is; None when the cell has to be
        computed. Raises when the cell was finished with another configuration or other inputs
        (data files, teacher, :data:`RESULTS_EPOCH`): serving it would mix numbers of two setups.

        A cell recorded before input hashing (no ``inputs`` in its ``done.json``, e.g. the committed
        ``results/compare-*``) is accepted on its configuration alone, and reported once per run."""
        info = self.cell_cache(folder, method, size).read() if self.resume else None  # a damaged one: named
        if info is None:
            return None
        if "inputs" not in info:
            self._unhashed.add(folder)
            return info
        changes = input_changes(info["inputs"], self.inputs(lang))
        if changes:
            raise DataError(
                f"{folder} was computed from other inputs: {'; '.join(changes)}",
                fix="pass --no-resume to recompute the cells with the current inputs, or write to another --out folder",
            )
        return info

    def cell_cache(self, folder: Path, method: str, size: int | None | str) -> ResultFolder:
        """The cell's folder as a cache keyed by its configuration fingerprint (its inputs: :meth:`finished`)."""
        return ResultFolder(
            folder,
            cell_fingerprint(self.plan, method, size),
            fix="write to another --out folder, or pass --no-resume to recompute it",
            explain=lambda saved: precision_hint(self.plan, saved, method, size),
        )

    def check_existing(self, variants: list[tuple[str, int | None | str]], root: Path) -> None:
        """Every finished cell of this run either is served as it is or refuses the run — checked
        before anything is written, so a refused run leaves the folder (its ``config.json`` too)
        exactly as it was."""
        for lang, method, size, _, _, folder in plan_cells(self.plan, root, variants):
            self.finished(folder, lang, method, size)
        if self._unhashed and self.accelerator.is_main_process:
            tqdm.write(
                f"note: {len(self._unhashed)} finished cells were recorded before input hashing (no 'inputs' in "
                "their done.json): served on their configuration alone; --no-resume recomputes them"
            )

    # -------------------------------------------------------------- one cell
    def run_cell(
        self,
        folder: Path,
        lang: str,
        fold: TaskFold,
        method: str,
        seed: int,
        train: Bitext,
        dev: Bitext,
        source: str,
        frozen: FrozenTeacher | None,
        size: int | None | str = "default",
    ) -> dict[str, Any]:
        """Train (unless zero-shot), evaluate, write; or read the finished cell."""
        cache = self.cell_cache(folder, method, size)
        finished = self.finished(folder, lang, method, size)
        if finished is not None:
            return finished | {"skipped": True}
        if folder.exists() and not self.resume and self.accelerator.is_main_process:
            empty_folder(folder, keep={FolderLock.NAME})  # all but the cell's lock, which this process holds
        self.accelerator.wait_for_everyone()
        folder.mkdir(parents=True, exist_ok=True)
        cfg = self.plan.train_config(method).replace(seed=seed)
        threads = set_threads(self.plan.threads, own=torch.get_num_threads() if self._busy else 0)
        self._busy = True
        start = time.perf_counter()
        train_info: dict[str, Any] = {}
        pairs = None
        if method == "zero-shot":
            student: Encoder = self.teacher  # the very same encoder (and memo) on both sides
        else:
            # a size-curve variant caps the training pairs at its size instead of the config's default
            used = cfg if size == "default" else cfg.replace(max_train_pairs=size)
            pairs = train.subsample(used.max_train_pairs, used.seed)  # what train_student trains on (same rule)
            student, objective, result = train_student(
                self.base,
                frozen,
                method,
                train,
                dev,
                used,
                out_dir=folder,
                accelerator=self.accelerator,
                desc=f"{lang} {method} f{fold.index} s{seed}",
                initial_dev_score=self.initial_dev_score(frozen, dev),
            )
            if result.diverged and not self.keep_diverged:  # the trainer kept its best dev state; not asked for
                raise TrainingDiverged(result.diverged)
            train_info = asdict(result)
            if self.save_student and self.accelerator.is_main_process:
                student.save(folder / "student", teacher=self.plan.model, lang=lang, method=method)
            if getattr(objective, "dictionary", None) is not None:
                objective.dictionary.save(folder / "dictionary.tsv")
        train_s = time.perf_counter() - start
        if method != "zero-shot":
            student = EvalEncoder(student, memo=False, batch_size=self.plan.eval_batch_size)
        with self.accelerator.autocast():
            results = evaluate_everywhere(
                self.task, self.eval_tasks, lang, fold, self.plan.folds, self.plan.fold_seed, self.teacher, student
            )
        eval_s = time.perf_counter() - start - train_s
        main_process = self.accelerator.is_main_process  # under `accelerate launch`, one writer
        if main_process:
            save_results(folder, results, tag=f"{method}-{self.plan.model}")
        summary = {name: r.summary for name, r in results.items()}
        info = {
            "lang": lang,
            "method": method,
            "fold": fold.index,
            "seed": seed,
            "size": size,
            "fingerprint": cache.fingerprint,
            "bitext": source if method != "zero-shot" else None,
            "train_pairs": train_info.get("train_pairs", 0),
            "dev_pairs": train_info.get("dev_pairs", 0),
            "best_step": train_info.get("best_step"),
            "best_dev_mrr": train_info.get("best_dev_mrr"),
            "steps": train_info.get("steps"),
            "stopped_early": train_info.get("stopped_early"),
            "selected_before_cap": train_info.get("selected_before_cap"),
            # protocol v3 deviation 2: a diverged cell stopped at that step and was evaluated with its best dev
            # state (methods/trainer.py, "Divergence"), flagged here and by `optical-lab report v3`
            **({k: train_info[k] for k in ("diverged", "diverged_step")} if train_info.get("diverged") else {}),
            "train_s": round(train_s, 2),
            "eval_s": round(eval_s, 2),
            "threads": threads,
            # where it ran (a grid may be finished on other machines: cells are independent)
            "device": device_description(self.accelerator.device),
            "precision": self.plan.train.mixed_precision,
            "metrics": summary,
            # the teacher-target file the student trained on (its checksum, verified when it was read)
            "inputs": self.inputs(lang) | {"teacher_cache": frozen.cache_record(pairs.english) if pairs else None},
            "data_dir": self.provenance()["data_dir"],
        }
        if main_process:
            write_json(
                {"cell": info, "plan": self.plan, "train": cfg if method != "zero-shot" else None},
                folder / "config.json",
            )
            cache.finish(info)  # last: marks the cell finished
            compact_cell(folder, self.out / BLOBS)  # its logs and per-query scores as committed (.compact)
        self.accelerator.wait_for_everyone()
        del student
        release_memory()
        return info

    def initial_dev_score(self, frozen: FrozenTeacher, dev: Bitext) -> float | None:
        """Dev MRR of the untrained student (= the teacher), once per fold; None without dev pairs."""
        if dev is None or len(dev) < 2:
            return None
        key = id(frozen)
        if key not in self._initial:
            sample = self.plan.train.dev_sample(dev)  # the trainer's own dev sample
            queries, documents = self.plan.train.dev_roles()
            n = self.plan.train.dev_distractors  # the trainer's own distractors (train_student builds the same)
            pool = dev_distractor_pool(dev.lang, n, sample.english) if n else []
            with self.accelerator.autocast():  # encoded as the trainer encodes its dev set, scored as it scores it
                encoded = frozen.encode(sample.english, role=queries), frozen.encode(sample.foreign, role=documents)
                distractors = frozen.encode(pool, role=queries) if pool else None
            self._initial[key] = dev_mrr(*encoded, distractors)
        return self._initial[key]

    # -------------------------------------------------------------- loops
    def cells(self, variants: list[tuple[str, int | None | str]], root: Path):
        """Every (folder, lang, fold, method, seed, train, dev, source, frozen teacher, size), in run order.

        ``variants`` are (method, size) pairs; size ``"default"`` = the config's ``max_train_pairs``.
        """
        for lang in self.plan.langs:
            self.teacher.clear()
            for fold in self.task.folds(lang, self.plan.folds, self.plan.fold_seed):
                train, dev, source = training_bitext(self.plan, lang, fold)
                # the teacher's training targets, on disk under <out>/.cache/teacher: a resumed or
                # re-run comparison (another process, another session) reads them instead of recomputing
                frozen = FrozenTeacher(
                    self.base,
                    self.plan.train.max_length,
                    self.plan.train.teacher_cache,
                    cache_dir=self.out / ".cache" / "teacher",
                    role=self.plan.train.training_role,
                )
                for seed in self.plan.seed_list():
                    for method, size in variants:
                        folder = cell_folder(root, lang, method, size, fold.index, seed)
                        yield folder, lang, fold, method, seed, train, dev, source, frozen, size
                self._initial.pop(id(frozen), None)
                del frozen
                release_memory()

    def run_variants(self, variants: list[tuple[str, int | None | str]], root: Path, desc: str = "cells") -> None:
        """Every cell, each under its own lock (:meth:`claim`): a cell another process is computing (a
        ``--join`` worker, or the run this worker joined) is left to it. The run that owns the folder then
        waits for those cells, and computes any whose process died; a worker leaves them and returns."""
        total = len(self.plan.langs) * self.plan.folds * self.plan.seeds * len(variants)
        bar = tqdm(total=total, desc=desc, disable=not self.progress or not self.accelerator.is_main_process)
        elsewhere = []
        for cell in self.cells(variants, root):
            if self.try_cell(cell):
                bar.update(1)
            else:
                elsewhere.append(cell)
        while elsewhere and not self.worker:
            time.sleep(self.poll_seconds)
            elsewhere = [cell for cell in elsewhere if not self.try_cell(cell)]
            bar.update(bar.total - len(elsewhere) - bar.n)
        bar.close()

    def try_cell(self, cell: tuple) -> bool:
        """Compute (or read) ``cell`` unless another process holds its lock; True when it is finished."""
        lock = claim(cell[0], self.out, self.accelerator)  # (a lock, or True under data-parallel)
        if lock is None:
            return False
        try:
            self._report(self.run_cell(*cell))
        finally:
            if lock is not True:
                lock.release()
        return True

    def check_leakage(self) -> dict[str, Any]:
        """The leak guard (:mod:`.suite`): measure every (language, fold), refuse above
        ``plan.allow_overlap``; nothing is written here, so a refused run leaves ``out`` untouched."""
        note_skips(skipped_eval_tasks(self.eval_tasks, self.plan.langs))
        reports = {}
        for lang in self.plan.langs:
            folds = self.task.folds(lang, self.plan.folds, self.plan.fold_seed)
            bitexts = [training_bitext(self.plan, lang, fold) for fold in folds]
            reports[lang] = leak_reports(
                self.task, self.eval_tasks, lang, folds, bitexts, self.plan.folds, self.plan.fold_seed
            )
        return guard(reports, self.plan.allow_overlap)

    def accept(self, kind: str, leakage: dict[str, Any]) -> None:
        """The plan and the leak guard's overlap counts into ``out`` (the run was accepted)."""
        self.base.check_max_length(self.plan.train.max_length)  # before anything is written
        self.write_plan(kind)
        if self.accelerator.is_main_process:
            write_json(leakage, self.out / ("leakage.json" if kind == "compare" else f"leakage_{kind}.json"))

    def run(self) -> ComparisonSummary | None:
        root = self.out / RUNS
        variants: list[tuple[str, int | None | str]] = [(m, "default") for m in self.plan.methods]
        if self.worker:
            return self.join(variants, root)
        leakage = self.check_leakage()  # the leak guard refuses before anything is written, the folder included
        with locked(self.out, self.accelerator):
            self.check_existing(variants, root)  # refuses before anything is written
            self.accept("compare", leakage)
            self.run_variants(variants, root)
            self.accelerator.wait_for_everyone()
            summary = self.summarize(root)
            if self.accelerator.is_main_process:
                summary.write(self.out)
        return summary

    def join(self, variants: list[tuple[str, int | None | str]], root: Path) -> None:
        """``--join``: help the comparison already set up in ``out`` (same plan, checked) by computing the
        cells nobody holds; the run that owns the folder waits for them and writes the summary."""
        wait_for_plan(self.out, self.record(), self.join_wait, self.poll_seconds)
        self.check_existing(variants, root)
        self.run_variants(variants, root)
        tqdm.write(f"worker done: the run that owns {self.out} writes the summary once every cell is finished")
        return None

    def summarize(self, root: Path) -> ComparisonSummary:
        return summarize_plan(root, self.record(), self.task.primary)

    def run_size_curve(self) -> pd.DataFrame:
        """Train/evaluate every (size, method) cell of the bitext-size curve (``plan.size_curve``:
        optical and ``train.aug_method`` on nested subsets, zero-shot as size 0), then write its tables."""
        plan = self.plan
        variants: list[tuple[str, int | None | str]] = [("zero-shot", 0)]
        variants += [
            (method, size) for size in plan.size_curve or [None] for method in (REFERENCE, plan.train.aug_method)
        ]
        leakage = self.check_leakage()  # the leak guard refuses before anything is written, the folder included
        with locked(self.out, self.accelerator):
            self.check_existing(variants, self.out / CURVE / RUNS)  # refuses before anything is written
            self.accept(CURVE, leakage)
            self.run_variants(variants, self.out / CURVE / RUNS, desc="size-curve cells")
            self.accelerator.wait_for_everyone()
            if not self.accelerator.is_main_process:
                return pd.DataFrame()
            return write_curve(
                self.out, plan.langs, plan.size_curve or [None], plan.train.aug_method, self.task.primary
            )

    @classmethod
    def from_folder(cls, out: str | Path, progress: bool = False) -> "Runner":
        """The runner of a comparison already written to ``out`` (its ``config.json``), e.g. to
        re-summarise finished cells after the summary code changed; nothing is retrained."""
        saved = read_json(Path(out) / "config.json")
        return cls(plan_from_saved(saved), out, progress=progress)

    def _report(self, info: dict[str, Any]) -> None:
        self.timings.append(info)
        metrics = "  ".join(
            f"{task}:{name}={value:.3f}"
            for task, values in info["metrics"].items()
            for name, value in values.items()
            if name in ("MRR@10", "acc@1", "F1")
        )
        how = "cached" if info.get("skipped") else f"train {info['train_s']:.0f}s eval {info['eval_s']:.0f}s"
        step = f" best step {info['best_step']}" if info.get("best_step") is not None else ""
        size = info.get("size", "default")
        name = info["method"] if size == "default" else f"{info['method']}@{size_label(size)}"
        if self.accelerator.is_main_process:  # under data-parallel: one report, not one per process
            tqdm.write(f"{info['lang']} {name:<15} fold{info['fold']} seed{info['seed']}  {metrics}  ({how}{step})")
