"""How the protocol-v2 arms were set up and what they cost, as sections of the v2 results document
(:mod:`.v2`): the dev-only sweep that chose every arm's settings (:func:`sweep_lines`; arms that never beat
the untrained student on dev: :func:`never_improved`), settings frozen from another run's sweep
(:func:`frozen_settings_lines`), the measured compute plan (:func:`compute_plan_lines`) and OPTICAL's
collapse diagnostics per cell (:func:`diagnostics`), the finished cells themselves (:func:`cells`:
selected step, time); plus the table helpers the document and ``analysis.json`` share (a missing value
is None, not NaN; a mistyped endpoint refused: :func:`check_endpoints`). Nothing here is a test or an answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.errors import DataError
from ..evaluation.pooled import Endpoint
from ..experiments.per_query import cell_records, train_steps
from ..experiments.sweep_design import arm_settings, slug
from ..experiments.sweep_tables import DIAGNOSTICS_TEXT, finished_rows, sweep_table
from ..methods.registry import REFERENCE

DIAGNOSTICS = ("token_cos", "plan_entropy", "marginal_error")
ID_COLUMNS = ("lang", "method", "seed", "fold", "task", "qid")


def cells(results: Path) -> pd.DataFrame:
    """One row per finished cell: language, method, seed, selected step, training time."""
    rows = [
        {
            "lang": info["lang"],
            "method": info["method"],
            "fold": info["fold"],
            "seed": info["seed"],
            "best_step": info.get("best_step"),
            "train_s": info.get("train_s"),
            "eval_s": info.get("eval_s"),
        }
        for _, info in cell_records(results / "runs", "done.json")
    ]
    return pd.DataFrame(rows)


def diagnostics(results: Path, method: str = REFERENCE, last: int = 20) -> pd.DataFrame:
    """Per OPTICAL cell, the collapse diagnostics averaged over its last ``last`` training steps."""
    rows = []
    for info, steps in train_steps(results / "runs", method):
        steps = steps[-last:]
        if steps and all(k in steps[0] for k in DIAGNOSTICS):
            rows.append(
                {
                    "lang": info["lang"],
                    "seed": info["seed"],
                    **{k: float(np.mean([s[k] for s in steps])) for k in DIAGNOSTICS},
                }
            )
    return pd.DataFrame(rows)


def check_endpoints(per_query: pd.DataFrame, endpoints: tuple[Endpoint, ...], results: Path) -> None:
    """A mistyped endpoint fails here, naming what the cells have (not later as a missing arm)."""
    available = {
        task: [c for c in group.dropna(axis=1, how="all").columns if c not in ID_COLUMNS]
        for task, group in per_query.groupby("task")
    }
    for endpoint in endpoints:
        if endpoint.metric not in available.get(endpoint.task, []):
            raise DataError(
                f"no per-query column {endpoint.metric!r} of sub-task {endpoint.task!r} in any finished cell",
                path=results / "runs",
                fix="--endpoints SUBTASK:METRIC with one of: "
                + "; ".join(f"{task}:{'|'.join(cols)}" for task, cols in available.items()),
            )


def missing_as_none(table: pd.DataFrame) -> pd.DataFrame:
    """The table with each missing value (an arm a language does not have yet) as None, not NaN."""
    return table.astype(object).where(table.notna(), None)


def json_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """A table's rows for a JSON file (a missing value is null: NaN is not JSON)."""
    return missing_as_none(table).to_dict(orient="records")


def markdown_table(table: pd.DataFrame) -> str:
    """A table with its missing values (a diagnostic another method does not have) left blank."""
    return missing_as_none(table).to_markdown(index=False, floatfmt=".4g", missingval="")


def sweep_lines(sweep: Path) -> list[str]:
    """The dev-only sweep that chose every arm's settings: the choices and every cell tried."""
    rows = finished_rows(sweep)
    if not rows:
        return []
    chosen_file, config_file = sweep / "chosen.json", sweep / "config.json"
    chosen = arm_settings(json.loads(chosen_file.read_text(encoding="utf-8"))) if chosen_file.exists() else {}
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.exists() else {}
    # <sweep>/done.json marks a finished sweep; until then its choices are those of the stages done so far
    status = "Chosen" if (sweep / "done.json").exists() else "Chosen so far (the sweep has not finished)"
    lines = [
        "## Settings chosen on dev bitext (the sweep)",
        "",
        f"`optical-lab sweep` on MAFAND-MT {rows[0]['lang']} dev, seed {config.get('seed', '?')}, the full budget; "
        "score = best dev MRR among the dev pairs, no evaluation text encoded (docs/protocol_v2.md). "
        f"{status}: " + ("; ".join(f"**{m}** {slug(s)}" for m, s in chosen.items()) or "nothing yet") + ".",
        "",
        markdown_table(sweep_table(rows)),
        "",
        DIAGNOSTICS_TEXT,
        "",
    ]
    never = never_improved(rows)
    if never:
        lines += [
            "**Never above the untrained student on dev:** "
            + "; ".join(
                f"**{m}** (all {n} settings trained: dev MRR {start:.3f} untrained, {low:.3f}–{high:.3f} at the last "
                f"step)"
                for m, (n, start, low, high) in never.items()
            )
            + ". Dev selection keeps step 0 for such an arm, so its grid cells evaluate the untrained student.",
            "",
        ]
    return lines


def frozen_settings_lines(results: Path) -> list[str]:
    """For a run without its own sweep (the QALD track): the settings it took from another run's sweep."""
    config_file = results / "config.json"
    settings = (
        json.loads(config_file.read_text(encoding="utf-8")).get("method_config") if config_file.exists() else None
    )
    if not settings:
        return []
    env_file = results / "environment_compare.json"
    argv = json.loads(env_file.read_text(encoding="utf-8")).get("argv", []) if env_file.exists() else []
    source = next((f"`{b}`" for a, b in zip(argv, argv[1:]) if a == "--method-config"), "its `--method-config` file")
    return [
        "## Settings (frozen from another run's dev sweep)",
        "",
        f"This run has no sweep of its own: every arm trained with the settings below, chosen on dev bitext by "
        f"the sweep that wrote {source} (the values are recorded in `config.json`): "
        + "; ".join(f"**{m}** {slug(s)}" for m, s in settings.items())
        + ".",
        "",
    ]


def never_improved(rows: list[dict]) -> dict[str, tuple[int, float, float, float]]:
    """Methods whose every trained sweep setting selected step 0: method -> (settings, untrained dev MRR,
    lowest and highest dev MRR at the last evaluated step)."""
    out = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        trained = [r for r in rows if r["method"] == method and "same_as" not in r and r.get("dev_history")]
        if trained and all(r["best_step"] == 0 for r in trained):
            ends = [r["dev_history"][-1][1] for r in trained]
            out[method] = (len(trained), trained[0]["dev_history"][0][1], min(ends), max(ends))
    return out


def compute_plan_lines(results: Path) -> list[str]:
    """The measured cut rates and step rates of ``plan.json`` (``optical_lab.experiments.compute_plan``)."""
    path = results / "plan.json"
    if not path.exists():
        return []
    plan = json.loads(path.read_text(encoding="utf-8"))
    machine = plan["machine"]
    rows = [
        {
            "lang": lang,
            "train pairs": t["pairs"],
            "distinct pairs seen": t["distinct_pairs"],
            **{f"foreign cut @{n}": v for n, v in t["cut_foreign"].items()},
            **{f"English cut @{n}": v for n, v in t["cut_english"].items()},
        }
        for lang, t in plan["truncation"].items()
        if "cut_foreign" in t
    ]
    lines = [
        "## Training budget, truncation and compute (measured: `plan.json`)",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, flags {', '.join(machine['flags'])}, "
        f"precision {machine['precision']}. Every cell: {plan['budget']['steps']} steps × "
        f"{plan['budget']['batch_size']} pairs, training length {plan['budget']['max_length']} tokens"
        + (
            ", the student's word-embedding table frozen (the teacher's)"
            if plan["budget"].get("freeze_word_embeddings")
            else ""
        )
        + ". "
        "Cut = share of training sentences longer than the limit (special tokens included).",
        "",
    ]
    if rows:
        lines += [pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"), ""]
    rates = ", ".join(f"{m} {r['median_s']:.2f} s" for m, r in plan["step_seconds"].items())
    if rates:
        lines += [f"Median wall seconds per training step on this (shared) machine: {rates}.", ""]
    return lines
