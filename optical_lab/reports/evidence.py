"""The figures a reader looks at before reading: the forest plot of OPTICAL − arm (per language and pooled,
95% CIs, the MDE band, per-seed points), the dev-score curves per arm, and the OT diagnostics per step.

Every number comes from the statistics core (:mod:`optical_lab.evaluation.stats`) on the folder's per-query
results, on the family that its ``analysis.json`` names (protocol v2: its languages and endpoints) or, for
a folder without one, on every language of the headline metric (no pooled row: v1 registered none).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..evaluation.pooled import Endpoint
from ..evaluation.stats import language_tests, per_seed_differences, pooled_comparisons
from ..evaluation.verdict import DIFFERENCE, REFERENCE
from ..experiments.per_query import load_per_query
from ..experiments.results_doc import dev_history_rows
from ..io import read_jsonl, stored_glob
from ..methods.registry import AUGMENTATIONS, BY_NAME, method_order
from .plots import grid, method_colors

POOLED = "pooled"


@dataclass
class Forest:
    """The rows of a forest plot: ``tests`` (lang or ``pooled``, method, reference_minus_method, ci_low, ci_high,
    mde) and ``seeds`` (the same per seed), one endpoint."""

    endpoint: Endpoint
    tests: pd.DataFrame
    seeds: pd.DataFrame


def family(
    results: Path, per_query: pd.DataFrame, endpoint: Endpoint | None = None
) -> tuple[list[str], list[Endpoint], bool]:
    """(languages, endpoints, pooled?) the figures show: the registered family of ``analysis.json``, else every
    language of ``endpoint`` (the headline) with no pooled row."""
    path = results / "analysis.json"
    if path.exists():
        analysis = json.loads(path.read_text(encoding="utf-8"))
        labels = analysis.get("endpoints", [])
        return list(analysis["primary_languages"]), [Endpoint(*label.split(":", 1)) for label in labels], True
    if endpoint is None:
        raise ValueError(f"{results} has no analysis.json: name the endpoint to plot")
    present = list(dict.fromkeys(per_query[per_query.task == endpoint.task].lang))
    config = results / "config.json"
    order = json.loads(config.read_text(encoding="utf-8")).get("langs", []) if config.exists() else []
    return [l for l in order if l in present] + [l for l in present if l not in order], [endpoint], False


def forest_rows(
    per_query: pd.DataFrame,
    endpoint: Endpoint,
    langs: Sequence[str],
    pooled: bool,
    arms: Sequence[str] = AUGMENTATIONS,
    reference: str = REFERENCE,
) -> Forest:
    """OPTICAL − each arm per language (and pooled over ``langs``), with per-seed differences."""
    arms = [a for a in arms if a in set(per_query.method)]
    tests = language_tests(per_query, endpoint.task, endpoint.metric, langs, reference, arms)
    if pooled:
        pool = pooled_comparisons(per_query, reference, arms, [endpoint], langs).assign(lang=POOLED)
        tests = pd.concat([tests, pool[tests.columns.intersection(pool.columns)]], ignore_index=True)
    seeds = per_seed_differences(per_query, endpoint.task, endpoint.metric, langs, reference, arms)
    return Forest(endpoint, tests, seeds)


def plot_forest(forest: Forest, ax=None, reference: str = REFERENCE):
    """One row per language (pooled last, bold), one marker per arm: ``reference − arm`` with its 95% CI
    (line), each seed's difference (small dots) and ±MDE of the row's widest arm (grey band): an effect
    inside the band could hide behind "not significant"."""
    tests, seeds = forest.tests, forest.seeds
    rows = list(dict.fromkeys(tests.lang))
    arms = method_order(tests.method)
    colors = method_colors(arms)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 0.55 * len(rows) * max(1, len(arms)) / 1.6 + 1.4), layout="constrained")
    step = 0.7 / max(1, len(arms))
    for y, lang in enumerate(rows):
        part = tests[tests.lang == lang]
        mde = part.mde.max()
        ax.fill_between([-mde, mde], y - 0.42, y + 0.42, color="0.92", lw=0, zorder=0)
        for k, arm in enumerate(arms):
            row = part[part.method == arm]
            if row.empty:
                continue
            row = row.iloc[0]
            yy = y + (k - (len(arms) - 1) / 2) * step
            ax.plot([row.ci_low, row.ci_high], [yy, yy], color=colors[arm], lw=2.2 if lang == POOLED else 1.4)
            ax.plot(
                row[DIFFERENCE],
                yy,
                "D" if lang == POOLED else "o",
                color=colors[arm],
                ms=6 if lang == POOLED else 4.5,
                label=(f"{arm} (oracle)" if arm in BY_NAME and BY_NAME[arm].oracle else arm) if y == 0 else None,
            )
            own = seeds[(seeds.lang == lang) & (seeds.method == arm)]
            ax.plot(own[DIFFERENCE], np.full(len(own), yy + step * 0.35), ".", color=colors[arm], ms=3, alpha=0.7)
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_yticks(range(len(rows)), [f"$\\bf{{{r}}}$" if r == POOLED else r for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel(f"{reference} − arm, {forest.endpoint.label}  (> 0: {reference} better)")
    ax.legend(fontsize=7, loc="lower right", frameon=True, framealpha=0.85, edgecolor="none")
    return ax


def forest_figure(results: Path, per_query: pd.DataFrame | None = None, endpoint: Endpoint | None = None):
    """The forest plot of a results folder, one panel per endpoint of its family."""
    per_query = load_per_query(results / "runs") if per_query is None else per_query
    langs, endpoints, pooled = family(results, per_query, endpoint)
    forests = [forest_rows(per_query, e, langs, pooled) for e in endpoints]
    fig, axes = grid(len(forests), ncols=len(forests), panel=(5.6, 0.5 * (len(langs) + 1) * 1.6 + 1.2))
    for ax, forest in zip(axes, forests):
        plot_forest(forest, ax)
    fig.suptitle(
        f"{REFERENCE} − augmentation arm per language"
        + (" and pooled" if pooled else "")
        + ": 95% CI (line), seeds (dots), ±MDE (grey)",
        fontsize=9,
    )
    return fig, forests


def dev_curves_figure(results: Path):
    """Dev-bitext MRR (what selects each student) against the step, one panel per language, one colour per
    arm: the mean over seeds (line) and each seed (thin). Still rising at the last step = under-trained."""
    table = dev_history_rows(results)
    if table.empty:
        raise FileNotFoundError(f"no train_summary.json with a dev history under {results / 'runs'}")
    langs = list(dict.fromkeys(table.lang))
    colors = method_colors(table.method)
    fig, axes = grid(len(langs), ncols=min(3, len(langs)), panel=(3.6, 2.7))
    for ax, lang in zip(axes, langs):
        part = table[table.lang == lang]
        for method in method_order(part.method):
            own = part[part.method == method]
            for _, cell in own.groupby("cell"):
                ax.plot(cell.step, cell.dev_MRR, color=colors[method], lw=0.5, alpha=0.4)
            mean = own.groupby("step").dev_MRR.mean()
            ax.plot(mean.index, mean.values, color=colors[method], lw=1.8, label=method)
        ax.set_title(lang, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("dev MRR")
    axes[0].legend(fontsize=6, frameon=True, framealpha=0.85, edgecolor="none")
    fig.suptitle(
        "Dev-bitext MRR per training step (model selection's signal): mean over seeds, thin = one seed", fontsize=9
    )
    return fig


def diagnostics_rows(sweep: Path, method: str = "optical") -> pd.DataFrame:
    """Per training step of every OPTICAL sweep setting: its cost variant, ε and the logged diagnostics."""
    rows = []
    for log in stored_glob(sweep / method, "*/train_log.jsonl"):  # plain or compacted (optical_lab.io)
        setting = log.parent.name
        variant = next((part.split("=")[1] for part in setting.split("-") if part.startswith("ot_variant=")), "plain")
        for record in read_jsonl(log):
            if record.get("event") == "train" and "token_cos" in record:
                rows.append({"setting": setting, "variant": variant, **record})
    return pd.DataFrame(rows)


DIAGNOSTIC_PANELS = (
    ("token_cos", "mean pairwise cosine of a\nsentence's student tokens (collapse → 1)"),
    ("plan_entropy", "normalised row entropy\nof the foreign plan"),
    ("ot_not_converged", "OT problems per step above\nthe tolerance (unconverged)"),
)


def diagnostics_figure(sweep: Path, settings: Sequence[str]):
    """The OT diagnostics per step of the named sweep settings (e.g. plain / centred / both at one ε)."""
    table = diagnostics_rows(sweep)
    table = table[table.setting.isin(settings)]
    if table.empty:
        raise FileNotFoundError(f"no OPTICAL diagnostics for {', '.join(settings)} under {sweep}")
    fig, axes = grid(len(DIAGNOSTIC_PANELS), ncols=len(DIAGNOSTIC_PANELS), panel=(3.6, 2.8))
    palette = dict(zip(("plain", "centred", "both"), ("#d62728", "#2ca02c", "#1f5fa8")))
    for ax, (key, label) in zip(axes, DIAGNOSTIC_PANELS):
        for setting in settings:
            own = table[table.setting == setting]
            smooth = own[key].rolling(10, min_periods=1).mean()
            ax.plot(
                own.step,
                smooth,
                color=palette.get(own.variant.iloc[0], "0.4") if len(own) else "0.4",
                label=own.variant.iloc[0] if len(own) else setting,
            )
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("step")
    axes[0].legend(fontsize=7, title="cost", title_fontsize=7)
    fig.suptitle("OPTICAL's OT diagnostics per training step on hau dev-sweep runs (10-step running mean)", fontsize=9)
    return fig
