"""`optical-lab sweep`: per-method hyper-parameters chosen on dev bitext only (protocols v2 and v3).

``docs/protocol_v2.md`` and ``docs/protocol_v3.md`` fix the procedure before any result of theirs exists; this
module runs it, nothing more. Which settings are tried, in which rounds, and the choice rule are a declared
design (:mod:`.sweep_design`: ``--design v2``, one tuning language; ``--design v3``, the same 12-setting budget
for every trained arm with the edge rule, on several selection languages). Every setting is trained at seed 0
on each selection language's MAFAND-MT ``train`` bitext with the design's preset and scored by its best dev MRR
on MAFAND-MT ``dev`` (the trainer's own model selection; v3: among the preset's English distractors), averaged
over the selection languages. **No evaluation collection is ever encoded here.**

Every (setting, language) is a cell folder, ``<out>/<method>/<slug>/`` (v2) or ``<out>/<method>/<slug>/<lang>/``
(v3), with the trainer's log and a ``done.json`` written last, then compacted: a killed sweep resumes where it
stopped, a finished one is only read. ``--jobs N`` trains up to N cells of a round at a time in separate
processes; the choices are made afterwards, in grid order, as a one-process sweep makes them.
``<out>/chosen.json`` holds the per-method settings (flat keys) that ``optical-lab compare --method-config``
reads (v3: and ``settings_tried``, per arm the settings tried and the edge rule's extensions, which compare
ignores: :func:`.sweep_design.arm_settings`); ``<out>/sweep.md`` tables every setting tried (v3: ``settings_tried``
per arm, also in ``done.json``).
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..data.errors import DataError
from ..data.languages import canonical_code, known_languages
from ..data.leakage import guard_overlap
from ..data.mafand import load_mafand, mafand_family, mafand_files
from ..data.ntrex import load_ntrex
from ..data.sib import load_sib
from ..io import BLOBS, write_json, write_text
from ..methods.checkpoint import CHECKPOINT_NAME
from ..methods.config import TrainConfig, preset
from ..methods.runtime import set_threads
from ..methods.teacher import FrozenTeacher
from ..methods.train_state import TrainingDiverged
from ..methods.trainer import make_accelerator, train_student
from ..models.encoder import Encoder
from ..models.registry import DEFAULT_MODEL
from .cache import ResultFolder
from .compact import compact_cell
from .records import DONE_NAME, FolderLock, environment, provenance, read_done
from .suite import DEFAULT_ALLOWED_OVERLAP
from .sweep_design import DESIGNS, SETTINGS_TRIED, TIE, Stage, choose, slug
from .sweep_tables import finished_rows, last_diagnostics, render, row_order, settings_table, sweep_table

__all__ = ["Sweep", "choose", "finished_rows", "slug"]


class Sweep:
    """Trains a design's settings for its selection languages and one model into ``out``; reads finished ones.

    ``langs`` (or ``lang``, one language: the v2 spelling) default to the design's selection languages;
    ``preset_name`` and ``methods`` to the design's; ``overrides`` change the preset (tests, smoke runs)."""

    def __init__(
        self,
        out: str | Path,
        lang: str | None = None,
        model: str = DEFAULT_MODEL,
        preset_name: str | None = None,
        methods: list[str] | None = None,
        seed: int = 0,
        threads: int = 0,
        allow_overlap: int = DEFAULT_ALLOWED_OVERLAP,
        progress: bool = True,
        jobs: int = 1,
        design: str = "v2",
        langs: list[str] | None = None,
        **overrides: Any,
    ) -> None:
        for name, value, low in (("threads", threads, 0), ("jobs", jobs, 1), ("allow_overlap", allow_overlap, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise DataError(
                    f"--{name.replace('_', '-')} {value!r}: must be an integer >= {low}",
                    fix=f"e.g. --{name.replace('_', '-')} {low}" + (" (0: automatic)" if name == "threads" else ""),
                )
        if design not in DESIGNS:
            raise DataError(f"unknown sweep design {design!r}", fix=f"use --design {' or '.join(DESIGNS)}")
        self.design = DESIGNS[design]
        langs = [canonical_code(code) for code in (langs or ([lang] if lang else self.design.langs))]
        if not self.design.per_language and len(langs) != 1:
            raise DataError(
                f"sweep design {design} tunes on one language, got {', '.join(langs)}", fix="give one --lang"
            )
        preset_name = preset_name or self.design.preset
        # what a worker process needs to build the same sweep (see train_in_parallel)
        self.options = dict(
            out=out,
            langs=langs,
            model=model,
            preset_name=preset_name,
            methods=methods,
            seed=seed,
            threads=threads,
            allow_overlap=allow_overlap,
            design=design,
            **overrides,
        )
        self.jobs = jobs
        self.read_only = False  # a finished sweep (done.json) is only read: run() then refuses to train
        self.out, self.langs, self.model, self.seed = Path(out), langs, model, seed
        self.methods = list(methods or self.design.methods)
        self.threads, self.progress = threads, progress
        self.base_config = preset(preset_name, **overrides).replace(progress=progress)
        self.preset_name = preset_name
        self.bitext = {lang: (load_mafand(lang, "train"), load_mafand(lang, "dev")) for lang in langs}
        self.allow_overlap = allow_overlap
        self.accelerator = make_accelerator(self.base_config.mixed_precision)
        self.base_config = self.base_config.replace(mixed_precision=self.accelerator.mixed_precision)
        self._encoder: Encoder | None = None
        self._frozen: FrozenTeacher | None = None
        self.rows: dict[tuple, dict[str, Any]] = {}  # every cell's done.json, by (method, setting, language)
        self.scores: list[dict[str, Any]] = []  # one per (stage, method, setting): the score the rule chose on
        self.tried: dict[str, list[dict[str, Any]]] = {}  # per method, every setting tried, in grid order

    # -------------------------------------------------------------- set-up
    def evaluation_texts(self, lang: str) -> dict[str, list[str]]:
        """Every evaluation text of the NTREX and FLORES (SIB) collections the data folder holds for ``lang``
        (both sides): the bitext must not contain them."""
        datasets = known_languages()[lang].datasets
        texts = {}
        if "ntrex-128" in datasets:
            ntrex = load_ntrex(lang)
            texts["ntrex"] = ntrex.english + ntrex.target
        if "sib-200" in datasets:
            sib, english = load_sib(lang), load_sib("eng")
            texts["flores/sib"] = [t for split in sib.splits.values() for t in split.texts] + [
                t for split in english.splits.values() for t in split.texts
            ]
        return texts

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
    def cell(self, method: str, setting: dict[str, Any], lang: str) -> tuple[Path, TrainConfig, str]:
        """(folder, training configuration, configuration fingerprint) of one setting on one language."""
        config = self.base_config.replace(seed=self.seed, **setting)
        folder = self.out / method / slug(setting)
        return (
            folder / lang if self.design.per_language else folder,
            config,
            config.fingerprint(ignore=("progress", "checkpoint_every", "keep_checkpoint")),
        )

    def run(self, method: str, setting: dict[str, Any], stage: str, lang: str) -> dict[str, Any]:
        folder, config, fingerprint = self.cell(method, setting, lang)
        cell = ResultFolder(folder, fingerprint, what="a sweep cell", fix="sweep into another --out folder")
        info = cell.read()
        if info is not None:
            return info | {"cached": True}
        same = self.same_cell(method, fingerprint, lang)
        if same is None and self.read_only:
            raise DataError(
                f"{self.out} is a finished sweep (done.json) but has no cell {folder.name} for {method}",
                fix="the grids changed since it ran, or a cell folder was deleted: sweep into a new --out "
                "folder (or restore the cell from git)",
            )
        if same is not None:
            # the very configuration already finished under another setting's name (v2: stage 2's plain cost at
            # the default epsilon is stage 1's cell; the English term at weight 1 is stage 2's best): its
            # numbers are this setting's, so it is recorded here, pointing to it, not trained again
            info = read_done(same) | {
                "stage": stage,
                "setting": setting,
                "same_as": same.relative_to(self.out).as_posix(),
            }
            return cell.finish(info) | {"cached": True}
        folder.mkdir(parents=True, exist_ok=True)
        threads = set_threads(self.threads)
        start = time.perf_counter()
        train, dev = self.bitext[lang]
        identity = {
            "lang": lang,
            "model": self.model,
            "method": method,
            "stage": stage,
            "setting": setting,
            "fingerprint": fingerprint,
        }
        try:
            student, _, result = train_student(
                self.frozen.encoder,
                self.frozen,
                method,
                train,
                dev,
                config,
                out_dir=folder,
                accelerator=self.accelerator,
                desc=f"sweep {lang} {method} {slug(setting)}",
            )
        except TrainingDiverged as error:  # a run without dev selection: the trainer has no state to return
            return self.diverged(cell, folder, config, identity | {"diverged": str(error), "threads": threads}, start)
        if result.diverged is not None:  # the trainer returned its best dev state so far (methods/trainer.py)
            del student
            info = identity | {"diverged": result.diverged, "diverged_step": result.diverged_step, "threads": threads}
            return self.diverged(cell, folder, config, info, start)
        info = {
            **identity,
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
        del student
        return self.finish(cell, folder, config, info)

    def diverged(
        self, cell: ResultFolder, folder: Path, config: TrainConfig, info: dict[str, Any], start: float
    ) -> dict[str, Any]:
        """Finish a setting whose run diverged without a dev score (protocol v3 deviation 2: its setting cannot be
        chosen, whatever dev state the trainer fell back on), not retried on every resume."""
        (folder / CHECKPOINT_NAME).unlink(missing_ok=True)  # its resume state: never resumed, never committed
        info |= {"best_dev_mrr": None, "best_step": None, "train_s": round(time.perf_counter() - start, 1)}
        return self.finish(cell, folder, config, info)

    def finish(self, cell: ResultFolder, folder: Path, config: TrainConfig, info: dict[str, Any]) -> dict[str, Any]:
        """Write a trained (or diverged) cell's config and ``done.json`` (last: marks it finished), then compact
        its training log (and a dictionary) as committed (``.compact``)."""
        write_json({"setting": info["setting"], "train": asdict(config)}, folder / "config.json")
        cell.finish(info)
        compact_cell(folder, self.out / BLOBS)
        return info

    def same_cell(self, method: str, fingerprint: str, lang: str) -> Path | None:
        """A finished cell of ``method`` on ``lang`` with this configuration fingerprint (trained, not a copy)."""
        pattern = f"*/{lang}/{DONE_NAME}" if self.design.per_language else f"*/{DONE_NAME}"
        for done in sorted((self.out / method).glob(pattern)):
            info = read_done(done.parent)
            if (
                info.get("fingerprint") == fingerprint
                and info.get("method") == method
                and info.get("lang", lang) == lang
                and "same_as" not in info
            ):
                return done.parent
        return None

    def stage(self, stage: Stage) -> dict[str, Any]:
        """Every setting of ``stage`` on every selection language (trained or read), each scored by the mean of
        its languages' best dev MRR; the setting the rule (:func:`.sweep_design.choose`) takes."""
        rows = []
        for setting in stage.settings:
            infos = [self.run(stage.method, setting, stage.name, lang) for lang in self.langs]
            for info in infos:  # each cell once, as first read (a same_as copy under its own setting)
                self.rows.setdefault((stage.method, slug(setting), info["lang"]), info)
            scores = [info["best_dev_mrr"] for info in infos]
            score = None if None in scores else sum(scores) / len(scores)
            langs = dict(zip(self.langs, scores))
            row = {"stage": infos[0]["stage"], "method": stage.method, "setting": setting, "best_dev_mrr": score}
            rows.append(row | {"langs": langs})
            tqdm.write(
                f"{stage.name} {stage.method:<15} {slug(setting):<45} dev MRR "
                + " ".join(f"{lang} {value:.4f}" if value is not None else f"{lang} -" for lang, value in langs.items())
                + (f", mean {score:.4f}" if score is not None and len(langs) > 1 else "")
                + (", cached" if all(i.get("cached") for i in infos) else "")
            )
        self.scores = [r for r in self.scores if r["method"] != stage.method or r["setting"] not in stage.settings]
        self.scores += rows
        self.tried[stage.method] = list(stage.settings)
        return choose(rows)["setting"]

    def needs_training(self, method: str, setting: dict[str, Any], lang: str) -> str | None:
        """The configuration fingerprint of a cell that :meth:`run` would train (None: finished, or the same
        configuration as a finished cell)."""
        folder, _, fingerprint = self.cell(method, setting, lang)
        if (folder / DONE_NAME).exists() or self.same_cell(method, fingerprint, lang) is not None:
            return None
        return fingerprint

    def train_in_parallel(self, cells: list[tuple[str, dict[str, Any], str, str]]) -> None:
        """With ``jobs > 1``: train the (method, setting, stage, lang) cells of one round that need it, up to
        :attr:`jobs` at a time in worker processes (spawned: safe with CUDA); each writes its cell folder,
        nothing is chosen here. With one job (or one cell) it does nothing: the stage loop trains them."""
        todo, seen = [], set()
        for method, setting, stage, lang in cells:
            fingerprint = self.needs_training(method, setting, lang)
            if fingerprint is not None and (method, fingerprint, lang) not in seen:  # a duplicate waits for same_as
                seen.add((method, fingerprint, lang))
                todo.append((method, setting, stage, lang, fingerprint))
        if self.jobs == 1 or len(todo) < 2:
            return
        if self.base_config.teacher_cache:  # the teacher's targets once, on disk, before the workers read them
            with self.accelerator.autocast():
                for lang in dict.fromkeys(cell[3] for cell in todo):
                    english = self.bitext[lang][0].subsample(self.base_config.max_train_pairs, self.seed).english
                    self.frozen.precompute(english)
        tqdm.write(f"training {len(todo)} cells, {min(self.jobs, len(todo))} at a time")
        failed = []
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(self.jobs, len(todo)), mp_context=context) as pool:
            futures = {pool.submit(_train_cell, self.options, *cell): cell for cell in todo}
            for future in as_completed(futures):
                if not future.cancelled() and future.exception() is not None:
                    method, setting, _, lang = futures[future][:4]
                    failed.append(f"{method} {slug(setting)} {lang}: {future.exception()!r}")
                    tqdm.write(f"FAILED {failed[-1]}")
                    pool.shutdown(wait=False, cancel_futures=True)  # the cells in flight finish, the queue is dropped
        if failed:
            raise DataError(
                f"{len(failed)} sweep cell(s) failed in worker processes: " + "; ".join(failed),
                fix="read the error(s) above; finished cells are kept, re-run the sweep to resume",
            )

    def run_all(self) -> dict[str, dict[str, Any]]:
        """The whole sweep under the folder's lock (a second sweep into it refuses; the parallel workers
        write only into the cells this process hands them); a finished one (``done.json``) is only read."""
        with FolderLock(self.out):
            return self._run_all()

    def _run_all(self) -> dict[str, dict[str, Any]]:
        reports = {}
        for lang, (train, dev) in self.bitext.items():
            evaluation = self.evaluation_texts(lang)  # read once, checked against both bitexts
            for split, bitext in (("train", train), ("dev", dev)):
                name = f"mafand-mt/{lang} {split}"
                reports[(split, lang)] = guard_overlap(
                    bitext, evaluation, allow_overlap=self.allow_overlap, train_name=name
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
        for (split, lang), report in reports.items():
            report.write_json(
                self.out / (f"leakage_{split}_{lang}.json" if self.design.per_language else f"leakage_{split}.json")
            )
        write_json(self.record(), self.out / "config.json")
        write_json(
            environment()
            | provenance(self.data_files(), self.frozen.encoder.source)
            | {"torch_threads": torch.get_num_threads()},
            self.out / "environment.json",
        )
        chosen = self.choose_all()
        write_json({"chosen": chosen, "cells": len(self.rows), **self.tried_report()}, finished)  # last: finished
        return chosen

    def record(self) -> dict[str, Any]:
        """The sweep's ``config.json``: design, languages, preset, arms, grids and rule."""
        where = (
            {"design": self.design.name, "langs": self.langs} if self.design.per_language else {"lang": self.langs[0]}
        )
        return {
            "kind": "sweep",
            **where,
            "model": self.model,
            "preset": self.preset_name,
            "seed": self.seed,
            "methods": self.methods,
            "train": asdict(self.base_config),
            "grids": self.design.grids(),
            "tie": TIE,
        }

    def data_files(self) -> list[Path]:
        """The MAFAND-MT files the cells read (and, with dev distractors, the other family languages' dev)."""
        files = [p for lang in self.langs for split in ("train", "dev") for p in mafand_files(lang, (split,))]
        if self.base_config.dev_distractors:
            files += [f for other in mafand_family() for f in mafand_files(other, ("dev",))]
        return list(dict.fromkeys(files))

    def settings_tried(self) -> dict[str, dict[str, Any]]:
        """Per arm: how many settings it tried and which of them the edge rule added (stage ``*-edge``)."""
        return {
            method: {
                "settings": len(settings),
                "extensions": [
                    r["setting"] for r in self.scores if r["method"] == method and r["stage"].endswith("edge")
                ],
            }
            for method, settings in self.tried.items()
        }

    def tried_report(self) -> dict[str, Any]:
        """``{"settings_tried": ...}`` for a design with selection languages (v3), written beside the choices in
        ``chosen.json`` and ``done.json``; empty for v2 (its committed files stay as they are)."""
        return {SETTINGS_TRIED: self.settings_tried()} if self.design.per_language else {}

    def choose_all(self) -> dict[str, dict[str, Any]]:
        """Every round: train the cells not yet finished (in parallel with ``jobs > 1``, else one by one in
        :meth:`stage`), then choose, writing chosen.json and sweep.md after each stage; a finished sweep
        (:attr:`read_only`) only chooses."""
        self.chosen: dict[str, dict[str, Any]] = {}
        for round_ in self.design.rounds(self):
            if not self.read_only:
                self.train_in_parallel(
                    [(s.method, setting, s.name, lang) for s in round_ for setting in s.settings for lang in self.langs]
                )
            for stage in round_:
                self.chosen[stage.method] = self.stage(stage)
                if not self.read_only:
                    write_json(self.chosen | self.tried_report(), self.out / "chosen.json")
                    self.write_table()  # after every stage: a long sweep's table grows as its cells land
        return self.chosen

    def write_table(self) -> pd.DataFrame:
        table = sweep_table(
            sorted(self.rows.values(), key=row_order)
        )  # the same table whatever the jobs, and as finished_rows
        tried = self.settings_tried() if self.design.per_language else None
        scores = settings_table(sorted(self.scores, key=row_order), self.langs) if tried else None
        write_text(render(table, self.chosen, self.langs, self.model, scores, tried), self.out / "sweep.md")
        return table


def _train_cell(
    options: dict[str, Any], method: str, setting: dict[str, Any], stage: str, lang: str, fingerprint: str
) -> None:
    """One cell in a worker process (:meth:`Sweep.train_in_parallel`), which must build the very
    configuration the parent planned."""
    sweep = Sweep(**options, progress=False)
    if sweep.cell(method, setting, lang)[2] != fingerprint:
        raise RuntimeError(
            f"a worker built another configuration for {method} {slug(setting)}: "
            "Sweep.options is missing a constructor argument"
        )
    sweep.run(method, setting, stage, lang)
