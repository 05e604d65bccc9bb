"""Plotting functions shared by the notebooks, the widget explorers and ``optical-lab figures``.

Every function draws on a given matplotlib ``ax`` (a new figure when ``ax`` is None) and returns
the axes, so callers can compose panels. Nothing here computes results: plans come from
:mod:`optical_lab.reports.alignment`, tables from the comparison harness's summary files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd

from ..io import atomic_write
from ..methods.registry import BY_NAME, method_order

_PALETTE = plt.get_cmap("tab10").colors


def method_colors(methods: Iterable[str]) -> dict[str, tuple | str]:
    """A fixed colour per method name (:class:`optical_lab.methods.registry.MethodSpec`): OPTICAL is the
    same blue in every figure; methods the registry does not know get the next free palette colour."""
    methods = list(dict.fromkeys(methods))
    colors: dict[str, tuple | str] = {m: BY_NAME[m].color for m in methods if m in BY_NAME}
    rest = sorted(m for m in methods if m not in BY_NAME)
    for i, m in enumerate(rest):
        colors[m] = _PALETTE[(i + 2) % len(_PALETTE)]
    return colors


def order_methods(methods: Iterable[str]) -> list[str]:
    """Methods in registry order (:func:`optical_lab.methods.registry.method_order`)."""
    return method_order(methods)


def _new_ax(ax, figsize):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


# --------------------------------------------------------------------------- transport plans
def top_alignments(
    plan, row_tokens: Sequence[str], col_tokens: Sequence[str], k: int = 10
) -> list[tuple[str, str, float]]:
    """The ``k`` heaviest cells of ``plan`` as ``(row token, column token, mass)``, heaviest first.

    Rows are the teacher's (English) tokens, columns the student's (target-language) tokens, as
    :func:`optical_lab.reports.alignment.alignment_plan` returns them. Ties keep row-major order.
    """
    plan = np.asarray(plan, dtype=float)
    if plan.shape != (len(row_tokens), len(col_tokens)):
        raise ValueError(
            f"plan has shape {plan.shape} but there are {len(row_tokens)} row and {len(col_tokens)} column tokens"
        )
    k = max(0, min(int(k), plan.size))
    flat = plan.ravel()
    order = np.argsort(-flat, kind="stable")[:k]
    n_cols = plan.shape[1]
    return [(row_tokens[i // n_cols], col_tokens[i % n_cols], float(flat[i])) for i in order]


def alignments_table(
    alignments: Sequence[tuple[str, str, float]], row_name: str = "teacher token", col_name: str = "student token"
) -> pd.DataFrame:
    """:func:`top_alignments` as a small DataFrame (for display in notebooks and widgets)."""
    table = pd.DataFrame(alignments, columns=[row_name, col_name, "mass"])
    table.index = range(1, len(table) + 1)
    return table


def plot_transport_plan(
    plan,
    row_tokens: Sequence[str],
    col_tokens: Sequence[str],
    ax=None,
    title: str | None = "transport plan",
    row_label: str = "teacher tokens (English)",
    col_label: str = "student tokens",
    cmap: str = "magma_r",
    colorbar: bool = True,
    vmax: float | None = None,
    max_label_chars: int = 14,
):
    """Heatmap of a token-level transport plan with the tokens as tick labels.

    Cell ``(i, j)`` is the mass moved from teacher token ``i`` to student token ``j``; a sharp plan
    (small epsilon) lights a few cells per row, a diffuse one spreads every row evenly.
    """
    plan = np.asarray(plan, dtype=float)
    if plan.shape != (len(row_tokens), len(col_tokens)):
        raise ValueError(
            f"plan has shape {plan.shape} but there are {len(row_tokens)} row and {len(col_tokens)} column tokens"
        )
    n, m = plan.shape
    ax = _new_ax(ax, (min(2.0 + 0.32 * m, 14), min(1.6 + 0.3 * n, 12)))
    image = ax.imshow(
        plan,
        cmap=cmap,
        aspect="auto",
        vmin=0.0,
        vmax=vmax if vmax is not None else (plan.max() or 1.0),
        interpolation="nearest",
    )

    def short(tokens):
        return [t if len(t) <= max_label_chars else t[: max_label_chars - 1] + "…" for t in tokens]

    ax.set_xticks(range(m), short(col_tokens), rotation=90, fontsize=8)
    ax.set_yticks(range(n), short(row_tokens), fontsize=8)
    ax.set_xlabel(col_label)
    ax.set_ylabel(row_label)
    if title:
        ax.set_title(title, fontsize=10)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="transported mass")
    return ax


# --------------------------------------------------------------------------- comparison results
def plot_language_comparison(
    table: pd.DataFrame,
    metric: str | None = None,
    ax=None,
    lang_col: str = "lang",
    method_col: str = "method",
    mean_col: str = "mean",
    ci_col: str = "ci95",
    methods: Sequence[str] | None = None,
    title: str | None = None,
    winners: Mapping[str, str] | None = None,
):
    """Grouped bars: one group per language, one bar per method, 95% CI as error bars.

    ``table`` is long format (one row per language x method) with a mean and a CI half-width.
    ``winners`` (lang -> method) marks each language's winner with a star above its bar.
    """
    if table.empty:
        raise ValueError("empty comparison table: nothing to plot")
    langs = list(dict.fromkeys(table[lang_col]))
    methods = list(methods) if methods is not None else order_methods(table[method_col])
    colors = method_colors(methods)
    ax = _new_ax(ax, (max(5.0, 1.1 * len(langs) * max(1, len(methods)) ** 0.5 + 2), 3.6))
    width = 0.8 / max(1, len(methods))
    indexed = table.set_index([lang_col, method_col])
    top = 0.0
    for j, method in enumerate(methods):
        xs, ys, errs = [], [], []
        for i, lang in enumerate(langs):
            if (lang, method) not in indexed.index:
                continue
            row = indexed.loc[(lang, method)]
            if isinstance(row, pd.DataFrame):
                row = row.iloc[0]
            err = float(row[ci_col]) if ci_col in row and pd.notna(row[ci_col]) else 0.0
            xs.append(i - 0.4 + width * (j + 0.5))
            ys.append(float(row[mean_col]))
            errs.append(err)
            top = max(top, ys[-1] + err)
        ax.bar(
            xs,
            ys,
            width=width * 0.92,
            yerr=errs,
            capsize=2,
            color=colors[method],
            label=method,
            error_kw={"elinewidth": 0.8, "ecolor": "0.2"},
        )
        if winners:
            for x, y, e, lang in zip(xs, ys, errs, [lg for lg in langs if (lg, method) in indexed.index]):
                if winners.get(lang) == method:
                    ax.text(x, y + e, "★", ha="center", va="bottom", fontsize=9, color="0.15")
    ax.set_xticks(range(len(langs)), langs)
    ax.set_xlim(-0.6, len(langs) - 0.4)
    ax.set_ylim(0, max(top * 1.12, 0.05))
    ax.set_ylabel(metric or mean_col)
    ax.set_xlabel("language")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=min(len(methods), 4), loc="upper left", bbox_to_anchor=(0, -0.18), frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def plot_size_curve(
    curve: pd.DataFrame,
    ax=None,
    size_col: str = "bitext_size",
    mean_col: str = "mean",
    ci_col: str | None = "ci95",
    method_col: str = "method",
    lang_col: str | None = "lang",
    metric: str | None = None,
    logx: bool = True,
    title: str | None = None,
):
    """Metric against training-bitext size, one line per method (per language when several), CI bands."""
    if curve.empty:
        raise ValueError("empty size-curve table: nothing to plot")
    methods = order_methods(curve[method_col])
    colors = method_colors(methods)
    langs = list(dict.fromkeys(curve[lang_col])) if lang_col and lang_col in curve else [None]
    styles = ["-", "--", ":", "-."]
    ax = _new_ax(ax, (5.2, 3.4))
    for li, lang in enumerate(langs):
        part = curve if lang is None else curve[curve[lang_col] == lang]
        for method in methods:
            rows = part[part[method_col] == method].sort_values(size_col)
            if rows.empty:
                continue
            x, y = rows[size_col].to_numpy(float), rows[mean_col].to_numpy(float)
            label = method if len(langs) == 1 else f"{method} ({lang})"
            ax.plot(x, y, styles[li % len(styles)], marker="o", ms=3.5, color=colors[method], label=label)
            if ci_col and ci_col in rows:
                err = rows[ci_col].fillna(0).to_numpy(float)
                ax.fill_between(x, y - err, y + err, color=colors[method], alpha=0.15, lw=0)
    if logx:
        ax.set_xscale("log")
        sizes = sorted({float(v) for v in curve[size_col] if float(v) > 0})
        ax.set_xticks(sizes, [f"{v:,.0f}" for v in sizes])  # the sizes that were run, in plain numbers
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("training bitext (sentence pairs)")
    ax.set_ylabel(metric or mean_col)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def plot_loss_curve(
    history,
    ax=None,
    step_col: str = "step",
    loss_cols: Sequence[str] | None = None,
    smooth: int = 1,
    title: str | None = "training loss",
    logy: bool = False,
    dev=None,
    dev_col: str = "dev_mrr",
):
    """Loss against step.

    ``history`` is a DataFrame or a list of dicts (one per logged step), e.g. the trainer's
    ``train_log.jsonl``; rows whose ``event`` is not "train" are ignored. Every numeric column
    whose name contains "loss" is drawn unless ``loss_cols`` is given. ``dev`` (rows with
    ``step`` and ``dev_col``; default: the log's "dev" events) is drawn on a second axis.
    """
    frame = history if isinstance(history, pd.DataFrame) else pd.DataFrame(list(history))
    if "event" in frame:
        if dev is None and (frame["event"] == "dev").any():
            dev = frame[frame["event"] == "dev"]
        frame = frame[frame["event"] == "train"]
    if frame.empty:
        raise ValueError("empty training history: nothing to plot")
    if step_col not in frame:
        frame = frame.assign(**{step_col: np.arange(1, len(frame) + 1)})
    if loss_cols is None:
        loss_cols = [c for c in frame.columns if "loss" in str(c).lower() and pd.api.types.is_numeric_dtype(frame[c])]
    ax = _new_ax(ax, (5.0, 3.0))
    colors = ["C0", "C2", "C4", "C5", "C6", "C9"]  # C1 (orange) is the dev curve's
    for i, col in enumerate(loss_cols):
        series = frame[col].astype(float)
        if smooth > 1:
            ax.plot(frame[step_col], series, color="0.75", lw=0.8)
            series = series.rolling(smooth, min_periods=1).mean()
        ax.plot(frame[step_col], series, lw=1.8 if i == 0 else 1.2, label=str(col), color=colors[i % len(colors)])
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(step_col)
    ax.set_ylabel("loss", color="C0")
    ax.grid(alpha=0.3)
    if len(loss_cols) > 1:
        ax.legend(fontsize=8, frameon=False)
    if dev is not None and len(dev):
        dev = dev if isinstance(dev, pd.DataFrame) else pd.DataFrame(list(dev))
        twin = ax.twinx()
        twin.plot(dev[step_col], dev[dev_col].astype(float), "s--", color="C1", ms=4, lw=1)
        twin.set_ylabel(f"dev {dev_col.replace('dev_', '').upper()}", color="C1")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


# --------------------------------------------------------------------------- saving
def save_figure(
    fig, out_dir: str | Path, name: str, formats: Sequence[str] = ("png", "svg"), dpi: int = 110
) -> list[Path]:
    """Write ``fig`` as ``out_dir/name.<fmt>`` for every format; returns the paths written.

    SVGs get a fixed hash salt and no date, so regenerating an unchanged figure gives the same file.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = out_dir / f"{name}.{fmt}"
        metadata = {"Date": None} if fmt == "svg" else ({"Software": None} if fmt == "png" else None)
        with plt.rc_context({"svg.hashsalt": "optical_lab", "svg.fonttype": "none"}):
            atomic_write(
                path,
                lambda handle: fig.savefig(handle, format=fmt, dpi=dpi, metadata=metadata, bbox_inches="tight"),  # noqa: B023 (called at once)
            )  # a link at path is replaced
        paths.append(path)
    return paths


def grid(n: int, ncols: int = 2, panel: tuple[float, float] = (5.0, 4.0)):
    """A figure with ``n`` panels in ``ncols`` columns; unused axes are hidden."""
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows), layout="constrained", squeeze=False
    )
    flat = axes.ravel()
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, list(flat[:n])
