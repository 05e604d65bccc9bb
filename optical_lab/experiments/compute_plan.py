"""The compute plan of a comparison (``<results>/plan.json``), measured on the machine at hand.

Protocol v2 (``docs/protocol_v2.md``, "Compute plan") asks each run to write down what its grid
costs *here*, so that the trade-off between pairs seen, languages and seeds is planned from
measurements instead of guesses. This module measures three things:

* **truncation** — for every language, the fraction of training sentences (foreign and English)
  the backbone's tokenizer cuts at the run's training length (and at 64 tokens, the v1 length, for
  reference). A cut foreign sentence leaves English tokens without a counterpart, which balanced
  OT must still transport somewhere, so the protocol reports it for every run;
* **step rates** — the median wall seconds of one training step per method, read from the
  ``train_log.jsonl`` of every finished or running cell under the results folder (the sweep's
  included) that ran on this machine's kind of device (a cell's ``done.json`` says, else its run's
  environment record), with the thread counts the cells used;
* **the grid** — cells planned, finished and left, and the CPU-hours left at the measured rates.

``optical-lab plan results/v2-minilm`` writes ``plan.json`` next to the
comparison's ``config.json`` (re-run it any time: it re-measures) and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterable

from ..data.errors import DataError
from ..data.mafand import load_mafand, mafand_family
from ..io import read_json, read_jsonl, stored_exists, stored_glob, write_text
from ..methods.config import preset
from ..methods.registry import METHODS
from ..methods.runtime import (
    cpu_description,
    cpu_model,
    device_description,
    device_line,
    resolve_mixed_precision,
    shown_flags,
)
from .command import run_module
from .committed_size import committed_bytes, method_of
from .identity import plan_cells
from .plan import ComparePlan, plan_from_saved
from .sweep_design import DESIGNS, V3_ARMS, V3_GRIDS

V1_MAX_LENGTH = 64
GPU_PROCESSES = 8  # training processes sharing one lent GPU (scripts/device_grid.sh; the me5-small sweep ran 8)


def token_counts(tokenizer, texts: Iterable[str], prefix: str = "") -> list[int]:
    """Tokens per text, special tokens included (what truncation at ``max_length`` compares to)."""
    ids = tokenizer([prefix + t for t in texts], add_special_tokens=True, truncation=False)["input_ids"]
    return [len(x) for x in ids]


def cut_fraction(counts: list[int], max_length: int) -> float:
    """Fraction of texts longer than ``max_length`` tokens (they lose their tail in training)."""
    return sum(c > max_length for c in counts) / len(counts) if counts else 0.0


def truncation(plan: ComparePlan, lang: str, tokenizer, prefix: str = "") -> dict[str, Any]:
    """Training-bitext size and cut rates of one language (MAFAND-MT train when that is the bitext; a
    language without a MAFAND-MT pair in the data folder is then an error, as in the runner)."""
    if plan.bitext != "mafand":
        return {"source": plan.bitext, "note": "cut rates are measured for MAFAND-MT bitext only"}
    train = load_mafand(lang, "train")
    foreign, english = token_counts(tokenizer, train.foreign, prefix), token_counts(tokenizer, train.english, prefix)
    lengths = sorted({plan.train.max_length, V1_MAX_LENGTH})
    return {
        "source": "mafand-mt train",
        "pairs": len(train),
        # the trainer draws steps x batch_size pairs from a subsample of at most max_train_pairs
        "distinct_pairs": min(
            len(train), plan.train.steps * plan.train.batch_size, plan.train.max_train_pairs or len(train)
        ),
        "foreign_tokens_median": statistics.median(foreign),
        "english_tokens_median": statistics.median(english),
        "cut_foreign": {str(n): round(cut_fraction(foreign, n), 4) for n in lengths},
        "cut_english": {str(n): round(cut_fraction(english, n), 4) for n in lengths},
    }


def here() -> str:
    """This machine's device, as cells record it (:func:`~optical_lab.methods.runtime.device_description`)."""
    import torch

    return device_description("cuda" if torch.cuda.is_available() else "cpu")


def cell_device(cell: Path, root: Path) -> str | None:
    """The device a cell ran on: its ``done.json`` ``device``, else the environment record of the run that
    wrote it (the nearest ``environment*.json`` between the cell and ``root``: a sweep's or the comparison's),
    None when neither says."""
    done = cell / "done.json"
    if done.exists() and (device := json.loads(done.read_text(encoding="utf-8")).get("device")):
        return device
    for folder in [cell, *cell.parents]:
        for record in sorted(folder.glob("environment*.json")):
            env = json.loads(record.read_text(encoding="utf-8"))
            return device_line(gpu=env.get("cuda"), cpu=env.get("cpu"))
        if folder == root:
            break
    return None


def same_machine_kind(device: str | None, reference: str) -> bool:
    """Same GPU model, or same CPU description (model and flags); unknown counts as the same."""
    return device is None or device == reference


def step_seconds(roots: Iterable[Path], device: str | None = None) -> dict[str, dict[str, Any]]:
    """Median seconds per training step per method, over every ``train_log.jsonl`` under ``roots``,
    with the torch thread counts the finished cells recorded (sweep and grid cells pooled: they ran
    under whatever load the machine had). ``device``: only cells that ran on that device (e.g. a
    sweep run on a lent GPU says nothing about a CPU's rate); the others are counted as ``other_device``."""
    steps: dict[str, list[float]] = {}
    cells: dict[str, int] = {}
    threads: dict[str, set[int]] = {}
    skipped: dict[str, int] = {}
    for root in roots:
        for log in stored_glob(root, "train_log.jsonl", recursive=True):
            method = method_of(log, root)
            if method is None:
                continue
            if device is not None and not same_machine_kind(cell_device(log.parent, root), device):
                skipped[method] = skipped.get(method, 0) + 1
                continue
            rows = read_jsonl(log)
            seconds = [r["seconds"] for r in rows if r.get("event") == "train" and "seconds" in r]
            if seconds:
                steps.setdefault(method, []).extend(seconds)
                cells[method] = cells.get(method, 0) + 1
            done = log.parent / "done.json"
            if done.exists() and "threads" in (info := json.loads(done.read_text(encoding="utf-8"))):
                threads.setdefault(method, set()).add(int(info["threads"]))
    return {
        m: {
            "median_s": round(statistics.median(s), 3),
            "steps_measured": len(s),
            "cells": cells[m],
            "threads": sorted(threads.get(m, ())),
            "other_device_cells": skipped.get(m, 0),
        }
        for m, s in sorted(steps.items())
    }


def grid(plan: ComparePlan, root: Path) -> dict[str, Any]:
    """Cells planned (:func:`.identity.plan_cells`), finished (``done.json``) and left, per method."""
    out = {method: {"planned": 0, "finished": 0, "left": 0} for method in plan.methods}
    for _, method, _, _, _, folder in plan_cells(plan, root):
        done = (folder / "done.json").exists()
        out[method]["planned"] += 1
        out[method]["finished" if done else "left"] += 1
    return out


def eval_seconds(root: Path, device: str | None = None) -> float | None:
    """Median evaluation seconds of a finished cell (the whole suite of the run) on ``device`` (None: any),
    None before any."""
    seconds = [
        json.loads(done.read_text(encoding="utf-8")).get("eval_s")
        for done in root.rglob("done.json")
        if device is None or same_machine_kind(cell_device(done.parent, root), device)
    ]
    seconds = [s for s in seconds if s is not None]
    return statistics.median(seconds) if seconds else None


def compute_plan(results: str | Path, seeds: int | None = None, methods: list[str] | None = None) -> dict[str, Any]:
    """Measure and write ``<results>/plan.json`` for the comparison saved in ``<results>/config.json``
    (``seeds`` / ``methods``: plan for that many seeds / those methods instead of the saved ones)."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from ..models.registry import resolve_backbone

    hf_logging.set_verbosity_error()  # counting tokens of long sentences is the point, not a warning
    results = Path(results)
    plan = plan_from_saved(json.loads((results / "config.json").read_text(encoding="utf-8")))
    plan = replace(plan, seeds=seeds or plan.seeds, methods=list(methods or plan.methods))
    spec = resolve_backbone(plan.model)  # the backbone's tokenizer and the prefix training puts on a text
    tokenizer, prefix = AutoTokenizer.from_pretrained(spec.path), spec.prefix(plan.train.training_role)
    device = here()
    rates = step_seconds([results], device)  # this machine's kind only: a GPU's sweep says nothing of a CPU
    cells = grid(plan, results / "runs")
    fallback = statistics.median([r["median_s"] for r in rates.values()]) if rates else None
    evaluation = eval_seconds(results / "runs", device)
    hours_left = None
    if fallback is not None and evaluation is not None:

        def cell_seconds(method: str) -> float:
            train = (
                0.0
                if method == "zero-shot"
                else plan.train_config(method).steps * rates.get(method, {"median_s": fallback})["median_s"]
            )
            return train + evaluation

        hours_left = sum(c["left"] * cell_seconds(m) for m, c in cells.items()) / 3600
    out = {
        "results": str(results),
        # the machine plan.json was computed on (the cells record their own threads; their precision
        # is part of their identity, so every finished cell of a folder shares it)
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "flags": [f for f, has in shown_flags().items() if has],
            "description": cpu_description(),
            "device": device,
            "precision": resolve_mixed_precision(plan.train.mixed_precision),
        },
        "budget": {
            "steps": plan.train.steps,
            "batch_size": plan.train.batch_size,
            "pairs_per_cell": plan.train.steps * plan.train.batch_size,
            "max_length": plan.train.max_length,
            "freeze_word_embeddings": plan.train.freeze_word_embeddings,
            "seeds": plan.seeds,
            "languages": list(plan.langs),
        },
        "truncation": {lang: truncation(plan, lang, tokenizer, prefix) for lang in plan.langs},
        "step_seconds": rates,
        "grid": cells,
        "eval_seconds_per_cell": evaluation,
        "hours_left": None if hours_left is None else round(hours_left, 3),
        "note": "step seconds are wall time per step on this machine as it was loaded when the cells ran "
        "(threads: the counts the finished cells recorded); hours left = cells left x (steps x median step "
        "seconds of their method + median evaluation seconds of a finished cell), dev evaluations not "
        "included; null until a cell has finished",
    }
    write_text(json.dumps(out, indent=2) + "\n", results / "plan.json")
    return out


# ---------------------------------------------------------------- a grid not run yet (protocol v3)
@dataclass(frozen=True)
class GridDescription:
    """A grid described before it exists: what :func:`plan_grid` prices from measured rates.

    ``step_cap``: training runs to a dev plateau, at most this many steps (a cell is priced at the cap: an upper
    bound); ``sweep_settings`` per trained arm (the same tuning budget for every arm) on each of ``sweep_langs``
    dev sets, each at most ``sweep_steps``; ``eval_tasks``: evaluation tasks of every grid cell."""

    name: str
    langs: tuple[str, ...]
    arms: tuple[str, ...]
    seeds: int
    step_cap: int
    sweep_settings: int
    sweep_langs: int
    sweep_steps: int
    eval_tasks: tuple[str, ...]
    reference: str  # the results folder whose measured rates and stored sizes price it
    folder: str = ""  # where the grid's own results go: its finished cells (sweep first) price its sizes first
    same_rate_as: tuple[tuple[str, str], ...] = ()  # an arm nothing measured yet -> the arm whose rate it takes
    ot_cost_factor: float = 1.0  # a solved Sinkhorn: step time of the OT arms relative to the measured ones
    batch_size: int | None = None  # pairs per step (None: the reference's); a step's time scales with it


# the tasks every v3 grid cell is evaluated on (the Makefile's V3_MINILM: --task and --eval-tasks)
V3_TASKS = (
    "sib-topics",
    "afriqa-passages",
    "flores-sentences",
    "afriqa-questions",
    "tico-sentences",
    "ntrex-clir",
    "ntrex-sentences",
)


def v3_minilm() -> GridDescription:
    """docs/protocol_v3.md (issue #26): the family (data.mafand.mafand_family: every language of the data folder
    with a MAFAND-MT train split and FLORES coverage) x the v3 arms x 5 seeds, each trained cell to a dev plateau
    under the ``v3`` preset's step cap; the v3 sweep (sweep_design.V3_GRIDS: the same number of settings for every
    trained arm, before the edge rule's extensions) on its selection languages."""
    settings = {math.prod(len(values) for _, values in grid.axes) for grid in V3_GRIDS}
    config = preset("v3")
    cap = config.steps
    return GridDescription(
        name="v3-minilm",
        langs=tuple(mafand_family()),
        arms=("zero-shot", *V3_ARMS),
        seeds=5,
        step_cap=cap,
        sweep_settings=max(settings),
        sweep_langs=len(DESIGNS["v3"].langs),
        sweep_steps=cap,
        eval_tasks=V3_TASKS,
        reference="results/v2-minilm",
        folder="results/v3-minilm",
        same_rate_as=(("optical-plain", "optical"),),
        ot_cost_factor=1.15,
        batch_size=config.batch_size,
    )


GRIDS = {"v3-minilm": v3_minilm}  # name -> the description, built when asked (the family is the data folder's)


def gpu_step_seconds(roots: Iterable[Path]) -> tuple[dict[str, dict[str, Any]], str | None]:
    """:func:`step_seconds` of the first GPU found among the cells under ``roots`` (and that GPU), or ({}, None)."""
    for root in roots:
        for log in stored_glob(root, "train_log.jsonl", recursive=True):
            device = cell_device(log.parent, root)
            if device and device.startswith("cuda"):
                return step_seconds([root], device), device
    return {}, None


def step_prices(grid: GridDescription, device: str | None = None) -> dict[str, Any]:
    """Seconds per training step of each trained arm of ``grid``, priced from the rates measured in
    ``grid.reference``: ``cpu`` on ``device``'s kind of machine (``device``: the label; the reference's own
    machines when no cell ran on this kind), ``gpu`` per process on ``gpu_device``; an arm of ``same_rate_as`` at
    its proxy's rate, every rate scaled by ``batch_factor`` (the grid's batch over the reference's
    ``measured_batch``) and an OT arm's by ``ot_cost_factor``; None where nothing was measured."""
    reference = Path(grid.reference)
    proxies = dict(grid.same_rate_as)
    device = device or here()
    cpu = step_seconds([reference], device)
    if not cpu:  # no cell ran on this kind of machine: the reference's own rates, said so
        cpu = step_seconds([reference])
        device = "the reference's machine(s)"
    gpu, gpu_device = gpu_step_seconds(sorted(p for p in reference.parent.iterdir() if p.is_dir()))
    saved = read_json(reference / "config.json") if stored_exists(reference / "config.json") else {}
    measured_batch = saved.get("train", {}).get("batch_size")
    batch_factor = grid.batch_size / measured_batch if grid.batch_size and measured_batch else 1.0
    trained = [arm for arm in grid.arms if arm != "zero-shot"]

    def rate(rates: dict[str, Any], arm: str) -> float | None:
        measured = rates.get(arm) or rates.get(proxies.get(arm, ""))
        if measured is None:
            return None
        ot_factor = grid.ot_cost_factor if arm.startswith("optical") else 1.0
        return round(measured["median_s"] * batch_factor * ot_factor, 4)

    return {
        "cpu": {arm: rate(cpu, arm) for arm in trained},
        "gpu": {arm: rate(gpu, arm) for arm in trained},
        "device": device,
        "gpu_device": gpu_device,
        "measured_batch": measured_batch,
        "batch_factor": batch_factor,
        "saved": saved,
    }


def plan_grid(grid: GridDescription, device: str | None = None) -> dict[str, Any]:
    """CPU-hours (and wall hours with 2 workers), GPU minutes and committed MiB of a described grid, priced with
    the rates and stored sizes measured in ``grid.reference``; every assumption is listed in ``assumed``."""
    reference = Path(grid.reference)
    proxies = dict(grid.same_rate_as)
    prices = step_prices(grid, device)
    device, saved = prices["device"], prices["saved"]
    trained = [arm for arm in grid.arms if arm != "zero-shot"]
    assumed = [
        f"CPU rates and evaluation seconds: cells that ran on {device}",
        f"every trained cell runs to its cap of {grid.step_cap} steps (plateau stopping only shortens it)",
        f"{grid.sweep_settings} sweep settings per trained arm on {grid.sweep_langs} dev languages, "
        f"each at most {grid.sweep_steps} steps",
        *[f"{arm} steps at {proxy}'s measured rate" for arm, proxy in proxies.items()],
        f"OT arms (solved Sinkhorn) cost {grid.ot_cost_factor:g}x the measured OPTICAL step",
        f"evaluation scales with the number of tasks ({len(grid.eval_tasks)} vs the reference's measured suite)",
    ]
    if prices["batch_factor"] != 1.0:
        measured_batch = prices["measured_batch"]
        assumed.append(f"a step's time scales with its batch: {grid.batch_size} pairs vs {measured_batch} measured")

    steps = {
        arm: len(grid.langs) * grid.seeds * grid.step_cap + grid.sweep_settings * grid.sweep_langs * grid.sweep_steps
        for arm in trained
    }
    task_factor = len(grid.eval_tasks) / max(1, 1 + len(saved.get("eval_tasks", [])))
    evaluation = eval_seconds(reference / "runs", None if device.startswith("the reference") else device)
    eval_cells = len(grid.langs) * grid.seeds * len(grid.arms)
    cpu_rates, gpu_rates = prices["cpu"], prices["gpu"]
    cpu_seconds = None
    if evaluation is not None and all(r is not None for r in cpu_rates.values()):
        cpu_seconds = sum(steps[arm] * cpu_rates[arm] for arm in trained) + eval_cells * evaluation * task_factor
    gpu_minutes = None
    if all(r is not None for r in gpu_rates.values()):  # measured with the processes that shared the GPU then
        gpu_minutes = sum(steps[arm] * gpu_rates[arm] for arm in trained) / 60 / GPU_PROCESSES
        assumed.append(
            f"GPU: {GPU_PROCESSES} training processes share one {prices['gpu_device']} at the per-process rate "
            "measured there (a sibling results folder's cells, whatever their backbone); evaluation "
            "not included"
        )
    size = committed_bytes(grid, steps, task_factor)
    assumed += size.pop("assumed")
    return {
        "grid": asdict(grid),
        "trained_steps": steps,
        "eval_cells": eval_cells,
        "eval_seconds_per_cell": None if evaluation is None else round(evaluation * task_factor, 1),
        "cpu_step_seconds": cpu_rates,
        "gpu_step_seconds": gpu_rates,
        "cpu_hours": None if cpu_seconds is None else round(cpu_seconds / 3600, 1),
        "wall_hours_2_workers": None if cpu_seconds is None else round(cpu_seconds / 3600 / 2, 1),
        "gpu_minutes": None if gpu_minutes is None else round(gpu_minutes, 1),
        "committed_mib": round(sum(size["parts"].values()) / 2**20, 2),
        "committed_parts_mib": {part: round(n / 2**20, 2) for part, n in size["parts"].items()},
        "stored_sizes": size,
        "assumed": assumed,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``optical-lab plan``."""
    parser.add_argument(
        "results", nargs="?", help="a comparison folder with config.json, e.g. results/v2-minilm (or --grid)"
    )
    parser.add_argument("--grid", choices=sorted(GRIDS), help="price a described grid instead (e.g. v3-minilm)")
    parser.add_argument("--seeds", type=int, default=None, help="plan for this many seeds (default: the saved run's)")
    parser.add_argument(
        "--methods", default=None, help="plan for these methods, comma-separated or 'all' (default: the saved run's)"
    )


def main(args: argparse.Namespace) -> None:
    """Print (and write ``plan.json`` of) the plan of a results folder, or of a described grid."""
    if args.grid:
        planned = plan_grid(GRIDS[args.grid]())
        print(json.dumps({k: v for k, v in planned.items() if k not in ("grid", "stored_sizes")}, indent=2))
        return
    if not args.results:
        raise DataError("name a results folder or --grid", fix="e.g. optical-lab plan results/v2-minilm")
    methods = list(METHODS) if args.methods == "all" else args.methods.split(",") if args.methods else None
    out = compute_plan(args.results, args.seeds, methods)
    print(f"machine: {out['machine']}")
    for lang, t in out["truncation"].items():
        if "cut_foreign" in t:
            print(f"{lang}: {t['pairs']} train pairs, foreign cut {t['cut_foreign']}, English cut {t['cut_english']}")
    for method, r in out["step_seconds"].items():
        print(f"{method}: {r['median_s']} s/step (median of {r['steps_measured']} steps, {r['cells']} cells)")
    for method, c in out["grid"].items():
        print(f"{method}: {c['finished']}/{c['planned']} cells finished")
    print(f"hours left at these rates: {out['hours_left']}")


if __name__ == "__main__":
    sys.exit(run_module(add_arguments, main, "python -m optical_lab.experiments.compute_plan"))
