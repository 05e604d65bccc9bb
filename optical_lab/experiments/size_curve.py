"""Bitext-size curve: how OPTICAL and the augmentation baseline scale with training pairs.

``optical-lab compare --size-curve 100,300,all --langs hau,swa ...`` trains ``optical`` and
``config.aug_method`` (default translate-train) on **nested** subsets of each fold's training
bitext (the 100 pairs are inside the 300; ``all`` = every training pair of the fold) with the
same step budget, plus ``zero-shot`` as the 0-pair point, and writes under ``<out>/size_curve/``:

* ``size_curve.csv`` — plot-ready long table: lang, method, size, train_pairs (mean actual count),
  task, metric, mean, ci, ci_low, ci_high, n (queries pooled over folds and seeds), and for the
  augmentation rows the paired randomization p-value against optical at that size, Holm-corrected
  over the sizes of a language and metric;
* ``size_curve.md`` — the headline metric as a table.

The cells are run by :meth:`optical_lab.experiments.runner.Runner.run_size_curve`; this module only
turns finished cells into the tables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..evaluation.significance import holm, mean_ci
from ..io import write_csv, write_text
from ..methods.registry import REFERENCE
from .per_query import load_per_query
from .summary import paired_test, reported_metrics

CURVE = "size_curve"


def curve_table(per_query: pd.DataFrame, reference: str = REFERENCE, n_resamples: int = 10_000) -> pd.DataFrame:
    """Means/CIs per (lang, method, size, metric) and p-values of each method vs ``reference`` per size."""
    rows = []
    for lang in dict.fromkeys(per_query.lang):
        for task, metric in reported_metrics(per_query):
            part = per_query[(per_query.lang == lang) & (per_query.task == task)]
            for (method, size), group in part.groupby(["method", "size"], sort=False, dropna=False):
                values = group[metric].dropna().to_numpy(float)
                mean, ci = mean_ci(values)
                rows.append(
                    {
                        "lang": lang,
                        "method": method,
                        "size": size,
                        "train_pairs": float(group.drop_duplicates(["fold", "seed"])["train_pairs"].mean()),
                        "task": task,
                        "metric": metric,
                        "mean": mean,
                        "ci": ci,
                        "ci_low": mean - ci,
                        "ci_high": mean + ci,
                        "n": len(values),
                        "p_vs_optical": np.nan,
                        "p_holm": np.nan,
                    }
                )
            # paired tests at each size, Holm over the sizes of this language and metric
            tests = []
            for size, group in part.groupby("size", sort=False):
                for method in group.method.unique():
                    if method != reference:
                        tests.append((method, size, paired_test(group, metric, method, reference, n_resamples)))
            adjusted = holm([p for _, _, p in tests]) if tests else []
            for (method, size, p), p_adj in zip(tests, adjusted):
                for row in rows:
                    if (row["lang"], row["method"], row["size"], row["task"], row["metric"]) == (
                        lang,
                        method,
                        size,
                        task,
                        metric,
                    ):
                        row["p_vs_optical"], row["p_holm"] = p, p_adj
    return pd.DataFrame(rows)


def write_curve(
    out: str | Path, langs: list[str], sizes: list[int | None], aug_method: str, primary_metric: str = "MRR@10"
) -> pd.DataFrame:
    """``size_curve.csv`` and ``size_curve.md`` from the finished cells under ``<out>/size_curve/runs``."""
    folder = Path(out) / CURVE
    methods = [REFERENCE, aug_method]
    per_query = load_per_query(folder / "runs", extra=("size", "train_pairs"))
    per_query = per_query[per_query.lang.isin(langs) & per_query.method.isin(["zero-shot", *methods])]
    labels = {0: "0", None: "all"}
    per_query["size"] = per_query["size"].map(lambda s: labels.get(s, str(s)) if not isinstance(s, str) else s)
    per_query = per_query[per_query["size"].isin({"0"} | {labels.get(s, str(s)) for s in sizes})]
    table = curve_table(per_query)
    write_csv(table, folder / "size_curve.csv", index=False)
    primary = [(t, m) for t, m in reported_metrics(per_query) if m == primary_metric][:1] or reported_metrics(
        per_query
    )[:1]
    task, metric = primary[0]
    head = table[(table.task == task) & (table.metric == metric)].copy()
    head["value"] = [f"{m:.3f} ± {c:.3f}" for m, c in zip(head["mean"], head["ci"])]
    wide = head.pivot_table(index=["lang", "size"], columns="method", values="value", aggfunc="first", sort=False)
    pairs = head.pivot_table(index=["lang", "size"], values="train_pairs", aggfunc="max", sort=False)
    wide.insert(0, "train_pairs", pairs["train_pairs"].round().astype(int))
    order = {lang: i for i, lang in enumerate(langs)}
    wide = wide.reset_index()
    wide = wide.sort_values(["lang", "train_pairs"], key=lambda col: col.map(order) if col.name == "lang" else col)
    wide = wide[["lang", "size", "train_pairs", *[m for m in ("zero-shot", *methods) if m in wide.columns]]].fillna("—")
    lines = [
        f"## Bitext-size curve: {metric} ({task}), mean ± 95% CI",
        "",
        wide.to_markdown(index=False),
        "",
        "Same step budget at every size; `all` = every training pair of the fold (train_pairs: mean over "
        f"folds); 0 = zero-shot. p-values ({REFERENCE} vs {aug_method}, paired randomization, Holm over sizes) "
        "are in `size_curve.csv`.",
        "",
    ]
    write_text("\n".join(lines), folder / "size_curve.md")
    return head.drop(columns=["value"])[["lang", "method", "size", "train_pairs", "mean", "ci", "p_holm"]]


if __name__ == "__main__":  # older spelling of `optical-lab report summary FOLDER`
    import runpy

    runpy.run_module("optical_lab.experiments.summary_cli", run_name="__main__")  # by name: no import cycle
