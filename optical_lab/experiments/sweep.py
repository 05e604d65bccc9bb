"""`optical-lab sweep`: per-method hyper-parameters chosen on dev bitext only (protocol v2).

``docs/protocol_v2.md`` fixes the procedure before any v2 result exists; this module is that
procedure, nothing more. On one declared tuning language (default ``hau``) and seed 0, every
setting is trained on the language's MAFAND-MT ``train`` bitext with the full v2 budget and scored
by its best dev MRR on MAFAND-MT ``dev`` (the trainer's own model selection). **No evaluation
collection is ever encoded here.** Three stages, each reading the choices of the one before:

1. learning rate per trained method from :data:`LR_GRID` (OPTICAL at its default variant, optical+aug
   at weight 1); a method whose best lr is the grid's largest also tries :data:`LR_EDGE`, once;
2. OPTICAL at its chosen lr: cost variant (:data:`VARIANTS`) x epsilon (:data:`EPSILONS`), then the
   English term on/off at the chosen variant;
3. optical+aug at its chosen lr with OPTICAL's chosen settings: the augmentation weight
   (:data:`AUG_WEIGHTS`).

Rule: the highest best-dev-MRR wins; settings within :data:`TIE` of the best count as tied and the
first of them in grid order — the simpler one — is taken (grids are listed simplest first).

Every setting is a cell folder ``<out>/<method>/<slug>/`` with the trainer's log (loss, gradient
norm, and for OPTICAL the collapse diagnostics ``token_cos``/``plan_entropy`` every step) and a
``done.json`` written last, so a killed sweep resumes where it stopped and a finished one is only
read. The settings of one round (stage 1 of every method at once, then each later stage) are
independent, so ``--jobs N`` trains up to N of them at a time in separate processes (on a GPU,
several small trainings share the card); the choices are made afterwards, in grid order, exactly as
a one-process sweep makes them. ``<out>/chosen.json`` holds the per-method settings, which ``optical-lab compare
--method-config`` reads; ``<out>/sweep.md`` is the table of every setting tried.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..data.errors import DataError
from ..data.leakage import guard_overlap
from ..data.mafand import load_mafand, mafand_files
from ..data.ntrex import load_ntrex
from ..data.sib import load_sib
from ..io import BLOBS, read_jsonl, write_json, write_text
from ..methods.config import TrainConfig, preset
from ..methods.registry import parse_methods
from ..methods.runtime import set_threads
from ..methods.teacher import FrozenTeacher
from ..methods.trainer import make_accelerator, train_student
from ..models.encoder import Encoder
from .compact import compact_cell
from .records import DONE_NAME, FolderLock, environment, provenance, read_done

LR_GRID = (1e-5, 3e-5, 1e-4, 3e-4)
LR_EDGE = 1e-3  # tried once when a method's best lr is the grid's largest (deviation 2, protocol_v2.md)
VARIANTS = ("plain", "centred", "both")
EPSILONS = (0.05, 0.02, 0.1)
ENGLISH_WEIGHTS = (1.0, 0.0)
AUG_WEIGHTS = (1.0, 0.1)
TIE = 0.002
TRAINED = ("sentence-kd", "translate-train", "code-switch", "optical", "optical+aug")
STAGES = ("1-lr", "2-variant", "2-english", "3-aug-weight")  # run order, also the order of every sweep table


def slug(setting: dict[str, Any]) -> str:
    """Folder name of a setting, e.g. ``lr3e-05`` or ``lr0.0001-ot_variant=centred-epsilon=0.02``."""
    return "-".join(
        f"lr{v:g}" if k == "lr" else f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in setting.items()
    )


def choose(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The registered rule: best dev MRR, ties (within ``TIE``) to the first in grid order."""
    scored = [r for r in rows if r["best_dev_mrr"] is not None]
    if not scored:
        raise ValueError("no setting has a dev score")
    best = max(r["best_dev_mrr"] for r in scored)
    return next(r for r in scored if r["best_dev_mrr"] >= best - TIE)


class Sweep:
    """Trains the grid's settings for one language and model into ``out``; reads finished ones."""

    def __init__(
        self,
        out: str | Path,
        lang: str = "hau",
        model: str = "minilm",
        preset_name: str = "v2",
        methods: list[str] | None = None,
        seed: int = 0,
        threads: int = 0,
        allow_overlap: int = 0,
        progress: bool = True,
        jobs: int = 1,
        **overrides: Any,
    ) -> None:
        for name, value, low in (("threads", threads, 0), ("jobs", jobs, 1), ("allow_overlap", allow_overlap, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise DataError(
                    f"--{name.replace('_', '-')} {value!r}: must be an integer >= {low}",
                    fix=f"e.g. --{name.replace('_', '-')} {low}" + (" (0: automatic)" if name == "threads" else ""),
                )
        # what a worker process needs to build the same sweep (see train_in_parallel)
        self.options = dict(
            out=out,
            lang=lang,
            model=model,
            preset_name=preset_name,
            methods=methods,
            seed=seed,
            threads=threads,
            allow_overlap=allow_overlap,
            **overrides,
        )
        self.jobs = jobs
        self.read_only = False  # a finished sweep (done.json) is only read: run() then refuses to train
        self.out, self.lang, self.model, self.seed = Path(out), lang, model, seed
        self.methods = methods or list(TRAINED)
        self.threads, self.progress = threads, progress
        self.base_config = preset(preset_name, **overrides).replace(progress=progress)
        self.preset_name = preset_name
        self.train = load_mafand(lang, "train")
        self.dev = load_mafand(lang, "dev")
        self.allow_overlap = allow_overlap
        self.accelerator = make_accelerator(self.base_config.mixed_precision)
        self.base_config = self.base_config.replace(mixed_precision=self.accelerator.mixed_precision)
        self._encoder: Encoder | None = None
        self._frozen: FrozenTeacher | None = None
        self.rows: list[dict[str, Any]] = []

    # -------------------------------------------------------------- set-up
    def evaluation_texts(self) -> dict[str, list[str]]:
        """Every evaluation text the protocol's students are judged on for this language (both sides)."""
        ntrex = load_ntrex(self.lang)
        sib = load_sib(self.lang)
        english = load_sib("eng")
        return {
            "ntrex": ntrex.english + ntrex.target,
            "flores/sib": [t for split in sib.splits.values() for t in split.texts]
            + [t for split in english.splits.values() for t in split.texts],
        }

    @property
    def frozen(self) -> FrozenTeacher:
        if self._frozen is None:
            self._encoder = Encoder.load(self.model, device=self.accelerator.device)
            self._encoder.requires_grad_(False)
            self._frozen = FrozenTeacher(
                self._encoder,
                self.base_config.max_length,
                self.base_config.teacher_cache,
                cache_dir=self.out / ".cache" / "teacher",
                role=self.base_config.training_role,
            )
        return self._frozen

    # -------------------------------------------------------------- one setting
    def cell(self, method: str, setting: dict[str, Any]) -> tuple[Path, TrainConfig, str]:
        """(folder, training configuration, configuration fingerprint) of one setting."""
        config = self.base_config.replace(seed=self.seed, **setting)
        return (
            self.out / method / slug(setting),
            config,
            config.fingerprint(ignore=("progress", "checkpoint_every", "keep_checkpoint")),
        )

    def run(self, method: str, setting: dict[str, Any], stage: str) -> dict[str, Any]:
        folder, config, fingerprint = self.cell(method, setting)
        done = folder / DONE_NAME
        info = read_done(folder)
        if info is not None:
            if info.get("fingerprint") != fingerprint:
                raise DataError(
                    f"{folder} holds a sweep cell of another configuration", fix="sweep into another --out folder"
                )
            return info | {"cached": True}
        same = self.same_cell(method, fingerprint)
        if same is None and self.read_only:
            raise DataError(
                f"{self.out} is a finished sweep (done.json) but has no cell {folder.name} for {method}",
                fix="the grids changed since it ran, or a cell folder was deleted: sweep into a new --out "
                "folder (or restore the cell from git)",
            )
        if same is not None:
            # the very configuration already finished under another setting's name (stage 2's plain cost at
            # the default epsilon is stage 1's cell; the English term at weight 1 is stage 2's best): its
            # numbers are this setting's, so it is recorded here, pointing to it, not trained again
            info = read_done(same) | {
                "stage": stage,
                "setting": setting,
                "same_as": same.relative_to(self.out).as_posix(),
            }
            folder.mkdir(parents=True, exist_ok=True)
            write_json(info, done)
            return info | {"cached": True}
        folder.mkdir(parents=True, exist_ok=True)
        threads = set_threads(self.threads)
        start = time.perf_counter()
        student, _, result = train_student(
            self.frozen.encoder,
            self.frozen,
            method,
            self.train,
            self.dev,
            config,
            out_dir=folder,
            accelerator=self.accelerator,
            desc=f"sweep {self.lang} {method} {slug(setting)}",
        )
        info = {
            "lang": self.lang,
            "model": self.model,
            "method": method,
            "stage": stage,
            "setting": setting,
            "fingerprint": fingerprint,
            "best_dev_mrr": result.best_dev_mrr,
            "best_step": result.best_step,
            "dev_history": result.dev_history,
            "train_s": round(time.perf_counter() - start, 1),
            "threads": threads,
            "steps": result.steps,
            "stopped_early": result.stopped_early,
            "selected_before_cap": result.selected_before_cap,
            "train_pairs": result.train_pairs,
            "dev_pairs": result.dev_pairs,
            "diagnostics": last_diagnostics(folder / "train_log.jsonl"),
        }
        write_json({"setting": setting, "train": asdict(config)}, folder / "config.json")
        write_json(info, done)  # last: marks the cell finished
        compact_cell(folder, self.out / BLOBS)  # its training log (and a dictionary) as committed (.compact)
        del student
        return info

    def same_cell(self, method: str, fingerprint: str) -> Path | None:
        """A finished cell of ``method`` with this configuration fingerprint (trained, not itself a copy)."""
        for done in sorted((self.out / method).glob(f"*/{DONE_NAME}")):
            info = read_done(done.parent)
            if info.get("fingerprint") == fingerprint and info.get("method") == method and "same_as" not in info:
                return done.parent
        return None

    def stage(self, name: str, method: str, settings: list[dict[str, Any]]) -> dict[str, Any]:
        rows = []
        for setting in settings:
            info = self.run(method, setting, name)
            rows.append(info)
            if not any(r["method"] == method and r["setting"] == setting for r in self.rows):
                self.rows.append(info)
            tqdm.write(
                f"{name} {method:<15} {slug(setting):<45} best dev MRR {info['best_dev_mrr']:.4f} "
                f"(step {info['best_step']}{', cached' if info.get('cached') else ''})"
            )
        return choose(rows)["setting"]

    # -------------------------------------------------------------- the three stages
    def rounds(self) -> Iterator[list[tuple[str, str, list[dict[str, Any]]]]]:
        """Rounds of (stage, method, settings) in run order; the stages of one round are independent,
        later rounds use :attr:`chosen`."""
        yield [("1-lr", method, [{"lr": lr} for lr in LR_GRID]) for method in self.methods]
        # best at the grid's edge: one step further, then choose again
        yield [
            ("1-lr", method, [{"lr": lr} for lr in (*LR_GRID, LR_EDGE)])
            for method in self.methods
            if self.chosen[method]["lr"] == LR_GRID[-1]
        ]
        if "optical" in self.methods:
            lr = self.chosen["optical"]["lr"]
            yield [
                (
                    "2-variant",
                    "optical",
                    [{"lr": lr, "ot_variant": v, "epsilon": e} for v in VARIANTS for e in EPSILONS],
                )
            ]
            best = self.chosen["optical"]
            yield [("2-english", "optical", [{**best, "english_weight": w} for w in ENGLISH_WEIGHTS])]
            if "optical+aug" in self.methods:
                optical = {k: v for k, v in self.chosen["optical"].items() if k != "lr"}
                lr = self.chosen["optical+aug"]["lr"]
                yield [("3-aug-weight", "optical+aug", [{"lr": lr, **optical, "aug_weight": w} for w in AUG_WEIGHTS])]

    def needs_training(self, method: str, setting: dict[str, Any]) -> str | None:
        """The configuration fingerprint of a setting that :meth:`run` would train (None: finished, or the
        same configuration as a finished cell)."""
        folder, _, fingerprint = self.cell(method, setting)
        if (folder / "done.json").exists() or self.same_cell(method, fingerprint) is not None:
            return None
        return fingerprint

    def train_in_parallel(self, cells: list[tuple[str, dict[str, Any], str]]) -> None:
        """With ``jobs > 1``: train the (method, setting, stage) cells of one round that need it, up to
        :attr:`jobs` at a time in worker processes (spawned: safe with CUDA); each writes its cell folder,
        nothing is chosen here. With one job (or one cell) it does nothing: the stage loop trains them."""
        todo, seen = [], set()
        for method, setting, stage in cells:
            fingerprint = self.needs_training(method, setting)
            if fingerprint is not None and (method, fingerprint) not in seen:  # a duplicate waits for same_as
                seen.add((method, fingerprint))
                todo.append((method, setting, stage, fingerprint))
        if self.jobs == 1 or len(todo) < 2:
            return
        if self.base_config.teacher_cache:  # the teacher's targets once, on disk, before the workers read them
            with self.accelerator.autocast():
                self.frozen.precompute(self.train.subsample(self.base_config.max_train_pairs, self.seed).english)
        tqdm.write(f"training {len(todo)} settings, {min(self.jobs, len(todo))} at a time")
        failed = []
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(self.jobs, len(todo)), mp_context=context) as pool:
            futures = {pool.submit(_train_cell, self.options, *cell): cell for cell in todo}
            for future in as_completed(futures):
                if not future.cancelled() and future.exception() is not None:
                    method, setting = futures[future][:2]
                    failed.append(f"{method} {slug(setting)}: {future.exception()!r}")
                    tqdm.write(f"FAILED {failed[-1]}")
                    pool.shutdown(wait=False, cancel_futures=True)  # the cells in flight finish, the queue is dropped
        if failed:
            raise DataError(
                f"{len(failed)} sweep setting(s) failed in worker processes: " + "; ".join(failed),
                fix="read the error(s) above; finished cells are kept, re-run the sweep to resume",
            )

    def run_all(self) -> dict[str, dict[str, Any]]:
        """The whole sweep under the folder's lock (a second sweep into it refuses; the parallel workers
        write only into the cells this process hands them); a finished one (``done.json``) is only read."""
        with FolderLock(self.out):
            return self._run_all()

    def _run_all(self) -> dict[str, dict[str, Any]]:
        evaluation = self.evaluation_texts()  # read once, checked against both bitexts
        report = guard_overlap(
            self.train, evaluation, allow_overlap=self.allow_overlap, train_name=f"mafand-mt/{self.lang} train"
        )
        report_dev = guard_overlap(
            self.dev, evaluation, allow_overlap=self.allow_overlap, train_name=f"mafand-mt/{self.lang} dev"
        )
        finished = self.out / DONE_NAME
        recorded = read_done(self.out)
        if recorded is not None:
            # a finished sweep is only read (nothing trained, no record rewritten: its provenance stays that of
            # the run that made it), and its cells must still make the choices it records
            self.read_only = True
            chosen = self.choose_all()
            if any(chosen[m] != recorded.get("chosen", {}).get(m) for m in chosen):
                raise DataError(
                    f"{finished}: its cells now choose other settings than it records",
                    fix="the tie rule changed since it ran: sweep into a new --out folder",
                )
            return chosen
        report.write_json(self.out / "leakage_train.json")
        report_dev.write_json(self.out / "leakage_dev.json")
        write_json(
            {
                "kind": "sweep",
                "lang": self.lang,
                "model": self.model,
                "preset": self.preset_name,
                "seed": self.seed,
                "methods": self.methods,
                "train": asdict(self.base_config),
                "grids": {
                    "lr": LR_GRID,
                    "lr_edge": LR_EDGE,
                    "ot_variant": VARIANTS,
                    "epsilon": EPSILONS,
                    "english_weight": ENGLISH_WEIGHTS,
                    "aug_weight": AUG_WEIGHTS,
                },
                "tie": TIE,
            },
            self.out / "config.json",
        )
        data_files = [p for split in ("train", "dev") for p in mafand_files(self.lang, (split,))]
        write_json(
            environment()
            | provenance(data_files, self.frozen.encoder.source)
            | {"torch_threads": torch.get_num_threads()},
            self.out / "environment.json",
        )
        chosen = self.choose_all()
        write_json({"chosen": chosen, "cells": len(self.rows)}, finished)  # last: the sweep is finished
        return chosen

    def choose_all(self) -> dict[str, dict[str, Any]]:
        """Every round: train the settings not yet finished (in parallel with ``jobs > 1``, else one by one in
        :meth:`stage`), then choose, writing chosen.json and sweep.md after each stage; a finished sweep
        (:attr:`read_only`) only chooses."""
        self.chosen: dict[str, dict[str, Any]] = {}
        for round_ in self.rounds():
            if not self.read_only:
                self.train_in_parallel(
                    [(method, setting, stage) for stage, method, settings in round_ for setting in settings]
                )
            for stage, method, settings in round_:
                self.chosen[method] = self.stage(stage, method, settings)
                if not self.read_only:
                    write_json(self.chosen, self.out / "chosen.json")
                    self.write_table()  # after every stage: a long sweep's table grows as its cells land
        return self.chosen

    def write_table(self) -> pd.DataFrame:
        table = sweep_table(sorted(self.rows, key=row_order))  # the same table whatever the jobs, and as finished_rows
        write_text(render(table, self.chosen, self.lang, self.model), self.out / "sweep.md")
        return table


def _train_cell(options: dict[str, Any], method: str, setting: dict[str, Any], stage: str, fingerprint: str) -> None:
    """One setting in a worker process (:meth:`Sweep.train_in_parallel`), which must build the very
    configuration the parent planned."""
    sweep = Sweep(**options, progress=False)
    if sweep.cell(method, setting)[2] != fingerprint:
        raise RuntimeError(
            f"a worker built another configuration for {method} {slug(setting)}: "
            "Sweep.options is missing a constructor argument"
        )
    sweep.run(method, setting, stage)


# what the diagnostic columns of a sweep table mean (sweep.md and the v2 results document)
DIAGNOSTICS_TEXT = (
    "OPTICAL diagnostics are means over a cell's last 20 training steps: `token_cos` = mean pairwise cosine of a "
    "sentence's student tokens (collapse indicator), `plan_entropy` = the foreign plan's normalised row entropy, "
    "`marginal_error` = Sinkhorn's L1 marginal error on the foreign plans, `ot_not_converged` = OT problems per step "
    "(one per pair and term: foreign, and English when its weight is not 0) left above the tolerance "
    "(√float32-eps) after the iterations; `grad_norm` = the gradient norm before clipping."
)


def last_diagnostics(log: Path) -> dict[str, float]:
    """Mean of the OPTICAL diagnostics over the last 20 logged training steps (empty for other methods)."""
    keys = ("token_cos", "plan_entropy", "marginal_error", "ot_not_converged", "grad_norm")
    steps = [r for r in read_jsonl(log) if r.get("event") == "train"][-20:]
    return {k: sum(r[k] for r in steps) / len(steps) for k in keys if steps and all(k in r for r in steps)}


def row_order(row: dict[str, Any]) -> tuple:
    """Stage (run order), method (TRAINED order), then the setting's keys and values."""

    def rank(value: str, order: tuple[str, ...]) -> int:
        return order.index(value) if value in order else len(order)

    setting = row["setting"]
    return (
        rank(row["stage"], STAGES),
        rank(row["method"], TRAINED),
        tuple(map(str, setting)),
        tuple(v if isinstance(v, (int, float)) else str(v) for v in setting.values()),
    )


def finished_rows(out: str | Path) -> list[dict[str, Any]]:
    """The ``done.json`` of every finished cell of a sweep folder, in stage order (then method, setting)."""
    rows = [read_done(p.parent) for p in Path(out).glob(f"*/*/{DONE_NAME}")]
    return sorted(rows, key=row_order)


def sweep_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    records = []
    for r in rows:
        records.append(
            {
                "stage": r["stage"],
                "method": r["method"],
                "setting": slug(r["setting"]),
                "same as": r.get("same_as", ""),
                "best dev MRR": r["best_dev_mrr"],
                "best step": r["best_step"],
                **{k: v for k, v in r.get("diagnostics", {}).items()},
                "train s": r["train_s"],
            }
        )
    return pd.DataFrame(records)


def render(table: pd.DataFrame, chosen: dict[str, dict[str, Any]], lang: str, model: str) -> str:
    lines = [
        f"# Hyper-parameter sweep on dev bitext ({model}, {lang}, seed 0)",
        "",
        "Generated by `optical-lab sweep` (docs/protocol_v2.md). Score: best dev MRR on MAFAND-MT dev; "
        "no evaluation collection was encoded. " + DIAGNOSTICS_TEXT,
        "",
        "## Chosen",
        "",
    ]
    lines += [f"- **{m}**: {slug(s)}" for m, s in chosen.items()]
    lines += ["", "## Every setting tried", "", table.to_markdown(index=False, floatfmt=".4f"), ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lang", default="hau", help="the declared tuning language (MAFAND-MT train/dev)")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--methods", default=",".join(TRAINED), help="trained methods to tune")
    parser.add_argument("--preset", default="v2")
    parser.add_argument("--steps", type=int, help="override the preset's steps (tests)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--freeze-word-embeddings",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the students' word-embedding table as the teacher's (see TrainConfig; default off)",
    )
    parser.add_argument("--threads", type=int, default=0, help="threads per training process (0: auto)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="settings trained at a time, each in its own process (a GPU: several; 2 CPU cores: 1); "
        "give --threads too: an automatic thread count may differ per worker, and on a CPU the "
        "thread count changes the float rounding of a result",
    )
    parser.add_argument(
        "--allow-overlap",
        type=int,
        default=0,
        help="evaluation texts that may occur in the bitext before the sweep refuses",
    )
    parser.add_argument("--out", default="results/v2-minilm/sweep")
    parser.add_argument("--no-progress", action="store_true")


def main(args: argparse.Namespace) -> None:
    methods = [m for m in parse_methods(args.methods) if m != "zero-shot"]
    sweep = Sweep(
        args.out,
        lang=args.lang,
        model=args.model,
        preset_name=args.preset,
        methods=methods,
        seed=args.seed,
        threads=args.threads,
        allow_overlap=args.allow_overlap,
        progress=not args.no_progress,
        jobs=args.jobs,
        steps=args.steps,
        freeze_word_embeddings=args.freeze_word_embeddings,
    )
    chosen = sweep.run_all()
    print(json.dumps(chosen, indent=2))
    print(f"results: {args.out}/chosen.json, {args.out}/sweep.md")
