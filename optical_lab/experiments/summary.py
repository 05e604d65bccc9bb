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

The cells are read by :mod:`.per_query`; the results document that embeds these tables is
:mod:`.results_doc` (``python -m optical_lab.experiments.summary report``; ``... summary table FOLDER``
re-summarises a folder).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..evaluation.stats import arm_summary, difference_stats, language_tests, paired_differences, query_scores
from ..evaluation.verdict import ALPHA, DIFFERENCE, is_tie, ranking, tied_with
from ..io import write_csv, write_text
from ..methods.config import TrainConfig
from ..methods.registry import REFERENCE, method_order
from ..tasks.registry import TASKS
from ..tasks.registry import reported_metrics as tasks_reported
from .per_query import load_per_query

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


if __name__ == "__main__":  # older spelling of `optical-lab report summary FOLDER` (table) / `report document` (report)
    import runpy
    import sys

    step = sys.argv.pop(1) if len(sys.argv) > 1 else "table"
    module = {"table": "summary_cli", "report": "document_cli"}.get(step, "summary_cli")
    runpy.run_module(f"optical_lab.experiments.{module}", run_name="__main__")  # by name: no import cycle
