"""Tables of a comparison (``summary.csv``, ``significance.csv``, ``winners.csv``, ``summary.md``), every number
from the statistics core (:mod:`optical_lab.evaluation.stats`), so they agree with ``analysis.json``, the
figures and the answer text. For every language and metric:

* **mean ± 95% CI** (Student t) over the queries, each query's score averaged over seeds (and the folds that
  evaluated it): ``n`` = queries, a deterministic arm (zero-shot) counted once;
* ``reference − method`` (OPTICAL − method: positive = OPTICAL better) with its CI, the sign-flip **paired
  randomization test** on the seed-averaged queries (Smucker, Allan & Carterette, CIKM 2007), **Holm** over the
  methods compared within that language and metric (Holm 1979), and the minimum detectable effect;
* the **winner** on the headline metric and whether it is significant. When OPTICAL is not the best method
  the verdict says so ("optical LOSES ...").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from ..evaluation.stats import arm_summary, difference_stats, language_tests, paired_differences, query_scores
from ..evaluation.verdict import ALPHA, DIFFERENCE, is_tie, ranking, tied_with
from ..io import open_stored, read_json, read_text, stored_exists, stored_glob, write_csv, write_text
from ..methods.config import TrainConfig
from ..methods.registry import REFERENCE, method_order
from ..tasks.registry import TASKS
from ..tasks.registry import reported_metrics as tasks_reported

KEYS = ["lang", "method", "fold", "seed", "task", "qid"]
# What the tables report per sub-task (columns of the per-query CSVs; each task's ``reported``);
# other columns are kept but not shown.
REPORTED: dict[str, list[str]] = tasks_reported()


def metric_label(task: str, metric: str) -> str:
    return f"{task}:{metric}"


def reported_metrics(per_query: pd.DataFrame) -> list[tuple[str, str]]:
    """(task, metric) pairs present in the table, in REPORTED order (unknown tasks: every metric)."""
    out = []
    for task in dict.fromkeys(per_query["task"]):
        columns = [
            c for c in per_query.columns if c not in KEYS and per_query.loc[per_query["task"] == task, c].notna().any()
        ]
        wanted = REPORTED.get(task, columns)
        out.extend((task, m) for m in wanted if m in columns)
    return out


@dataclass
class ComparisonSummary:
    """All the numbers of a comparison (tidy tables) and their markdown rendering."""

    means: pd.DataFrame  # lang, task, metric, method, mean, ci, ci_low, ci_high, n (queries), seeds, deterministic
    tests: pd.DataFrame  # lang, task, metric, reference, method, ..., reference_minus_method, ci, p, p_holm, mde
    winners: pd.DataFrame  # lang, task, metric, winner, ..., verdict
    primary: tuple[str, str]
    reference: str = REFERENCE
    alpha: float = ALPHA
    notes: list[str] = field(default_factory=list)

    def wide(self, task: str, metric: str) -> pd.DataFrame:
        """lang x method table of 'mean ± ci' strings, '*' marking a significant difference from the reference."""
        part = self.means[(self.means.task == task) & (self.means.metric == metric)]
        sig = self.tests[(self.tests.task == task) & (self.tests.metric == metric)].set_index(["lang", "method"])[
            "significant"
        ]
        cells: dict[str, dict[str, str]] = {}
        for row in part.itertuples():
            best = part[part.lang == row.lang]["mean"].max()
            text = f"{row.mean:.3f} ± {row.ci:.3f}"
            if sig.get((row.lang, row.method), False):
                text += " *"
            if is_tie(row.mean, best):
                text = f"**{text}**"
            cells.setdefault(row.lang, {})[row.method] = text
        table = pd.DataFrame(cells).T
        table = table[[m for m in method_order(part.method) if m in table.columns]]
        table.index.name = "lang"
        return table

    def winners_table(self) -> pd.DataFrame:
        task, metric = self.primary
        w = self.winners[(self.winners.task == task) & (self.winners.metric == metric)]
        return w[
            ["lang", "winner", "winner_mean", "reference_mean", "runner_up", "p_holm", "significant", "verdict"]
        ].set_index("lang")

    def winners_by_metric(self) -> pd.DataFrame:
        """lang x metric: the best method, with '*' when it differs significantly from the reference."""
        table: dict[str, dict[str, str]] = {}
        for row in self.winners.itertuples():
            mark = " *" if row.significant else ""
            if row.winner != self.reference:
                text = f"{row.winner}{mark}"
            else:  # a tie at the top is shown as one: the reference leads it only by convention
                text = f"**{row.winner}**{mark}" + (" (tie)" if row.tie else "")
            table.setdefault(metric_label(row.task, row.metric), {})[row.lang] = text
        out = pd.DataFrame(table)
        out.index.name = "lang"
        return out

    def to_markdown(self) -> str:
        task, metric = self.primary
        lines = [
            f"## Per-language winner ({metric}, {task})",
            "",
            self.winners_table().to_markdown(floatfmt=".3f"),
            "",
            f"Winner on every reported metric (bold: `{self.reference}`; `*`: the winner differs significantly "
            f"from `{self.reference}`, or, when `{self.reference}` wins, from every other method; (tie): "
            f"`{self.reference}` shares the best mean with another method):",
            "",
            self.winners_by_metric().to_markdown(),
            "",
            f"Significance: paired randomization test (10,000 sign flips) of each method against "
            f"`{self.reference}` on per-query scores averaged over seeds (a query counts once; "
            f"`significance.csv`: `{DIFFERENCE}` = {self.reference} − method with its CI and minimum "
            f"detectable effect), Holm-corrected over the methods within each language and metric; "
            f"significant = adjusted p < {self.alpha}.",
            "",
        ]
        for t, m in reported_metrics_from(self.means):
            lines += [
                f"## {m} ({t}) — mean ± 95% CI over queries (each averaged over seeds)",
                "",
                self.wide(t, m).to_markdown(),
                "",
                f"`*` = significantly different from `{self.reference}` (Holm-adjusted p < {self.alpha}); "
                "bold = best in the row.",
                "",
            ]
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines).rstrip() + "\n"

    def write(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_csv(self.means, folder / "summary.csv", index=False)
        write_csv(self.tests, folder / "significance.csv", index=False)
        write_csv(self.winners, folder / "winners.csv", index=False)
        write_text(self.to_markdown(), folder / "summary.md")


def reported_metrics_from(means: pd.DataFrame) -> list[tuple[str, str]]:
    return list(dict.fromkeys(zip(means.task, means.metric)))


def paired_test(part: pd.DataFrame, metric: str, a: str, b: str, n_resamples: int = 10_000) -> float:
    """Paired randomization p-value of ``a`` vs ``b`` on their seed-averaged common queries of one language and
    sub-task (1.0 without common queries): the size curve's test, the core's (:mod:`..evaluation.stats`)."""
    task = part.task.iloc[0] if len(part) else ""
    diffs = paired_differences(query_scores(part, task, metric), a, b, list(dict.fromkeys(part.lang)))
    return difference_stats(diffs, n_resamples=n_resamples)["p"] if diffs else 1.0


def summarize(
    per_query: pd.DataFrame,
    primary: tuple[str, str] | None = None,
    reference: str = REFERENCE,
    alpha: float = ALPHA,
    n_resamples: int = 10_000,
    langs: list[str] | None = None,
) -> ComparisonSummary:
    """Means, CIs, tests and winners from the long per-query table (languages in ``langs`` order), all from
    the statistics core."""
    metrics = reported_metrics(per_query)
    primary = primary or metrics[0]
    present = list(dict.fromkeys(per_query["lang"]))
    order = [l for l in (langs or []) if l in present] + [l for l in present if l not in (langs or [])]
    mean_parts, test_parts, winner_rows = [], [], []
    for task, metric in metrics:
        mean_parts.append(arm_summary(per_query, task, metric, order, confidence=0.95))
        test_parts.append(
            language_tests(per_query, task, metric, order, reference, alpha=alpha, n_resamples=n_resamples)
        )
    means, tests = pd.concat(mean_parts, ignore_index=True), pd.concat(test_parts, ignore_index=True)
    key = {lang: i for i, lang in enumerate(order)}
    rank = {(t, m): i for i, (t, m) in enumerate(metrics)}
    means = _in_order(means, key, rank)
    tests = _in_order(tests, key, rank)
    for lang in order:
        for task, metric in metrics:
            part = means[(means.lang == lang) & (means.task == task) & (means.metric == metric)]
            if part.empty:
                continue
            part = part.set_index("method").loc[method_order(part.method)]
            own = tests[(tests.lang == lang) & (tests.task == task) & (tests.metric == metric)]
            winner_rows.append(
                _verdict(
                    lang, task, metric, part["mean"].to_dict(), dict(zip(own.method, own.p_holm)), reference, alpha
                )
            )
    return ComparisonSummary(means, tests, pd.DataFrame(winner_rows), primary, reference, alpha)


def _in_order(table: pd.DataFrame, langs: dict[str, int], metrics: dict[tuple[str, str], int]) -> pd.DataFrame:
    """Rows by language (``langs`` order), metric (reported order), then method (registry order)."""
    methods = {m: i for i, m in enumerate(method_order(table.method))}
    keys = [(langs[r.lang], metrics[(r.task, r.metric)], methods[r.method]) for r in table.itertuples()]
    return table.iloc[sorted(range(len(table)), key=keys.__getitem__)].reset_index(drop=True)


def _verdict(
    lang: str, task: str, metric: str, means: dict[str, float], p_holm: dict[str, float], reference: str, alpha: float
) -> dict:
    ranked = ranking(means, reference)  # stable: ties keep method order; a tie is not a loss
    winner = ranked[0]
    row = {
        "lang": lang,
        "task": task,
        "metric": metric,
        "winner": winner,
        "winner_mean": means[winner],
        "reference_mean": means.get(reference, np.nan),
        "runner_up": None,
        "p_holm": np.nan,
        "significant": False,
        "optical_wins": winner == reference,
        "tie": False,
    }
    if reference not in means:
        row["verdict"] = f"{winner} best ({reference} not run)"
        return row
    if winner == reference:
        runner_up = ranked[1] if len(ranked) > 1 else None
        row["runner_up"] = runner_up
        if runner_up is None:
            row["verdict"] = f"{reference} (only method)"
            return row
        worst_p = max(p_holm.values())
        row["p_holm"] = p_holm[runner_up]
        row["significant"] = worst_p < alpha
        tied = tied_with(means, reference, ranked[1:])
        row["tie"] = bool(tied)
        if row["significant"]:
            row["verdict"] = f"{reference} wins, significantly better than every other method"
        elif tied:
            row["verdict"] = f"{reference} ties with {', '.join(tied)} (no difference)"
        else:
            not_sig = [m for m, p in p_holm.items() if p >= alpha]
            row["verdict"] = f"{reference} wins, but not significantly better than {', '.join(not_sig)}"
        return row
    row["runner_up"] = reference
    row["p_holm"] = p_holm.get(winner, np.nan)
    row["significant"] = bool(row["p_holm"] < alpha)
    how = "significantly" if row["significant"] else "not significantly"
    row["verdict"] = f"{reference} LOSES: {winner} is better ({how}, Holm p={row['p_holm']:.3g})"
    return row


# ---------------------------------------------------------------- results folders
def cell_records(folder: str | Path, name: str) -> Iterator[tuple[Path, dict[str, Any]]]:
    """``(path, parsed JSON)`` of the file ``name`` (``done.json``, ``train_summary.json``) in every
    cell folder ``<folder>/<lang>/<method>/<fold-seed>/``."""
    for path in stored_glob(folder, f"*/*/*/{name}"):
        yield path, read_json(path)


def load_per_query(cells_root: str | Path, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """Long per-query table from every finished cell under ``cells_root`` (``<lang>/<method>/fold<k>-seed<s>``).

    ``extra`` names further fields of each cell's ``done.json`` to copy into columns (e.g. ``size``).

    >>> import pathlib
    >>> import optical_lab
    >>> from optical_lab import load_per_query
    >>> runs = pathlib.Path(optical_lab.__file__).parents[1] / "results" / "compare-minilm" / "runs"  # committed
    >>> table = load_per_query(runs)
    >>> list(table.columns[:7])
    ['lang', 'method', 'fold', 'seed', 'task', 'qid', 'MRR@10']
    >>> means = table.query("task == 'clir'").groupby("method")["MRR@10"].mean()
    >>> bool(means["zero-shot"] > 0), "optical" in means
    (True, True)
    """
    frames = []
    for done, info in cell_records(cells_root, "done.json"):
        for csv in stored_glob(done.parent, "*.per_query.csv"):
            table = pd.read_csv(open_stored(csv), dtype={"qid": str})
            table.insert(0, "task", csv.name.split(".")[0])
            for column in extra:
                table[column] = info.get(column)
            for column, value in (
                ("seed", info["seed"]),
                ("fold", info["fold"]),
                ("method", info["method"]),
                ("lang", info["lang"]),
            ):
                table.insert(0, column, value)
            frames.append(table)
    if not frames:
        raise FileNotFoundError(f"no finished cells under {cells_root}")
    return pd.concat(frames, ignore_index=True)


def summarize_plan(root: str | Path, plan: dict[str, Any], primary_metric: str | None = None) -> ComparisonSummary:
    """The summary of a comparison's finished cells under ``root``, as its plan (the ``config.json``
    dict: langs, methods, task, model, bitext, folds, seeds, preset, train) defines it. The runner
    and ``table`` both call this, so re-summarising a folder gives what the run wrote."""
    per_query = load_per_query(root)
    per_query = per_query[per_query.lang.isin(plan["langs"]) & per_query.method.isin(plan["methods"])]
    primary_metric = primary_metric or TASKS[plan["task"]].primary
    metrics = reported_metrics(per_query)
    own = TASKS[plan["task"]].reported  # the headline is the training task's, whatever else the cells scored
    primary = next(
        ((sub, m) for sub, m in metrics if m == primary_metric and sub in own),
        next(((sub, m) for sub, m in metrics if m == primary_metric), metrics[0]),
    )
    summary = summarize(per_query, primary=primary, langs=plan["langs"])
    n_cells = per_query.groupby(["lang", "method"])[["fold", "seed"]].apply(lambda g: len(g.drop_duplicates()))
    fingerprint = TrainConfig.from_dict(plan["train"]).fingerprint()
    summary.notes += [
        f"task `{plan['task']}`, model `{plan['model']}`, bitext `{plan['bitext']}`, "
        f"{plan['folds']} fold(s) x {plan['seeds']} seed(s) = {int(n_cells.max())} run(s) per language and method; "
        "queries encoded by the teacher, documents by the student.",
        f"training config (preset `{plan['preset']}`): see `config.json` (fingerprint {fingerprint}).",
    ]
    return summary


def summarize_folder(folder: str | Path) -> ComparisonSummary:
    """Re-summarise a comparison folder from its ``config.json`` and finished cells (nothing is
    retrained); without a ``config.json``, every finished cell under ``runs/`` counts."""
    folder = Path(folder)
    if (folder / "config.json").exists():  # keep its language order, methods and notes
        plan = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        return summarize_plan(folder / "runs", plan)
    return summarize(load_per_query(folder / "runs"))


# ---------------------------------------------------------------- results document
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


if __name__ == "__main__":  # older spelling of `optical-lab report summary FOLDER` (table) / `report document` (report)
    import runpy
    import sys

    step = sys.argv.pop(1) if len(sys.argv) > 1 else "table"
    module = {"table": "summary_cli", "report": "document_cli"}.get(step, "summary_cli")
    runpy.run_module(f"optical_lab.experiments.{module}", run_name="__main__")  # by name: no import cycle
