"""The comparison runner: train every method per language, fold and seed, evaluate, and compare.

``optical-lab compare`` (:mod:`.compare`) builds a :class:`ComparePlan` and runs it here. For each (language, method, fold, seed) **cell** the student (a copy of the frozen English
teacher) is trained on the fold's training bitext only, selected on the fold's dev bitext, and
evaluated by the task (queries by the teacher, documents by the student; :mod:`optical_lab.tasks`). A cell's folder
``<out>/runs/<lang>/<method>/fold<k>-seed<s>/`` receives its TREC runs (gzipped), per-query
metrics, config and training log as soon as it is done; ``done.json`` is written last, so a
re-run into the same ``--out`` skips finished cells (``--resume``, the default) and a killed cell
resumes from its last training checkpoint. Then :mod:`.summary` writes ``summary.md``/``.csv``
(means ± 95% CI, Holm-corrected paired randomization tests against ``optical``, winners).

``--size-curve 100,300,all`` instead trains ``optical`` and the augmentation method named by
``aug_method`` (default translate-train) on nested subsets of each fold's training bitext and
writes the plot-ready ``size_curve/size_curve.csv`` (:meth:`Runner.run_size_curve`, tables by
:mod:`.size_curve`).
"""
from __future__ import annotations

import ctypes
import gc
import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..data.bitext import Bitext
from ..data.collections import LEGACY_FOLD_SCHEME
from ..data.errors import DataError
from ..data.mafand import MAFAND_LANGS, load_mafand, mafand_files
from ..io import write_json
from ..methods.config import TrainConfig
from ..methods.registry import REFERENCE, build_objective
from ..methods.runtime import resolve_mixed_precision, set_threads
from ..methods.teacher import FrozenTeacher
from ..methods.trainer import Trainer, make_accelerator, retrieval_mrr
from ..models.encoder import Encoder
from ..tasks.base import Task, TaskFold, save_results
from ..tasks.registry import get_task
from .records import environment, provenance
from .size_curve import CURVE, write_curve
from .suite import (DEFAULT_ALLOWED_OVERLAP, evaluate_everywhere, guard, leak_reports, load_user_bitext, note_skips,
                    skipped_eval_tasks, split_user_bitext)
from .summary import ComparisonSummary, summarize_plan

RUNS = "runs"


@dataclass
class ComparePlan:
    """Everything that decides the numbers of a comparison (saved as ``<out>/config.json``)."""

    langs: list[str]
    methods: list[str]
    folds: int = 2
    seeds: int = 1
    task: str = "ntrex"
    task_options: dict[str, Any] = field(default_factory=dict)  # the task's own settings (e.g. a TREC collection)
    model: str = "minilm"
    bitext: str = "ntrex"  # "ntrex": the fold's other documents; "mafand": MAFAND-MT train/dev where it exists;
    # "user": the user's files in bitext_files (one TSV, or English + foreign line-aligned files)
    preset: str = "default"
    train: TrainConfig = field(default_factory=TrainConfig)
    eval_max_length: int | None = None  # None: the model's own limit (256 for minilm)
    eval_batch_size: int = 32
    fold_seed: int = 0
    threads: int = 0  # torch threads; 0 = auto, re-decided before every cell from the machine's load
    size_curve: list[int | None] | None = None  # None entry = every training pair
    eval_tasks: list[str] = field(default_factory=list)  # further tasks every student is scored on ([] = the task only)
    bitext_files: list[str] = field(default_factory=list)  # bitext == "user": the files
    fold_scheme: str = "held-out-dev"  # NTREX document folds (data.collections.FOLD_SCHEMES); absent in old configs
    allow_overlap: int = DEFAULT_ALLOWED_OVERLAP  # leak guard: evaluation texts a (language, fold) may train on

    def seed_list(self) -> list[int]:
        return list(range(self.seeds))


def plan_from_saved(saved: dict[str, Any]) -> ComparePlan:
    """The plan of a saved ``config.json``. A config written before fold schemes existed ran the
    ``per-fold-dev`` scheme, so that is what its missing field means."""
    names = set(ComparePlan.__dataclass_fields__) - {"train"}
    fields = {k: v for k, v in saved.items() if k in names}
    fields.setdefault("fold_scheme", LEGACY_FOLD_SCHEME)
    return ComparePlan(**fields, train=TrainConfig.from_dict(saved["train"]))


class EvalEncoder(Encoder):
    """An encoder as the evaluation sees it: same weights, fixed encode batch size, optional memo.

    * ``memo=True`` (the teacher): ``encode`` remembers its answers. Queries (and, for zero-shot,
      documents) are the same for every method of a language and fold, so they are encoded once.
      ``optical-lab evaluate`` memoises the student too (its weights never change there).
    * ``batch_size``: every ``encode`` uses it, whatever the caller asks (encode sorts texts by
      length; on CPU 32 is ~1.5x faster than 128 for sentence batches, measured on 2 cores).
    """

    def __init__(self, base: Encoder, memo: bool = False, batch_size: int | None = 32) -> None:
        super().__init__(base.model, base.tokenizer, **base.settings())
        self.memo = memo
        self.batch_size = batch_size
        self._memo: dict[tuple, torch.Tensor] = {}

    def encode(self, texts: Sequence[str], role=None, batch_size: int = 64, progress: bool | str = False) -> torch.Tensor:
        batch_size = self.batch_size or batch_size
        if not self.memo:
            return super().encode(texts, role, batch_size, progress)
        # keyed by the texts as the model sees them (prefix included): a backbone without role
        # prefixes (MiniLM) encodes a sentence once whether it is a query or a passage
        key = (self.max_length, torch.is_autocast_enabled(self.device.type), tuple(self._with_prefix(texts, role)))
        if key not in self._memo:
            self._memo[key] = super().encode(texts, role, batch_size, progress)
        return self._memo[key].clone()

    def clear(self) -> None:
        self._memo.clear()


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc keeps them otherwise, and
    a long comparison's resident memory creeps up from fragmentation)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# ------------------------------------------------------------------ bitext
def training_bitext(plan: ComparePlan, lang: str, fold: TaskFold) -> tuple[Bitext, Bitext, str]:
    """(train, dev, source name) for a fold: NTREX documents outside the fold, MAFAND-MT, or the user's files."""
    if plan.bitext == "user":
        train, dev = split_user_bitext(load_user_bitext(tuple(plan.bitext_files), lang), plan.fold_seed)
        return train, dev, train.source
    if plan.bitext == "mafand":
        if lang in MAFAND_LANGS:
            return load_mafand(lang, "train"), load_mafand(lang, "dev"), "mafand-mt"
        tqdm.write(f"note: MAFAND-MT has no en-{lang}; {lang} trains on the task's own bitext")
    elif plan.bitext != "ntrex":
        raise DataError(f"unknown bitext source {plan.bitext!r}", fix="use --bitext ntrex, --bitext mafand or --bitext FILE.tsv")
    return fold.train, fold.dev, fold.train.source or plan.task


# ------------------------------------------------------------------ cells
def _digest(data: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def cell_fingerprint(plan: ComparePlan, method: str, size: int | None | str = "default") -> str:
    """What a finished cell's numbers depend on; training settings do not matter for zero-shot."""
    data: dict[str, Any] = {"task": plan.task, "model": plan.model, "eval_max_length": plan.eval_max_length,
                            "eval_batch_size": plan.eval_batch_size,
                            "folds": plan.folds, "fold_seed": plan.fold_seed,
                            "precision": resolve_mixed_precision(plan.train.mixed_precision)}
    if plan.task_options:  # absent when empty: results from before task options keep their fingerprints
        data["task_options"] = plan.task_options
    if plan.eval_tasks:  # likewise for evaluation tasks and the fold scheme (issue #12)
        data["eval_tasks"] = plan.eval_tasks
    if plan.fold_scheme != LEGACY_FOLD_SCHEME:
        data["fold_scheme"] = plan.fold_scheme
    if method != "zero-shot":
        train = {k: v for k, v in plan.train.fingerprint_fields().items()
                 if k not in ("seed", "progress", "checkpoint_every", "keep_checkpoint")}
        data.update(method=method, bitext=plan.bitext, train=train, size=size)
        if plan.bitext_files:
            data["bitext_files"] = plan.bitext_files
    return _digest(data)


class Runner:
    """Runs the cells of a plan into ``out``; skips finished ones."""

    def __init__(self, plan: ComparePlan, out: str | Path, task: Task | None = None, resume: bool = True,
                 progress: bool = True, save_student: bool = False) -> None:
        self.plan, self.out, self.resume, self.progress = plan, Path(out), resume, progress
        self.save_student = save_student  # write each trained student to <cell>/student (Encoder.save)
        self.task = task or get_task(plan.task, **plan.task_options)
        self.eval_tasks = {name: get_task(name, **plan.task_options) for name in plan.eval_tasks if name != plan.task}
        for each in (self.task, *self.eval_tasks.values()):
            each.fold_scheme = plan.fold_scheme
        self.accelerator = make_accelerator(plan.train.mixed_precision)
        self.plan.train = plan.train.replace(mixed_precision=self.accelerator.mixed_precision, progress=progress)
        self._base: Encoder | None = None
        self._teacher: EvalEncoder | None = None
        self.timings: list[dict[str, Any]] = []
        self._initial: dict[int, float] = {}
        self._busy = False  # whether this process has been computing (its threads are in the load average)

    # -------------------------------------------------------------- set-up
    @property
    def base(self) -> Encoder:
        """The frozen teacher, loaded once; students start as copies of it."""
        if self._base is None:
            self._base = Encoder.load(self.plan.model, device=self.accelerator.device, max_length=self.plan.eval_max_length)
            self._base.requires_grad_(False)
        return self._base

    @property
    def teacher(self) -> EvalEncoder:
        if self._teacher is None:
            self._teacher = EvalEncoder(self.base, memo=True, batch_size=self.plan.eval_batch_size)
        return self._teacher

    def record(self, kind: str = "compare") -> dict[str, Any]:
        """The plan as ``config.json`` saves it (and as :func:`.summary.summarize_plan` reads it)."""
        return {"kind": kind, **asdict(self.plan), "train_fingerprint": self.plan.train.fingerprint()}

    def data_files(self) -> list[Path]:
        """Every data file this plan reads: the task's, and MAFAND-MT's when it is the bitext."""
        files = [f for lang in self.plan.langs for task in (self.task, *self.eval_tasks.values())
                 if task is self.task or not task.unavailable(lang) for f in task.data_files(lang)]
        files += self.plan.bitext_files
        if self.plan.bitext == "mafand":
            files += [f for lang in self.plan.langs if lang in MAFAND_LANGS for f in mafand_files(lang)]
        return list(dict.fromkeys(files))

    def write_plan(self, kind: str) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        if not self.accelerator.is_main_process:
            return
        write_json(self.record(kind), self.out / ("config.json" if kind == "compare" else f"config_{kind}.json"))
        write_json(environment() | {"torch_threads": torch.get_num_threads()}
                   | provenance(self.data_files(), self.base.source), self.out / f"environment_{kind}.json")

    # -------------------------------------------------------------- one cell
    def run_cell(self, folder: Path, lang: str, fold: TaskFold, method: str, seed: int, train: Bitext, dev: Bitext,
                 source: str, frozen: FrozenTeacher | None, size: int | None | str = "default") -> dict[str, Any]:
        """Train (unless zero-shot), evaluate, write; or read the finished cell."""
        fingerprint = cell_fingerprint(self.plan, method, size)
        done = folder / "done.json"
        if done.exists():
            info = json.loads(done.read_text(encoding="utf-8"))
            if self.resume and info.get("fingerprint") == fingerprint:
                return info | {"skipped": True}
            if self.resume:
                raise DataError(f"{folder} holds results of another configuration",
                                fix="write to another --out folder, or pass --no-resume to recompute it")
        if folder.exists() and not self.resume and self.accelerator.is_main_process:
            shutil.rmtree(folder)
        self.accelerator.wait_for_everyone()
        folder.mkdir(parents=True, exist_ok=True)
        cfg = self.plan.train.replace(seed=seed)
        threads = set_threads(self.plan.threads, own=torch.get_num_threads() if self._busy else 0)
        self._busy = True
        start = time.perf_counter()
        train_info: dict[str, Any] = {}
        if method == "zero-shot":
            student: Encoder = self.teacher  # the very same encoder (and memo) on both sides
            pairs = None
        else:
            cap = cfg.max_train_pairs if size == "default" else size
            pairs = train.subsample(cap, seed)
            objective = build_objective(method, cfg, pairs)
            student = self.base.copy()
            result = Trainer(student, frozen, objective, pairs, dev, cfg, out_dir=folder, accelerator=self.accelerator,
                             desc=f"{lang} {method} f{fold.index} s{seed}",
                             initial_dev_score=self.initial_dev_score(frozen, dev)).train()
            train_info = asdict(result)
            if self.save_student and self.accelerator.is_main_process:
                student.save(folder / "student", teacher=self.plan.model, lang=lang, method=method)
            if getattr(objective, "dictionary", None) is not None:
                objective.dictionary.save(folder / "dictionary.tsv")
        train_s = time.perf_counter() - start
        if method != "zero-shot":
            student = EvalEncoder(student, memo=False, batch_size=self.plan.eval_batch_size)
        with self.accelerator.autocast():
            results = evaluate_everywhere(self.task, self.eval_tasks, lang, fold, self.plan.folds, self.plan.fold_seed,
                                          self.teacher, student)
        eval_s = time.perf_counter() - start - train_s
        main_process = self.accelerator.is_main_process  # under `accelerate launch`, one writer
        if main_process:
            save_results(folder, results, tag=f"{method}-{self.plan.model}")
        summary = {name: r.summary for name, r in results.items()}
        info = {"lang": lang, "method": method, "fold": fold.index, "seed": seed, "size": size,
                "fingerprint": fingerprint, "bitext": source if method != "zero-shot" else None,
                "train_pairs": len(pairs) if pairs is not None else 0, "dev_pairs": train_info.get("dev_pairs", 0),
                "best_step": train_info.get("best_step"), "best_dev_mrr": train_info.get("best_dev_mrr"),
                "train_s": round(train_s, 2), "eval_s": round(eval_s, 2), "threads": threads, "metrics": summary}
        if main_process:
            write_json({"cell": info, "plan": self.plan, "train": cfg if method != "zero-shot" else None},
                       folder / "config.json")
            write_json(info, done)  # last: marks the cell finished
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
            sample = dev.sample(self.plan.train.max_dev_pairs, seed=0)  # the trainer's own dev sample
            with self.accelerator.autocast():
                self._initial[key] = retrieval_mrr(frozen.encode(sample.english), frozen.encode(sample.foreign))
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
                frozen = FrozenTeacher(self.base, self.plan.train.max_length, self.plan.train.teacher_cache)
                for seed in self.plan.seed_list():
                    for method, size in variants:
                        name = method if size == "default" else f"{method}@{size_label(size)}"
                        folder = root / lang / name / f"fold{fold.index}-seed{seed}"
                        yield folder, lang, fold, method, seed, train, dev, source, frozen, size
                self._initial.pop(id(frozen), None)
                del frozen
                release_memory()

    def run_variants(self, variants: list[tuple[str, int | None | str]], root: Path, desc: str = "cells") -> None:
        total = len(self.plan.langs) * self.plan.folds * self.plan.seeds * len(variants)
        bar = tqdm(total=total, desc=desc, disable=not self.progress)
        for cell in self.cells(variants, root):
            self._report(self.run_cell(*cell))
            bar.update(1)
        bar.close()

    def check_leakage(self) -> dict[str, Any]:
        """The leak guard (:mod:`.suite`): measure every (language, fold), refuse above
        ``plan.allow_overlap``; nothing is written here, so a refused run leaves ``out`` untouched."""
        note_skips(skipped_eval_tasks(self.eval_tasks, self.plan.langs))
        reports = {}
        for lang in self.plan.langs:
            folds = self.task.folds(lang, self.plan.folds, self.plan.fold_seed)
            bitexts = [training_bitext(self.plan, lang, fold) for fold in folds]
            reports[lang] = leak_reports(self.task, self.eval_tasks, lang, folds, bitexts, self.plan.folds,
                                         self.plan.fold_seed)
        return guard(reports, self.plan.allow_overlap)

    def accept(self, kind: str) -> None:
        """Leak guard, then the plan and the overlap counts into ``out``: every run starts here."""
        leakage = self.check_leakage()
        self.write_plan(kind)
        if self.accelerator.is_main_process:
            write_json(leakage, self.out / ("leakage.json" if kind == "compare" else f"leakage_{kind}.json"))

    def run(self) -> ComparisonSummary:
        self.accept("compare")
        root = self.out / RUNS
        self.run_variants([(m, "default") for m in self.plan.methods], root)
        self.accelerator.wait_for_everyone()
        summary = self.summarize(root)
        if self.accelerator.is_main_process:
            summary.write(self.out)
        return summary

    def summarize(self, root: Path) -> ComparisonSummary:
        return summarize_plan(root, self.record(), self.task.primary)

    def run_size_curve(self) -> pd.DataFrame:
        """Train/evaluate every (size, method) cell of the bitext-size curve (``plan.size_curve``:
        optical and ``train.aug_method`` on nested subsets, zero-shot as size 0), then write its tables."""
        plan = self.plan
        variants: list[tuple[str, int | None | str]] = [("zero-shot", 0)]
        variants += [(method, size) for size in plan.size_curve or [None] for method in (REFERENCE, plan.train.aug_method)]
        self.accept(CURVE)
        self.run_variants(variants, self.out / CURVE / RUNS, desc="size-curve cells")
        self.accelerator.wait_for_everyone()
        if not self.accelerator.is_main_process:
            return pd.DataFrame()
        return write_curve(self.out, plan.langs, plan.size_curve or [None], plan.train.aug_method, self.task.primary)

    @classmethod
    def from_folder(cls, out: str | Path, progress: bool = False) -> "Runner":
        """The runner of a comparison already written to ``out`` (its ``config.json``), e.g. to
        re-summarise finished cells after the summary code changed; nothing is retrained."""
        saved = json.loads((Path(out) / "config.json").read_text(encoding="utf-8"))
        return cls(plan_from_saved(saved), out, progress=progress)

    def _report(self, info: dict[str, Any]) -> None:
        self.timings.append(info)
        metrics = "  ".join(f"{task}:{name}={value:.3f}" for task, values in info["metrics"].items()
                            for name, value in values.items() if name in ("MRR@10", "acc@1", "F1"))
        how = "cached" if info.get("skipped") else f"train {info['train_s']:.0f}s eval {info['eval_s']:.0f}s"
        step = f" best step {info['best_step']}" if info.get("best_step") is not None else ""
        size = info.get("size", "default")
        name = info["method"] if size == "default" else f"{info['method']}@{size_label(size)}"
        tqdm.write(f"{info['lang']} {name:<15} fold{info['fold']} seed{info['seed']}  {metrics}  ({how}{step})")


def size_label(size: int | None | str) -> str:
    return "all" if size is None else f"n{size}"
