"""How far a long run is: a protocol-v3 sweep and grid while they run (``optical-lab progress FOLDER``).

Reads a results folder and writes nothing (a run in progress owns it), in four parts:

* **the sweep** (``<folder>/sweep/``, or ``FOLDER`` itself when it is a sweep): runs finished of the runs
  expected. A design with selection languages (v3) expects, per arm, its grid's settings (the product of the
  axes its ``config.json`` records) x the selection languages, plus the edge rule's extensions so far (settings
  of a ``*-edge`` stage in a finished run's ``done.json``, or in ``chosen.json``'s ``settings_tried``), each on
  every language; at most ``max_extensions`` more per extendable axis (the ``edge_steps`` it records) and arm may
  still come. A v2 sweep's stages depend on its choices: only its finished runs are counted.
* **the grid** (``<folder>/runs/``, the comparison's ``config.json``): cells planned, finished and left per arm
  (:func:`.compute_plan.grid`: languages x arms x folds x seeds); before the comparison has written its
  ``config.json``, the described grid of the folder's name (:data:`.compute_plan.GRIDS`: ``v3-minilm``), all left.
* **where selection stopped so far**: the selected-step distribution per part and arm (:func:`.stopping.table`)
  and protocol v3's cap check on the sweep's runs (:func:`.stopping.cap_check`).
* **CPU-hours left**: per arm, runs left x the steps a run takes x the arm's median seconds per training step
  measured on this machine's kind of device (:func:`.compute_plan.step_seconds`, over the finished and running
  runs of the folder), + for a grid cell the median evaluation seconds of a finished one
  (:func:`.compute_plan.eval_seconds`). The steps a run takes: the mean of the arm's finished runs (plateau
  stopping), the cap before any has finished; the bound at the cap is shown beside it. An arm with no measured
  step takes the described grid's priced rate (:func:`.compute_plan.step_prices`) times the median ratio of
  measured to priced rates of the arms measured here, else the median over the measured arms, and says so. The
  step seconds leave out the dev evaluations inside a run, so every step is counted at :func:`dev_overhead`
  (the finished runs' recorded training time over their logged step time). One training process's hours (the
  runs use one thread each on a CPU).

    optical-lab progress results/v3-minilm
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path
from typing import Any

from ..data.errors import DataError
from ..io import read_json, read_jsonl, stored_exists, stored_glob
from ..methods.train_state import LOG_NAME
from .command import run_module
from .compute_plan import GRIDS, eval_seconds, grid, here, step_prices, step_seconds
from .plan import plan_from_saved
from .records import DONE_NAME
from .stopping import cap_check, selected_steps, table
from .sweep_design import SETTINGS_TRIED, slug
from .sweep_tables import finished_rows


# ------------------------------------------------------------------ the sweep
def sweep_folder(folder: Path) -> Path | None:
    """``folder`` when it is a sweep (its ``config.json`` says ``kind: sweep``), else ``folder/sweep`` if one."""
    for candidate in (folder, folder / "sweep"):
        config = candidate / "config.json"
        if stored_exists(config) and read_json(config).get("kind") == "sweep":
            return candidate
    return None


def extensions_so_far(sweep: Path) -> dict[str, set[str]]:
    """Per arm, the slugs of the settings the edge rule added so far: finished runs of a ``*-edge`` stage and
    the extensions ``chosen.json`` reports (``settings_tried``, written after each stage)."""
    found: dict[str, set[str]] = {}
    for row in finished_rows(sweep):
        if str(row.get("stage", "")).endswith("edge"):
            found.setdefault(row["method"], set()).add(slug(row["setting"]))
    chosen = sweep / "chosen.json"
    if stored_exists(chosen):
        for method, tried in read_json(chosen).get(SETTINGS_TRIED, {}).items():
            found.setdefault(method, set()).update(slug(setting) for setting in tried.get("extensions", []))
    return found


def sweep_progress(sweep: Path) -> dict[str, Any]:
    """Per arm: runs finished, running (a training log without ``done.json``), expected (None for a design
    without recorded grids: v2) and the most that may still come from further extensions; the sweep's cap."""
    config = read_json(sweep / "config.json")
    langs = config.get("langs") or [config.get("lang")]
    grids = config.get("grids", {})
    arms = grids.get("arms")  # v3: per arm its axes; v2 records flat value lists
    cells = "*/*" if "langs" in config else "*"  # <method>/<setting>/<lang>/ (v3) or <method>/<setting>/ (v2)
    extended = extensions_so_far(sweep) if arms else {}
    out = {}
    for method in config["methods"]:
        finished = len(stored_glob(sweep / method, f"{cells}/{DONE_NAME}"))
        logs = stored_glob(sweep / method, f"{cells}/{LOG_NAME}")
        running = sum(not stored_exists(log.parent / DONE_NAME) for log in logs)
        row: dict[str, Any] = {"finished": finished, "running": running, "expected": None, "may_add": None}
        if arms and method in arms:
            axes = arms[method]["axes"]
            settings = math.prod(len(values) for values in axes.values())
            extensions = len(extended.get(method, ()))
            extendable = [a for a, values in axes.items() if a in grids.get("edge_steps", {}) and len(values) >= 2]
            further = max(0, len(extendable) * grids.get("max_extensions", 0) - extensions)
            row |= {
                "settings": settings,
                "extensions": extensions,
                "expected": (settings + extensions) * len(langs),
                "may_add": further * len(langs),
            }
        out[method] = row
    return {"folder": str(sweep), "langs": langs, "cap": config["train"]["steps"], "arms": out}


# ------------------------------------------------------------------ the grid
def grid_progress(folder: Path) -> dict[str, Any] | None:
    """Per arm: cells planned, finished and left and the step cap, from the comparison's ``config.json``, else
    from the described grid named like the folder (all left); None when neither exists."""
    config = folder / "config.json"
    if stored_exists(config) and read_json(config).get("kind") != "sweep":
        plan = plan_from_saved(read_json(config))
        cells = grid(plan, folder / "runs")
        caps = {m: 0 if m == "zero-shot" else plan.train_config(m).steps for m in plan.methods}
        return {"source": str(config), "arms": {m: c | {"cap": caps[m]} for m, c in cells.items()}}
    if folder.name in GRIDS:
        described = GRIDS[folder.name]()
        cells = len(described.langs) * described.seeds
        return {
            "source": f"the described grid {folder.name} (compute_plan.GRIDS); no config.json yet",
            "arms": {
                arm: {
                    "planned": cells,
                    "finished": 0,
                    "left": cells,
                    "cap": 0 if arm == "zero-shot" else described.step_cap,
                }
                for arm in described.arms
            },
        }
    return None


# ------------------------------------------------------------------ hours left
def run_steps(rows: list[dict[str, Any]], part: str, method: str, cap: int) -> float:
    """Steps a run of ``method`` takes: the mean over its finished runs in ``part`` (plateau stopping), else ``cap``."""
    steps = [r["steps"] for r in rows if r["part"] == part and r["method"] == method]
    return statistics.mean(steps) if steps else cap


def step_rates(folder: Path, arms: set[str]) -> dict[str, dict[str, Any]]:
    """Per arm: median seconds per training step measured here (:func:`.compute_plan.step_seconds`); an arm not
    measured yet takes the described grid's priced rate (:func:`.compute_plan.step_prices`) scaled by how much
    slower or faster the measured arms ran than priced (median ratio), else the median over the measured arms;
    each says where it comes from."""
    measured = {m: r["median_s"] for m, r in step_seconds([folder], here()).items()}
    rates = {m: {"seconds": s, "from": "measured here"} for m, s in measured.items()}
    missing = arms - set(rates) - {"zero-shot"}
    if missing and folder.name in GRIDS:
        described = GRIDS[folder.name]()
        priced = step_prices(described)["cpu"]
        ratios = [measured[m] / priced[m] for m in measured if priced.get(m)]
        scale = statistics.median(ratios) if ratios else 1.0
        source = f"priced from {described.reference}" + (f" x {scale:.2f} (measured / priced here)" if ratios else "")
        rates |= {m: {"seconds": round(priced[m] * scale, 4), "from": source} for m in missing if priced.get(m)}
    fallback = statistics.median(measured.values()) if measured else None
    for method in arms - set(rates) - {"zero-shot"}:
        rates[method] = {"seconds": fallback, "from": "median of the measured arms" if measured else "nothing measured"}
    return rates


def dev_overhead(root: Path) -> float | None:
    """Median over the finished runs under ``root`` (a ``done.json`` with ``train_s``, not a ``same_as`` copy) of
    their recorded training wall time over the summed seconds of their logged training steps: what dev
    evaluations and set-up add to the step time. None before any."""
    ratios = []
    for done in stored_glob(root, DONE_NAME, recursive=True):
        info, log = read_json(done), done.parent / LOG_NAME
        if info.get("train_s") and "same_as" not in info and stored_exists(log):
            steps = sum(r["seconds"] for r in read_jsonl(log) if r.get("event") == "train" and "seconds" in r)
            if steps > 0:
                ratios.append(info["train_s"] / steps)
    return statistics.median(ratios) if ratios else None


def hours_left(
    runs_left: dict[str, float],
    steps: dict[str, float],
    rates: dict[str, dict[str, Any]],
    overhead: float = 1.0,
    extra_seconds: float = 0.0,
) -> float | None:
    """Hours the runs left take: per arm, runs x (steps x seconds per step x ``overhead`` + ``extra_seconds``);
    None when an arm with runs left has no rate."""
    total = 0.0
    for method, left in runs_left.items():
        seconds = 0.0 if steps[method] == 0 else (rates.get(method) or {}).get("seconds")
        if left and seconds is None:
            return None
        total += left * (steps[method] * (seconds or 0.0) * overhead + extra_seconds)
    return total / 3600


def progress(folder: str | Path) -> dict[str, Any]:
    """The four parts of the module doc for ``folder`` (a v3 results folder, or a sweep folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("no such results folder", path=folder, fix="e.g. optical-lab progress results/v3-minilm")
    sweep = sweep_folder(folder)
    alone = sweep == folder  # a sweep folder given by itself: no grid beside it
    sweep_part = sweep_progress(sweep) if sweep is not None else None
    grid_part = None if alone else grid_progress(folder)
    if sweep_part is None and grid_part is None:
        raise DataError(
            "neither a sweep nor a comparison in this folder",
            path=folder,
            fix="pass a folder written by `optical-lab sweep` or `optical-lab compare` (or a v3 results folder)",
        )
    rows = selected_steps(folder)
    for row in rows if alone else ():
        row["part"] = "sweep"  # stopping names a part by the folder below the one it reads
    arms = set(sweep_part["arms"] if sweep_part else ()) | set(grid_part["arms"] if grid_part else ())
    rates = step_rates(folder, arms)
    measured_overhead = dev_overhead(folder)
    overhead = measured_overhead or 1.0
    out: dict[str, Any] = {"folder": str(folder), "rates": rates, "rows": rows, "overhead": measured_overhead}
    if sweep_part:
        cap = sweep_part["cap"]
        left = {m: a["expected"] - a["finished"] for m, a in sweep_part["arms"].items() if a["expected"] is not None}
        steps = {m: run_steps(rows, "sweep", m, cap) for m in left}
        sweep_part["hours_left"] = hours_left(left, steps, rates, overhead)
        sweep_part["hours_left_at_cap"] = hours_left(left, dict.fromkeys(left, cap), rates, overhead)
        sweep_part["cap_check"] = cap_check([r for r in rows if r["part"] == "sweep"])
        out["sweep"] = sweep_part
    if grid_part:
        arms_ = grid_part["arms"]
        left = {m: a["left"] for m, a in arms_.items()}
        runs = folder / "runs"
        evaluation = eval_seconds(runs, here()) if runs.is_dir() else None
        steps = {m: 0 if a["cap"] == 0 else run_steps(rows, "grid", m, a["cap"]) for m, a in arms_.items()}
        caps = {m: a["cap"] for m, a in arms_.items()}
        grid_part["eval_seconds_per_cell"] = evaluation
        grid_part["hours_left"] = hours_left(left, steps, rates, overhead, evaluation or 0.0)
        grid_part["hours_left_at_cap"] = hours_left(left, caps, rates, overhead, evaluation or 0.0)
        out["grid"] = grid_part
    return out


# ------------------------------------------------------------------ the report
def _hours(value: float | None) -> str:
    return "unknown (an arm has no measured rate)" if value is None else f"{value:,.1f}"


def _known(value: Any) -> str:
    return "?" if value is None else str(value)


def render(report: dict[str, Any]) -> str:
    """The progress report as Markdown."""
    lines = [f"# Progress of {report['folder']}", ""]
    sweep = report.get("sweep")
    if sweep:
        arms = sweep["arms"]
        done = sum(a["finished"] for a in arms.values())
        expected = [a["expected"] for a in arms.values()]
        total = "?" if None in expected else f"{sum(expected)}"
        lines += [
            f"## Sweep ({sweep['folder']}; selection languages {', '.join(sweep['langs'])}; cap {sweep['cap']} steps)",
            "",
            f"**{done} / {total} runs finished**"
            + (
                f" (+ at most {sum(a['may_add'] for a in arms.values())} from further edge-rule extensions)"
                if total != "?"
                else ""
            ),
            "",
            "| arm | finished | running | expected | settings + extensions so far | may still add |",
            "|---|---:|---:|---:|---|---:|",
        ]
        for method, a in arms.items():
            plan = f"{a['settings']} + {a['extensions']}" if a["expected"] is not None else "-"
            lines.append(
                f"| {method} | {a['finished']} | {a['running']} | {_known(a['expected'])} | {plan} "
                f"| {_known(a['may_add'])} |"
            )
        check = sweep["cap_check"]
        lines += [
            "",
            "Cap check (protocol v3, runs that kept step 0 left out): "
            + (
                "no run yet"
                if check is None
                else f"{check['share']:.0%} of {check['runs']} runs selected a step before the cap "
                f"(target >= {check['target']:.0%}: {'met' if check['passes'] else 'NOT met'} so far; "
                f"{check['kept_step_0']} kept step 0)"
            ),
            f"CPU-hours left: {_hours(sweep['hours_left'])} (at the cap: {_hours(sweep['hours_left_at_cap'])})",
            "",
        ]
    grid_part = report.get("grid")
    if grid_part:
        arms = grid_part["arms"]
        lines += [
            f"## Grid ({grid_part['source']})",
            "",
            f"**{sum(a['finished'] for a in arms.values())} / {sum(a['planned'] for a in arms.values())} "
            "cells finished**",
            "",
            "| arm | finished | planned | left | cap |",
            "|---|---:|---:|---:|---:|",
            *[f"| {m} | {a['finished']} | {a['planned']} | {a['left']} | {a['cap']} |" for m, a in arms.items()],
            "",
            f"Evaluation seconds per cell: {grid_part['eval_seconds_per_cell'] or 'none finished yet (not counted)'}",
            f"CPU-hours left: {_hours(grid_part['hours_left'])} (at the cap: {_hours(grid_part['hours_left_at_cap'])})",
            "",
        ]
    lines += ["## Seconds per training step", "", "| arm | s/step | from |", "|---|---:|---|"]
    for method, rate in sorted(report["rates"].items()):
        seconds = "-" if rate["seconds"] is None else f"{rate['seconds']:.3f}"
        lines.append(f"| {method} | {seconds} | {rate['from']} |")
    lines += ["", "## Selected steps so far", ""]
    lines += [table(report["rows"]) if report["rows"] else "no finished run yet", ""]
    overhead = report["overhead"]
    lines += [
        "Hours: one training process (one thread) at this machine's rates; a run takes the mean steps of its arm's "
        "finished runs (the cap before any), each step its arm's seconds x "
        + (
            f"{overhead:.2f}, the finished runs' recorded training time over their logged step time "
            "(dev evaluations, set-up)."
            if overhead
            else "1 (no finished run yet to measure what dev evaluations add)."
        )
    ]
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``optical-lab progress``."""
    parser.add_argument("folder", type=Path, help="a results folder (e.g. results/v3-minilm) or a sweep folder")


def main(args: argparse.Namespace) -> None:
    """Print the progress report (nothing is written)."""
    print(render(progress(args.folder)), end="")


if __name__ == "__main__":
    sys.exit(run_module(add_arguments, main, "python -m optical_lab.experiments.progress"))
