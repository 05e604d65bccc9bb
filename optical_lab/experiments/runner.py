"""The comparison runner: train every method per language, fold and seed, evaluate, and compare.

``optical-lab compare`` (:mod:`.compare`) builds a :class:`ComparePlan` and runs it here. For each (language,
method, fold, seed) **cell** the student (a copy of the frozen English teacher) is trained on the fold's
training bitext only, selected on the fold's dev bitext, and evaluated by the task (queries by the teacher,
documents by the student; :mod:`optical_lab.tasks`). A cell's folder
``<out>/runs/<lang>/<method>/fold<k>-seed<s>/`` receives its TREC runs (gzipped), per-query
metrics, config and training log as soon as it is done; ``done.json`` is written last, so a
re-run into the same ``--out`` skips finished cells (``--resume``, the default) and a killed cell
resumes from its last training checkpoint. Then :mod:`.summary` writes ``summary.md``/``.csv``
(means ± 95% CI, Holm-corrected paired randomization tests against ``optical``, winners).

**What a finished cell is** (``done.json``): its configuration fingerprint
(:func:`cell_fingerprint`) *and* its inputs (:func:`cell_inputs`: a SHA-256 of every data file the
cell reads, of the teacher's files, and :data:`RESULTS_EPOCH`). A re-run serves a cell from its
folder only when both match; otherwise it refuses, naming what changed, **before anything is
written** (:meth:`Runner.check_existing`) — ``--no-resume`` recomputes. ``done.json`` also records
where the cell ran (``device``, ``precision``, ``threads``): provenance, not identity. One run at a time writes
into a folder (:class:`~.records.FolderLock`; a second one refuses, naming the first).

``--size-curve 100,300,all`` instead trains ``optical`` and the augmentation method named by
``aug_method`` (default translate-train) on nested subsets of each fold's training bitext and
writes the plot-ready ``size_curve/size_curve.csv`` (:meth:`Runner.run_size_curve`, tables by
:mod:`.size_curve`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import pandas as pd
import torch
from accelerate.utils import broadcast_object_list
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from ..data.bitext import Bitext
from ..data.collections import LEGACY_FOLD_SCHEME
from ..data.errors import DataError
from ..data.mafand import load_mafand, mafand_files
from ..io import BLOBS, write_json
from ..methods.config import PRESETS, TrainConfig
from ..methods.registry import BY_NAME, REFERENCE
from ..methods.runtime import device_description, release_memory, resolve_mixed_precision, set_threads
from ..methods.teacher import FrozenTeacher, model_hash, texts_hash
from ..methods.trainer import make_accelerator, retrieval_mrr, train_student
from ..models.encoder import Encoder, Tokenized
from ..models.registry import DEFAULT_MODEL, check_model_name, uses_prefixes
from ..tasks.base import Task, TaskFold, save_results
from ..tasks.registry import TASKS, get_task
from .compact import compact_cell
from .records import FolderInUse, FolderLock, empty_folder, environment, provenance, read_done, refuse_links
from .size_curve import CURVE, write_curve
from .suite import (
    DEFAULT_ALLOWED_OVERLAP,
    evaluate_everywhere,
    guard,
    leak_reports,
    load_user_bitext,
    note_skips,
    skipped_eval_tasks,
    split_user_bitext,
)
from .summary import ComparisonSummary, summarize_plan

RUNS = "runs"
# Part of every cell's identity: bump it when a code change alters the numbers of a finished cell
# (a fixed bug in an objective, a new metric definition). The git commit and package versions are
# provenance (environment_*.json), not identity: most commits (docs, speed, refactors) leave every
# number unchanged, and must not invalidate committed results.
RESULTS_EPOCH = 1


@dataclass
class ComparePlan:
    """Everything that decides the numbers of a comparison (saved as ``<out>/config.json``)."""

    langs: list[str]
    methods: list[str]
    folds: int = 2
    seeds: int = 1
    task: str = "ntrex"
    task_options: dict[str, Any] = field(default_factory=dict)  # the task's own settings (e.g. a TREC collection)
    model: str = DEFAULT_MODEL
    bitext: str = (
        "ntrex"  # "ntrex": the fold's other documents; "mafand": MAFAND-MT train/dev (every language needs a pair);
    )
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
    # per-method overrides of ``train`` (protocol v2: chosen on dev bitext by `optical-lab sweep`,
    # its chosen.json); settings the methods of a fold share (the teacher's targets) cannot differ
    method_config: dict[str, dict[str, Any]] = field(default_factory=dict)

    SHARED_SETTINGS = (
        "max_length",
        "use_prefixes",
        "mixed_precision",
        "teacher_cache",
        "max_dev_pairs",
        "freeze_word_embeddings",
    )  # the last: a training regime every arm shares (protocol v2)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse a plan no run can use, before the model is loaded or a file written (the training
        settings check themselves: :meth:`TrainConfig.validate`)."""

        def need(ok: bool, problem: str, fix: str) -> None:
            if not ok:
                raise DataError(problem, fix=fix)

        def count(name: str, low: int, example: int) -> None:
            value = getattr(self, name)
            need(
                isinstance(value, int) and not isinstance(value, bool) and value >= low,
                f"{name} = {value!r}: must be an integer >= {low}",
                f"e.g. --{name.replace('_', '-')} {example}",
            )

        need(bool(self.langs), "no language to run", "e.g. --langs hau,swa")
        need(bool(self.methods), "no method to run", "e.g. --methods all, or --methods zero-shot,optical")
        unknown = [m for m in self.methods if m not in BY_NAME]
        need(not unknown, f"unknown method(s) {', '.join(unknown)}", f"use some of {', '.join(BY_NAME)}")
        count("folds", 1, 2)
        count("seeds", 1, 1)
        count("eval_batch_size", 1, 32)
        count("fold_seed", 0, 0)
        count("threads", 0, 0)
        if self.eval_max_length is not None:
            count("eval_max_length", 3, 256)
        need(self.task in TASKS, f"unknown task {self.task!r}", f"use --task {' or --task '.join(TASKS)}")
        need(
            self.bitext in ("ntrex", "mafand", "user"),
            f"unknown bitext source {self.bitext!r}",
            "use --bitext ntrex, --bitext mafand or --bitext FILE.tsv",
        )
        if self.fold_scheme == "all-eval":
            need(
                self.folds == 1 and self.bitext != "ntrex",
                f"fold scheme all-eval evaluates every document, so the students need other bitext and one fold "
                f"(got --bitext {self.bitext}, --folds {self.folds})",
                "use --folds 1 with --bitext mafand or a file",
            )
        need(self.preset in PRESETS, f"unknown preset {self.preset!r}", f"use --preset {' or --preset '.join(PRESETS)}")
        bad = [s for s in self.size_curve or [] if s is not None and (not isinstance(s, int) or s < 1)]
        need(not bad, f"size-curve sizes {bad}: must be positive integers or 'all'", "e.g. --size-curve 100,300,all")
        for method, overrides in self.method_config.items():
            shared = sorted(set(overrides) & set(self.SHARED_SETTINGS))
            need(
                not shared,
                f"method_config for {method} overrides {', '.join(shared)}, which every method of a fold shares",
                "set them for the whole comparison (--max-length, --preset, ...)",
            )
            self.train_config(method)  # TrainConfig.validate() refuses a bad per-method value
        trained = [m for m in self.methods if m != "zero-shot"] + ([REFERENCE] if self.size_curve is not None else [])
        need(
            all(self.train_config(m).steps > 0 for m in trained) or not trained,
            f"steps = {self.train.steps} trains nothing: {', '.join(trained)} would be the untrained teacher under "
            "another name",
            "give --steps a positive number, or use --methods zero-shot for the untrained model",
        )
        check_model_name(self.model)

    def seed_list(self) -> list[int]:
        return list(range(self.seeds))

    def train_config(self, method: str) -> TrainConfig:
        """The training settings of ``method``: ``train`` with the method's own overrides."""
        return self.train.replace(**self.method_config.get(method, {}))


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
    * ``cache_dir`` (with ``memo``): the answers are also kept on disk, one safetensors file per call,
      named by a hash of everything the numbers depend on (:meth:`cache_path`: the weights, tokenizer and
      configuration, the texts as the model sees them, the truncation length, the batch size, the autocast
      precision, the device type, the torch version). Every cell and every run into the same results folder
      (a resumed grid, ``--join`` workers, later seeds) loads the English side -- NTREX and FLORES English,
      any task's English passages -- instead of encoding it again; a file whose row count or text hash does not
      match is recomputed, never served.
    * ``batch_size``: every ``encode`` uses it, whatever the caller asks (encode sorts texts by
      length; on CPU 32 is ~1.5x faster than 128 for sentence batches, measured on 2 cores).
    """

    def __init__(
        self, base: Encoder, memo: bool = False, batch_size: int | None = 32, cache_dir: str | Path | None = None
    ) -> None:
        super().__init__(base.model, base.tokenizer, **base.settings())
        self.memo = memo
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.disk_hits = self.disk_misses = 0
        self._memo: dict[tuple, torch.Tensor] = {}

    def encode(
        self, texts: Sequence[str], role=None, batch_size: int = 64, progress: bool | str = False
    ) -> torch.Tensor:
        batch_size = self.batch_size or batch_size
        if not self.memo or isinstance(texts, Tokenized):  # (pretokenised texts: the caller re-encodes them)
            return super().encode(texts, role, batch_size, progress)
        # keyed by the texts as the model sees them (prefix included): a backbone without role
        # prefixes (MiniLM) encodes a sentence once whether it is a query or a passage
        key = (self.max_length, torch.is_autocast_enabled(self.device.type), tuple(self._with_prefix(texts, role)))
        if key not in self._memo:
            self._memo[key] = self._cached(
                key[2], batch_size, lambda: super(EvalEncoder, self).encode(texts, role, batch_size, progress)
            )
        return self._memo[key].clone()

    def cache_path(self, seen: Sequence[str], batch_size: int) -> tuple[Path, str]:
        """(file, texts hash) of one encode call in ``cache_dir``; ``seen``: the texts with their prefixes."""
        device = self.device.type
        autocast = str(torch.get_autocast_dtype(device)) if torch.is_autocast_enabled(device) else "no"
        texts = texts_hash(seen)
        key = json.dumps(
            {
                "model": model_hash(self),
                "texts": texts,
                "max_length": self.max_length,
                "batch_size": batch_size,
                "pooling": self.pooling,
                "autocast": autocast,
                "device": device,
                "torch": torch.__version__,
                "format": 1,
            },
            sort_keys=True,
        )
        return self.cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.safetensors", texts

    def _cached(self, seen: Sequence[str], batch_size: int, compute) -> torch.Tensor:
        """``compute()``, or its saved result from ``cache_dir`` (checked against the texts it was made of)."""
        if self.cache_dir is None:
            return compute()
        path, texts = self.cache_path(seen, batch_size)
        if path.is_file():
            with contextlib.suppress(OSError, ValueError, KeyError):  # unreadable: recompute and overwrite
                saved = safe_open_tensor(path)
                if saved[1].get("texts") == texts and saved[0].shape[0] == len(seen):
                    self.disk_hits += 1
                    return saved[0]
        value = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        save_file({"embeddings": value.detach().cpu().contiguous()}, str(tmp), metadata={"texts": texts})
        os.replace(tmp, path)
        self.disk_misses += 1
        return value

    def clear(self) -> None:
        self._memo.clear()


def safe_open_tensor(path: Path) -> tuple[torch.Tensor, dict[str, str]]:
    """The ``embeddings`` tensor of a safetensors file and the file's metadata."""
    with safe_open(str(path), framework="pt") as handle:
        return handle.get_tensor("embeddings"), handle.metadata() or {}


# ------------------------------------------------------------------ bitext
def training_bitext(plan: ComparePlan, lang: str, fold: TaskFold) -> tuple[Bitext, Bitext, str]:
    """(train, dev, source name) for a fold: NTREX documents outside the fold, MAFAND-MT, or the user's files."""
    if plan.bitext == "user":
        train, dev = split_user_bitext(load_user_bitext(tuple(plan.bitext_files), lang), plan.fold_seed)
        return train, dev, train.source
    if plan.bitext == "mafand":  # the pairs are the data folder's; a language without one is an error, never a switch
        return load_mafand(lang, "train"), load_mafand(lang, "dev"), "mafand-mt"
    if plan.bitext != "ntrex":
        raise DataError(
            f"unknown bitext source {plan.bitext!r}", fix="use --bitext ntrex, --bitext mafand or --bitext FILE.tsv"
        )
    if len(fold.train) == 0:
        raise DataError(
            f"no training bitext for {lang}: fold scheme {plan.fold_scheme} keeps every {plan.task} "
            f"document for evaluation and {plan.bitext} has no {lang}",
            fix=f"drop {lang} from --langs, or use --fold-scheme held-out-dev",
        )
    return fold.train, fold.dev, fold.train.source or plan.task


# ------------------------------------------------------------------ cells
def _digest(data: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def cell_fingerprint(plan: ComparePlan, method: str, size: int | None | str = "default") -> str:
    """What a finished cell's numbers depend on; training settings do not matter for zero-shot."""
    data: dict[str, Any] = {
        "task": plan.task,
        "model": plan.model,
        "eval_max_length": plan.eval_max_length,
        "eval_batch_size": plan.eval_batch_size,
        "folds": plan.folds,
        "fold_seed": plan.fold_seed,
        "precision": resolve_mixed_precision(plan.train.mixed_precision),
    }
    if plan.task_options:  # absent when empty: results from before task options keep their fingerprints
        data["task_options"] = plan.task_options
    if plan.eval_tasks:  # likewise for evaluation tasks and the fold scheme (issue #12)
        data["eval_tasks"] = plan.eval_tasks
    if plan.fold_scheme != LEGACY_FOLD_SCHEME:
        data["fold_scheme"] = plan.fold_scheme
    if method != "zero-shot":
        # use_prefixes changes no number on a backbone without prefixes (MiniLM): left out there, so
        # results trained before the setting existed keep their fingerprints
        ignore = () if uses_prefixes(plan.model) else ("use_prefixes",)
        ignore += ("seed", "progress", "checkpoint_every", "keep_checkpoint")
        train = {k: v for k, v in plan.train_config(method).fingerprint_fields().items() if k not in ignore}
        data.update(method=method, bitext=plan.bitext, train=train, size=size)
        if plan.bitext_files:
            data["bitext_files"] = plan.bitext_files
    return _digest(data)


def cell_folder(root: Path, lang: str, method: str, size: int | None | str, fold: int, seed: int) -> Path:
    """``<root>/<lang>/<method>[@<size>]/fold<k>-seed<s>``: where a cell's files live."""
    name = method if size == "default" else f"{method}@{size_label(size)}"
    return root / lang / name / f"fold{fold}-seed{seed}"


def plan_cells(
    plan: ComparePlan, root: Path, variants: list[tuple[str, int | None | str]] | None = None
) -> Iterator[tuple[str, str, int | None | str, int, int, Path]]:
    """Every cell a plan runs: (lang, method, size, fold, seed, folder). Every method, zero-shot too,
    has one cell per seed (zero-shot's are identical: it is evaluated per seed like the others, so
    per-query tables pair by fold and seed)."""
    variants = variants if variants is not None else [(method, "default") for method in plan.methods]
    for lang in plan.langs:
        for method, size in variants:
            for fold in range(plan.folds):
                for seed in plan.seed_list():
                    yield lang, method, size, fold, seed, cell_folder(root, lang, method, size, fold, seed)


# ------------------------------------------------------------------ inputs
def _data_key(path: str, data_root: str | None) -> str:
    """A data file's name in a cell's identity: its path inside the data folder (the same bytes in
    another clone's data folder are the same input, so the folder itself is provenance, not
    identity), or the path as given for a file outside it (a user's TREC collection)."""
    if data_root:
        try:
            return Path(path).absolute().relative_to(Path(data_root).absolute()).as_posix()
        except ValueError:
            pass
    return str(path)


def cell_inputs(record: dict[str, Any], files: Sequence[str | Path], model: str) -> dict[str, Any]:
    """What a cell's numbers depend on besides its configuration, from a :func:`~.records.provenance`
    record (hashed once per run): ``epoch`` (:data:`RESULTS_EPOCH`), ``data`` (data file -> SHA-256,
    None for a file that does not exist) and ``model`` (one SHA-256 over the teacher's files; the hub
    id when the teacher is not a local folder)."""
    hashes = record["data_files_sha256"]
    teacher = record.get("teacher_files") or {}
    return {
        "epoch": RESULTS_EPOCH,
        "data": {_data_key(str(f), record.get("data_dir")): hashes[str(f)] for f in files},
        "model": teacher.get("sha256") or f"hub:{model}",
    }


def input_changes(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between two :func:`cell_inputs` records, in words (empty when nothing does)."""
    changes = []
    if saved.get("epoch") != current["epoch"]:
        changes.append(f"results epoch {saved.get('epoch')} -> {current['epoch']} (a code change altered the numbers)")
    if saved.get("model") != current["model"]:
        changes.append("the teacher model's files changed")
    old, new = saved.get("data", {}), current["data"]
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            what = (
                "now read"
                if name not in old
                else "no longer read"
                if name not in new
                else "missing now"
                if new[name] is None
                else "content changed"
            )
            changes.append(f"{name} ({what})")
    return changes


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
        worker: bool = False,
        poll_seconds: float = 30.0,
        join_wait: float = 0.0,
    ) -> None:
        self.plan, self.out, self.resume, self.progress = plan, Path(out), resume, progress
        # a --join worker computes cells of a comparison another process owns (see join/run_variants);
        # it waits up to join_wait seconds for that run to write this plan's config.json
        self.worker, self.poll_seconds, self.join_wait = worker, poll_seconds, join_wait
        if worker and not resume:
            raise DataError(
                "--join needs --resume: a worker must never delete cells others finished", fix="drop --no-resume"
            )
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
        ``lang``, a user's bitext, and MAFAND-MT's when it is the bitext."""
        files = list(self.task.data_files(lang))
        files += [f for task in self.eval_tasks.values() if not task.unavailable(lang) for f in task.data_files(lang)]
        files += self.plan.bitext_files
        if self.plan.bitext == "mafand":
            files += mafand_files(lang)
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
    @contextlib.contextmanager
    def locked(self):
        """Hold the results folder's :class:`~.records.FolderLock` while the body runs (the main
        process takes it; under data-parallel every process learns whether it got it)."""
        lock, failure = FolderLock(self.out), None
        if self.accelerator.is_main_process:
            try:
                lock.acquire()
            except DataError as exc:
                failure = exc
        if self.accelerator.num_processes > 1:
            message = broadcast_object_list([str(failure) if failure else None])[0]
            failure = failure or (DataError(message) if message else None)
        if failure is not None:
            raise failure
        try:
            yield
        finally:
            lock.release()

    def finished(self, folder: Path, lang: str, method: str, size: int | None | str) -> dict[str, Any] | None:
        """The record of a finished cell this run may serve as it is; None when the cell has to be
        computed. Raises when the cell was finished with another configuration or other inputs
        (data files, teacher, :data:`RESULTS_EPOCH`): serving it would mix numbers of two setups.

        A cell recorded before input hashing (no ``inputs`` in its ``done.json``, e.g. the committed
        ``results/compare-*``) is accepted on its configuration alone, and reported once per run."""
        info = read_done(folder) if self.resume else None  # a damaged done.json: a DataError naming it
        if info is None:
            return None
        if info.get("fingerprint") != cell_fingerprint(self.plan, method, size):
            raise DataError(
                f"{folder} holds results of another configuration"
                + self._precision_hint(info.get("fingerprint"), method, size),
                fix="write to another --out folder, or pass --no-resume to recompute it",
            )
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

    def _precision_hint(self, fingerprint: str | None, method: str, size: int | None | str) -> str:
        """Why a cell does not match when only the resolved precision differs: ``auto`` resolves by
        machine (bf16 where the CPU has native bf16), so a run resumed on another kind of CPU meets
        cells of the other precision."""
        here = resolve_mixed_precision(self.plan.train.mixed_precision)
        for other in ("bf16", "no"):
            plan = replace(self.plan, train=self.plan.train.replace(mixed_precision=other))
            if other != here and cell_fingerprint(plan, method, size) == fingerprint:
                return (
                    f" (only the precision differs: the cell was computed with {other}, this machine resolves "
                    f"--mixed-precision {self.plan.train.mixed_precision} to {here}; pass --mixed-precision "
                    f"{other} to continue the run at its precision — bf16 without native bf16 is ~100x slower — "
                    "or keep the precisions apart in two folders)"
                )
        return ""

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
        fingerprint = cell_fingerprint(self.plan, method, size)
        done = folder / "done.json"
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
            "fingerprint": fingerprint,
            "bitext": source if method != "zero-shot" else None,
            "train_pairs": train_info.get("train_pairs", 0),
            "dev_pairs": train_info.get("dev_pairs", 0),
            "best_step": train_info.get("best_step"),
            "best_dev_mrr": train_info.get("best_dev_mrr"),
            "steps": train_info.get("steps"),
            "stopped_early": train_info.get("stopped_early"),
            "selected_before_cap": train_info.get("selected_before_cap"),
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
            write_json(info, done)  # last: marks the cell finished
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
            with self.accelerator.autocast():  # encoded as the trainer encodes its dev set, scored as it scores it
                encoded = frozen.encode(sample.english, role=queries), frozen.encode(sample.foreign, role=documents)
            self._initial[key] = retrieval_mrr(*encoded)
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
        claim = self.claim(cell[0])
        if claim is None:
            return False
        try:
            self._report(self.run_cell(*cell))
        finally:
            if claim is not True:
                claim.release()
        return True

    def claim(self, folder: Path) -> FolderLock | bool | None:
        """The cell's lock (its folder's :class:`~.records.FolderLock`), or None when another process
        holds it. Under data-parallel the main process decides for all (True: no lock of our own)."""
        lock = None
        if self.accelerator.is_main_process:
            refuse_links(folder, root=self.out)  # a linked cell folder would be written (and emptied) elsewhere
            try:
                lock = FolderLock(folder).acquire()
            except FolderInUse:  # (a folder that cannot be created is an error, not someone else's cell)
                lock = None
        if self.accelerator.num_processes > 1:
            held = broadcast_object_list([lock is not None])[0]
            return (lock or True) if held else None
        return lock

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
        with self.locked():
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
        saved = self.out / "config.json"

        def plan_of(record: dict[str, Any]) -> dict[str, Any]:
            # a worker may use other threads and show no progress bars; everything else must be the same plan
            plan = {k: v for k, v in record.items() if k not in ("threads", "kind")}
            plan["train"] = {k: v for k, v in plan.get("train", {}).items() if k != "progress"}
            return plan

        mine = plan_of(json.loads(json.dumps(self.record(), default=str)))
        # a worker started beside its owner waits (join_wait) while the owner checks leakage and writes config.json;
        # it only reads that file (written atomically), so it never races the owner for the folder
        deadline, told = time.monotonic() + self.join_wait, False
        while True:
            theirs = plan_of(json.loads(saved.read_text(encoding="utf-8"))) if saved.exists() else None
            if theirs == mine or time.monotonic() >= deadline:
                break
            if not told:
                told = True
                tqdm.write(
                    f"--join: waiting up to {self.join_wait:.0f} s for {saved} to hold this plan "
                    f"({'it does not exist yet' if theirs is None else 'it holds another plan'})"
                )
            time.sleep(min(self.poll_seconds, 5.0))
        if theirs is None:
            raise DataError(
                f"{self.out} holds no comparison to join (no config.json)",
                fix="start the comparison without --join first; workers join it while it runs "
                "(--join-wait SECONDS: wait for it)",
            )
        if mine != theirs:
            differ = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
            raise DataError(
                f"--join: this plan differs from the comparison in {self.out} in {', '.join(differ)}",
                fix="give the worker exactly the command line of the run it joins (threads may differ)",
            )
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
        with self.locked():
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
        saved = json.loads((Path(out) / "config.json").read_text(encoding="utf-8"))
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


def size_label(size: int | None | str) -> str:
    return "all" if size is None else f"n{size}"
