"""Where dev selection stopped: the selected step of every trained cell against its cap.

Protocol v3 trains every arm to a dev plateau (``TrainConfig.patience`` / ``min_delta``, with
``TrainConfig.steps`` as the cap) and asks that most cells select a step *before* the cap: a cell
whose best dev score is at its last step was still improving, so its arm is under-trained.

``selected_steps(folder)`` reads every ``train_summary.json`` under a results folder (grid cells
under ``runs/``, sweep settings under ``sweep/``); the cap is the summary's ``max_steps`` or, for
results written before that field existed, the ``steps`` of the ``config.json`` beside it. A sweep
setting recorded as ``same_as`` another is not trained again and has no summary, so it is counted once.

Protocol v3's cap check (:func:`cap_check`) reads the same rows: among the sweep's runs that did not keep
step 0, the share that selected a step before the cap, against :data:`CAP_CHECK_SHARE`.

    optical-lab stopping results/v2-minilm     # a table per part and method
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..data.errors import DataError
from ..io import read_json, stored_exists, stored_glob
from ..methods.train_state import SUMMARY_NAME
from .command import run_module

# docs/protocol_v3.md, "Train to a plateau": if fewer than this share of the sweep's runs (setting x language,
# runs that keep step 0 left out) selected a step before the cap, the grid's cap is doubled
CAP_CHECK_SHARE = 0.8
CAP_CHECK_FACTOR = 2  # ... doubled: the grid's cap is this many times the sweep's, for every arm (applied once)


def _cap(summary: dict[str, Any], folder: Path) -> int:
    """The cell's step cap: recorded in the summary, else its config's ``steps`` (older results ran to it)."""
    if summary.get("max_steps"):
        return int(summary["max_steps"])
    config = folder / "config.json"
    if not stored_exists(config):
        raise DataError(
            "a training summary without its cap (max_steps) and no config.json beside it",
            path=folder / SUMMARY_NAME,
            fix="re-run the cell, or restore its config.json",
        )
    return int(read_json(config)["train"]["steps"])


def _method(folder: Path) -> str:
    """The method of a cell folder: ``runs/<lang>/<method>/<cell>`` or ``sweep/<method>/<setting>``."""
    done = folder / "done.json"
    if stored_exists(done):
        method = read_json(done).get("method")
        if method:
            return method
    return folder.parent.name


def selected_steps(folder: str | Path) -> list[dict[str, Any]]:
    """One row per trained cell under ``folder``: ``part`` (``sweep``, ``grid`` for ``runs/``, else the first
    folder below ``folder``), ``method``, ``cell``
    (its path relative to ``folder``), ``selected_step``, ``cap``, ``steps`` done, ``stopped_early`` and
    ``selected_before_cap`` (selected step < cap). A run that diverged (``diverged`` in its summary: it stopped at a
    non-finite step and kept its best dev state so far, ``methods/trainer.py``) is left out: it says nothing about
    where dev selection plateaus under the cap (a diverged sweep run has no score, deviation 2; a diverged grid
    cell is counted apart, deviation 2)."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError("no such results folder", path=root, fix="pass a folder written by compare or sweep")
    rows = []
    for path in stored_glob(root, SUMMARY_NAME, recursive=True):  # plain or compacted (optical_lab.io)
        summary = read_json(path)
        if summary.get("diverged"):
            continue
        cap = _cap(summary, path.parent)
        rel = path.parent.relative_to(root)
        part = "sweep" if "sweep" in rel.parts else "grid" if "runs" in rel.parts else rel.parts[0]
        rows.append(
            {
                "part": part,
                "method": _method(path.parent),
                "cell": rel.as_posix(),
                "selected_step": int(summary["best_step"]),
                "cap": cap,
                "steps": int(summary["steps"]),
                "stopped_early": bool(summary.get("stopped_early", False)),
                "selected_before_cap": int(summary["best_step"]) < cap,
            }
        )
    return rows


def selected_before_cap_share(folder: str | Path, part: str | None = None) -> float | None:
    """Share of trained cells under ``folder`` (only ``part``, "grid" or "sweep", when given) whose
    selected step lies before the cap; None when there is no trained cell."""
    rows = [r for r in selected_steps(folder) if part is None or r["part"] == part]
    return sum(r["selected_before_cap"] for r in rows) / len(rows) if rows else None


def cap_check(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Protocol v3's cap check over ``rows`` (:func:`selected_steps` of the sweep's runs): ``share`` of the runs
    that did not keep step 0 whose selected step lies before the cap, their number (``runs``), ``kept_step_0``,
    the ``target`` and whether the share reaches it (``passes``); None while no run counts."""
    counted = [r for r in rows if r["selected_step"] > 0]
    if not counted:
        return None
    share = sum(r["selected_before_cap"] for r in counted) / len(counted)
    return {
        "share": share,
        "runs": len(counted),
        "kept_step_0": len(rows) - len(counted),
        "target": CAP_CHECK_SHARE,
        "passes": share >= CAP_CHECK_SHARE,
    }


def grid_cap(sweep: str | Path) -> dict[str, Any]:
    """Protocol v3's cap check *applied* (``docs/protocol_v3.md``, "Train to a plateau"): the step cap of the grid
    that follows the finished sweep in ``sweep``. :func:`cap_check` over the sweep's runs; the grid's cap
    (``steps``) is the sweep's (``sweep_cap``) when the share reaches :data:`CAP_CHECK_SHARE` or no run left step 0,
    :data:`CAP_CHECK_FACTOR` times it otherwise (``doubled``). The sweep is finished and only read, so every call
    (the grid's owner, its ``--join`` workers, the report) finds the same cap: the check is applied once.

    Raises :class:`DataError` for a sweep that is not finished (``done.json``), has no trained run, or whose runs
    ran under different caps."""
    root = Path(sweep)
    if not stored_exists(root / "done.json"):
        raise DataError(
            "the cap check reads a finished sweep: it has no done.json",
            path=root,
            fix="finish the sweep first (make sweep-v3-minilm), then run the grid",
        )
    rows = selected_steps(root)
    caps = sorted({r["cap"] for r in rows})
    if len(caps) != 1:
        raise DataError(
            f"the cap check needs the sweep's runs under one cap, found {caps or 'no trained run'}",
            path=root,
            fix="sweep into a new folder with one preset",
        )
    check = cap_check(rows) or {
        "share": None,
        "runs": 0,
        "kept_step_0": len(rows),
        "target": CAP_CHECK_SHARE,
        "passes": None,
    }
    doubled = check["passes"] is False
    return {**check, "sweep_cap": caps[0], "steps": caps[0] * (CAP_CHECK_FACTOR if doubled else 1), "doubled": doubled}


def plateau_counts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Protocol v3's count over trained cells (``docs/protocol_v3.md``, "Train to a plateau"), from
    :func:`selected_steps` rows: ``cells``; ``before_cap``, the cells whose selected step is > 0 and < the cap (a
    plateau reached); ``step0``, the cells that kept the untrained student (counted separately: before the cap,
    but no plateau); ``at_cap``; ``stopped_early``, the cells the patience rule stopped before the cap (a plateau
    seen by the rule itself, where a selected step just before the cap may be dev noise on a rising curve); and
    ``share`` = before_cap / cells (None without a trained cell)."""
    before = sum(0 < r["selected_step"] < r["cap"] for r in rows)
    return {
        "cells": len(rows),
        "before_cap": before,
        "step0": sum(r["selected_step"] == 0 for r in rows),
        "at_cap": sum(r["selected_step"] >= r["cap"] for r in rows),
        "stopped_early": sum(r["stopped_early"] for r in rows),
        "share": before / len(rows) if rows else None,
    }


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: per part and method, the cells, how many selected before the cap, how many stopped
    early, how many kept the untrained student (step 0: before the cap, but no plateau), and the selected
    steps' distribution (min / median / max) against the cap."""
    lines = [
        "| part | method | cells | selected before cap | of them step 0 | stopped early "
        "| selected step min / median / max | cap |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["part"], row["method"]), []).append(row)
    for (part, method), group in sorted(groups.items()):
        steps = sorted(r["selected_step"] for r in group)
        caps = sorted({r["cap"] for r in group})
        before = sum(r["selected_before_cap"] for r in group)
        lines.append(
            f"| {part} | {method} | {len(group)} | {before} ({before / len(group):.0%}) | "
            f"{steps.count(0)} | {sum(r['stopped_early'] for r in group)} | "
            f"{steps[0]} / {steps[len(steps) // 2]} / {steps[-1]} | "
            f"{', '.join(map(str, caps))} |"
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``optical-lab stopping``."""
    parser.add_argument("folders", nargs="+", type=Path, help="results folders (grid cells and/or a sweep)")


def main(args: argparse.Namespace) -> None:
    """A table per results folder, part and method; the share selected before the cap."""
    for folder in args.folders:
        rows = selected_steps(folder)
        print(f"## {folder}\n\n{table(rows)}\n")
        for part in ("grid", "sweep"):
            share = selected_before_cap_share(folder, part)
            if share is not None:
                print(f"selected_before_cap_share ({part}): {share:.3f}")
        print()


if __name__ == "__main__":
    sys.exit(run_module(add_arguments, main, "python -m optical_lab.experiments.stopping"))
