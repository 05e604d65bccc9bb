"""The results document of a comparison (``optical-lab report document``): its
generated ``summary.md`` and size curve embedded with what ran, where and how long (``/usr/bin/time -v``,
load average), how often dev selection kept the untrained student, the run-to-run noise floor, the
model-selection signal and the corrections a re-generation made. Every number comes from files the run
wrote; the tables themselves are :mod:`.summary`'s.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..io import read_text, stored_exists
from ..methods.registry import method_order
from .per_query import cell_records


def parse_time_log(path: str | Path) -> dict[str, str]:
    """The fields of a ``/usr/bin/time -v`` report that a results document states."""
    wanted = {
        "Elapsed (wall clock) time (h:mm:ss or m:ss)": "wall",
        "Maximum resident set size (kbytes)": "max_rss_kb",
        "User time (seconds)": "user_s",
        "System time (seconds)": "system_s",
        "Percent of CPU this job got": "cpu",
        "Command being timed": "command",
        "Exit status": "exit",
    }
    out = {}
    for line in read_text(path, errors="replace").splitlines():
        key, _, value = line.strip().rpartition(": ")
        if key in wanted:
            out[wanted[key]] = value.strip().strip('"')
    return out


def mean_load(path: str | Path) -> float | None:
    """Mean 1-minute load average of a log with ``HH:MM:SS <contents of /proc/loadavg>`` lines."""
    values = [float(line.split()[1]) for line in read_text(path).splitlines() if len(line.split()) > 2]
    return sum(values) / len(values) if values else None


def _timing_lines(time_log: str | Path | None, load_log: str | Path | None, cores: int | None) -> list[str]:
    lines = []
    if time_log:
        t = parse_time_log(time_log)
        cpu_min = (float(t.get("user_s", 0)) + float(t.get("system_s", 0))) / 60
        lines.append(
            f"- **wall time {t.get('wall')}** (h:mm:ss), "
            f"**peak memory {int(t.get('max_rss_kb', 0)) / 1024**2:.2f} GiB** "
            f"(max resident set), CPU time {cpu_min:.1f} min ({t.get('cpu')} of one core), "
            f"exit status {t.get('exit')} — measured with `/usr/bin/time -v`."
        )
    if load_log:
        load = mean_load(load_log)
        if load is not None:
            lines.append(
                f"- mean 1-minute load average during the run {load:.1f} on {cores} cores (sampled every 30 s; "
                "this run's own threads account for up to the number of cores it used, anything above "
                "that is other jobs sharing the machine)."
            )
    return lines


def rerun_differences(results: str | Path, metric: tuple[str, str] = ("clir", "MRR@10")) -> pd.DataFrame:
    """The size curve's ``all`` cells retrain exactly the comparison's cells (same pairs, config and
    seed) in a separate run: their difference is the run-to-run noise floor (bf16 sums depend on
    the thread count). One row per cell present in both runs."""
    task, name = metric
    rows = []
    for redo, b in cell_records(Path(results) / "size_curve" / "runs", "done.json"):
        lang, sized, cell = redo.parts[-4], redo.parts[-3], redo.parts[-2]
        method = sized.removesuffix("@all")
        first = Path(results) / "runs" / lang / method / cell / "done.json"
        if sized.endswith("@all") and first.exists():
            a = json.loads(first.read_text(encoding="utf-8"))
            rows.append(
                {
                    "lang": lang,
                    "method": method,
                    "cell": cell,
                    "comparison": a["metrics"][task][name],
                    "rerun": b["metrics"][task][name],
                    "threads": (a.get("threads"), b.get("threads")),
                    "same_best_step": a.get("best_step") == b.get("best_step"),
                }
            )
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["abs_diff"] = (frame.comparison - frame.rerun).abs()
    return frame


def _selection_lines(results: Path) -> list[str]:
    """How often dev-set model selection kept the untrained student (``best_step`` 0), per method:
    where it does, that method's cells equal zero-shot by construction."""
    kept: dict[str, list[int]] = {}
    for _, info in cell_records(results / "runs", "done.json"):
        if info.get("method") != "zero-shot" and "best_step" in info:
            kept.setdefault(info["method"], []).append(int(info["best_step"] == 0))
    if not kept:
        return []
    parts = ", ".join(f"{m} {sum(kept[m])}/{len(kept[m])}" for m in method_order(kept))
    return [
        "- dev-set model selection kept the untrained student (best step 0, i.e. the zero-shot model) in: "
        f"{parts} cells."
    ]


def dev_history_rows(results: str | Path) -> pd.DataFrame:
    """Dev-bitext MRR (the model-selection signal) at every evaluated step of every cell: one row per
    (lang, method, cell, step)."""
    rows = []
    for path, summary in cell_records(Path(results) / "runs", "train_summary.json"):
        lang, method, cell = path.parts[-4], path.parts[-3], path.parts[-2]
        for step, mrr in summary.get("dev_history", []):
            rows.append({"lang": lang, "method": method, "cell": cell, "step": int(step), "dev_MRR": float(mrr)})
    return pd.DataFrame(rows, columns=["lang", "method", "cell", "step", "dev_MRR"])


def dev_trajectories(results: str | Path) -> pd.DataFrame:
    """Dev-bitext MRR at every evaluated step, averaged over a method's cells: shows whether training moved
    the student towards or away from the dev target."""
    rows = dev_history_rows(results)
    if rows.empty:
        return pd.DataFrame()
    table = rows.pivot_table(index="method", columns="step", values="dev_MRR", aggfunc="mean")
    return table.reindex(method_order(table.index))


def _dev_lines(results: Path) -> list[str]:
    table = dev_trajectories(results)
    if table.empty:
        return []
    table.columns = [f"step {c}" for c in table.columns]
    return [
        "## Model-selection signal",
        "",
        "Dev-bitext sentence-retrieval MRR (what selects each student; never evaluation documents) at every "
        "evaluated step, mean over languages and folds. Step 0 is the untrained copy of the teacher.",
        "",
        table.to_markdown(floatfmt=".3f"),
        "",
    ]


CORRECTIONS = "corrections.md"  # which committed statements a re-generation changed (optical_lab.reports.corrections)


def corrections_lines(results: str | Path) -> list[str]:
    """The folder's ``corrections.md`` as lines of its results document (none when it has no such file)."""
    path = Path(results) / CORRECTIONS
    return [path.read_text(encoding="utf-8").rstrip("\n"), ""] if path.exists() else []


def _if_exists(path: Path) -> Path | None:
    return path if stored_exists(path) else None


def _rerun_lines(results: Path) -> list[str]:
    diffs = rerun_differences(results)
    if diffs.empty:
        return []
    threads = sorted({t for pair in diffs.threads for t in pair if t})
    return [
        f"- run-to-run noise: the {len(diffs)} `all` cells above retrain comparison cells with identical pairs, "
        f"config and seed (torch threads used: {threads}); their MRR@10 differs from the comparison's by "
        f"{diffs.abs_diff.mean():.4f} on average, at most {diffs.abs_diff.max():.4f}; "
        f"{int((~diffs.same_best_step).sum())} of {len(diffs)} selected a different dev step. "
        "bf16 reductions depend on the thread count, so a difference of this size between methods is noise."
    ]


def render_report(
    results: str | Path,
    time_log: str | Path | None = None,
    load_log: str | Path | None = None,
    title: str = "Results: all-MiniLM-L6-v2 teacher",
    curve_time_log: str | Path | None = None,
    curve_load_log: str | Path | None = None,
    notes: list[str] | None = None,
) -> str:
    """Markdown that embeds a comparison's generated ``summary.md`` (and size curve), its config and
    the measured wall time / memory — every number comes from files the run wrote."""
    results = Path(results)
    # the logs `make full` keeps next to a run, unless others are named
    time_log = time_log or _if_exists(results / "time_v.txt")
    load_log = load_log or _if_exists(results / "loadavg.log")
    curve_time_log = curve_time_log or _if_exists(results / "size_curve" / "time_v.txt")
    curve_load_log = curve_load_log or _if_exists(results / "size_curve" / "loadavg.log")
    config = json.loads((results / "config.json").read_text(encoding="utf-8"))
    env = json.loads((results / "environment_compare.json").read_text(encoding="utf-8"))
    argv = " ".join(["optical-lab", *env.get("argv", [])[1:]])
    lines = [
        f"# {title}",
        "",
        f"Generated by `optical-lab report document` from `{results}` (nothing below is typed by hand).",
        "",
        "## What ran",
        "",
        "```",
        argv,
        "```",
        "",
        f"- machine: {env.get('platform')}, {env.get('cpu_count')} cores, torch threads "
        f"{config.get('threads') or 'auto (per cell: see each done.json)'}, "
        f"GPU: {env.get('cuda') or 'none'}; packages: "
        + ", ".join(f"{k} {v}" for k, v in env.get("packages", {}).items() if v)
        + ".",
        f"- started {env.get('time')}; training precision / evaluation encodes: {config['train']['mixed_precision']}.",
        *_timing_lines(time_log, load_log, env.get("cpu_count")),
        *_selection_lines(results),
        *[f"- {note}" for note in notes or []],
    ]
    summary = (results / "summary.md").read_text(encoding="utf-8")
    summary = summary.replace("\n## ", "\n### ").replace("## Per", "### Per", 1)
    lines += ["", *corrections_lines(results), "## Comparison", "", summary]
    curve = results / "size_curve" / "size_curve.md"
    if curve.exists():
        curve_cfg = json.loads((results / "config_size_curve.json").read_text(encoding="utf-8"))
        curve_env = json.loads((results / "environment_size_curve.json").read_text(encoding="utf-8"))
        lines += [
            "## Bitext-size curve",
            "",
            "```",
            " ".join(["optical-lab", *curve_env.get("argv", [])[1:]]),
            "```",
            "",
            f"- languages {', '.join(curve_cfg['langs'])}; "
            f"{curve_cfg['folds']} fold(s) x {curve_cfg['seeds']} seed(s); "
            "plot-ready CSV: `size_curve/size_curve.csv`.",
            *_timing_lines(curve_time_log, curve_load_log, curve_env.get("cpu_count")),
            *_rerun_lines(results),
            "",
            curve.read_text(encoding="utf-8").replace("## ", "### ", 1),
        ]
    lines += _dev_lines(results)
    lines += [
        "## Configuration",
        "",
        "Training configuration saved with every result "
        "(`config.json`; each cell's `config.json` repeats it with its seed):",
        "",
        "```json",
        json.dumps(config["train"], indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)
