"""`optical-lab figures [--results DIR] [--out figures/]`: regenerate every figure from saved results.

Reads a comparison folder written by ``optical-lab compare`` (default ``results/v2-minilm``, figures into
``figures/v2-minilm``): ``summary.csv`` / ``significance.csv`` / ``winners.csv``, ``size_curve/size_curve.csv``
when the size curve was run, and the per-query results and training logs under ``runs/``. Every statistic is
the core's (:mod:`optical_lab.evaluation.stats`), and ``answer.md`` is the folder's protocol-v2 answer when it
has an ``analysis.json`` (the same text as its results document). Writes PNG and SVG into ``--out``:

=============================  ==================================================================
``forest_plot``                OPTICAL − each augmentation arm per language (and pooled), 95% CI,
                               per-seed points, ±MDE band (:mod:`.evidence`)
``dev_curves``                 dev-bitext MRR per step, per arm and seed (still improving at the end?)
``ot_diagnostics``             token cosine, plan entropy, unconverged OT problems per step for the
                               plain / centred / both costs (from the folder's dev sweep)
``comparison_mrr10``           known-item CLIR MRR@10 per language x method, 95% CI, ★ = winner
``comparison_acc1``            sentence retrieval acc@1 per language x method, 95% CI
``size_curve``                 MRR@10 against training-bitext size (optical vs augmentation)
``loss_curves``                training loss (and dev MRR) of every trained method, one language
``transport_plan_epsilon``     a real held-out sentence pair's plan at a small and a large epsilon
``transport_plan_before_after`` the same pair before (teacher copy) and after OPTICAL distillation
=============================  ==================================================================

The transport-plan figures need the teacher model (a protocol-v2 folder skips them: its students train on
MAFAND-MT bitext, which the rebuilding below does not reproduce); "after" needs the distilled student, which the
comparison does not keep (weights never enter the repository): it is rebuilt with the
comparison's own saved training config, fold and pair subsample (cached in the user cache, so
only the first call trains; ``--no-train`` skips that figure). The rebuilt student's dev MRR is
checked against the comparison cell's.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from ..data.errors import DataError
from ..data.languages import HIGH_RESOURCE
from ..experiments.records import DONE_NAME, FolderLock
from ..io import read_jsonl, stored_exists, write_json, write_text
from ..models.registry import DEFAULT_MODEL
from .answer import SummaryTables, answer_markdown, headlines
from .plots import grid, order_methods, plot_language_comparison, plot_loss_curve, plot_size_curve, save_figure

DEFAULT_RESULTS = "results/v2-minilm"
DEFAULT_OUT = "figures/v2-minilm"
V1_RESULTS = "results/compare-minilm"  # notebook 03's comparison tables
EPSILONS = (0.02, 0.5)  # sharp vs diffuse (training uses 0.05)
# the names the committed figures have; another task's headline gets comparison_<sub-task>_<metric>
FILE_NAMES = {
    ("clir", "MRR@10"): "comparison_mrr10",
    ("sentence", "acc@1"): "comparison_acc1",
    ("qald", "F1"): "comparison_qald_f1",
}


def figure_name(task: str, metric: str) -> str | None:
    """File name of the comparison chart of (sub-task, metric): one per registered task's headline."""
    if (task, metric) in FILE_NAMES:
        return FILE_NAMES[(task, metric)]
    if (task, metric) in headlines():
        return f"comparison_{task}_{''.join(ch for ch in metric.lower() if ch.isalnum())}"
    return None


@dataclass
class Written:
    name: str
    paths: list[Path]
    caption: str


# ------------------------------------------------------------------ figures from tables
def comparison_figure(tables: SummaryTables, task: str, metric: str):
    """Grouped bars with CI error bars for one metric; winners starred."""
    table = tables.table(task, metric)
    winners = None
    if tables.winners is not None and not tables.winners.empty:
        w = tables.winners[(tables.winners.task == task) & (tables.winners.metric == metric)]
        winners = dict(zip(w.lang, w.winner))
    n_groups = table.lang.nunique() * max(1, table.method.nunique())
    fig, ax = plt.subplots(figsize=(min(3 + 0.3 * n_groups, 14), 4.0), layout="constrained")
    plot_language_comparison(
        table,
        metric=metric,
        ax=ax,
        ci_col="ci",
        winners=winners,
        title=f"{metric} ({task}) per language, mean ± 95% CI over queries; ★ best method",
    )
    return fig


def size_curve_figure(curve: pd.DataFrame, task: str = "clir", metric: str = "MRR@10"):
    """One panel per language: metric against the number of training pairs, zero-shot at 0."""
    part = curve[(curve.task == task) & (curve.metric == metric)].copy()
    if part.empty:
        raise ValueError(f"no {task}:{metric} rows in the size curve")
    part["pairs"] = part["train_pairs"].astype(float)
    langs = list(dict.fromkeys(part.lang))
    fig, axes = grid(len(langs), ncols=min(3, len(langs)), panel=(4.2, 3.2))
    for ax, lang in zip(axes, langs):
        rows = part[part.lang == lang]
        zero = rows[rows.method == "zero-shot"]
        trained = rows[rows.method != "zero-shot"]
        plot_size_curve(
            trained, ax=ax, size_col="pairs", ci_col="ci", lang_col=None, metric=metric, logx=True, title=f"{lang}"
        )
        if not zero.empty:
            ax.axhline(float(zero["mean"].iloc[0]), color="0.4", ls=":", lw=1, label="zero-shot")
        ax.legend(fontsize=7, frameon=True, framealpha=0.85, edgecolor="none")
    fig.suptitle(f"{metric} ({task}) against training bitext size (same step budget), mean ± 95% CI", fontsize=10)
    return fig


def loss_curves_figure(results: Path, lang: str, fold: int = 0, seed: int = 0):
    """Training loss of every trained method of ``lang`` (one panel each: the objectives differ in scale)."""
    logs = {}
    runs = results / "runs" / lang
    for method in order_methods(p.name for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []:
        path = runs / method / f"fold{fold}-seed{seed}" / "train_log.jsonl"
        if stored_exists(path):
            rows = read_jsonl(path)
            if any(r.get("event") == "train" for r in rows):
                logs[method] = pd.DataFrame(rows)
    if not logs:
        raise FileNotFoundError(f"no training logs under {runs}")
    fig, axes = grid(len(logs), ncols=min(3, len(logs)), panel=(3.8, 2.8))
    for ax, (method, log) in zip(axes, logs.items()):
        plot_loss_curve(log, ax=ax, loss_cols=["loss"], title=method)
    fig.suptitle(f"training loss (blue) and dev sentence-retrieval MRR (orange), {lang}, fold {fold}", fontsize=10)
    return fig


# ------------------------------------------------------------------ transport plans
def plan_pair(teacher, corpus, eval_docs: set[str]) -> int:
    """A short held-out sentence pair (first legible one of the fold's evaluation documents)."""
    from .notebook import short_pairs

    lang = corpus.lang
    candidates = short_pairs(corpus, eval_docs, teacher.tokenizer) or short_pairs(
        corpus, eval_docs, teacher.tokenizer, 4, 24, 40, min_word_share=0.0
    )
    if not candidates:
        raise ValueError(f"no short sentence pair in the evaluation documents of {lang}")
    return candidates[0]


def epsilon_figure(
    teacher, student, english: str, foreign: str, lang: str, epsilons=EPSILONS, stage: str = "untrained"
):
    from .alignment import plans_at, token_view

    rows, cols = token_view(teacher, english), token_view(student, foreign)
    plans = plans_at(rows, cols, epsilons)
    n, m = len(rows), len(cols)
    fig, axes = plt.subplots(
        1, len(plans), figsize=(len(plans) * min(2.6 + 0.3 * m, 8), min(2.2 + 0.3 * n, 7)), layout="constrained"
    )
    vmax = max(a.plan.max() for a in plans)  # one colour scale: a diffuse plan looks pale everywhere
    for ax, a in zip(axes, plans):
        a.plot(
            ax=ax,
            col_label=f"{stage} student tokens ({lang})",
            colorbar=a is plans[-1],
            vmax=vmax,
            title=f"ε = {a.epsilon:g}: {'sharp' if a.epsilon == min(epsilons) else 'diffuse'} "
            f"(sharpness {a.sharpness():.2f})",
        )
    fig.suptitle("Entropic OT plan between teacher (English) and student tokens", fontsize=10)
    return fig, plans


def before_after_figure(
    teacher, student, english: str, foreign: str, lang: str, epsilon: float | None = None, n_iters: int | None = None
):
    from .alignment import DEFAULT_EPSILON, DEFAULT_ITERS, plan_from_views, token_view

    epsilon = DEFAULT_EPSILON if epsilon is None else epsilon
    n_iters = DEFAULT_ITERS if n_iters is None else n_iters

    rows = token_view(teacher, english)
    before = plan_from_views(rows, token_view(teacher, foreign), epsilon, n_iters)
    after = plan_from_views(rows, token_view(student, foreign), epsilon, n_iters)
    n, m = before.shape
    vmax = max(before.plan.max(), after.plan.max())
    fig, axes = plt.subplots(1, 2, figsize=(2 * min(2.6 + 0.3 * m, 8), min(2.2 + 0.3 * n, 7)), layout="constrained")
    for ax, a, stage in zip(axes, (before, after), ("before", "after")):
        a.plot(
            ax=ax,
            col_label=f"{stage}: student tokens ({lang})",
            colorbar=stage == "after",
            vmax=vmax,
            title=f"{stage} distillation: ⟨P,C⟩ = {a.transport_cost:.3f}",
        )
    fig.suptitle(f"OPTICAL transport plan on a held-out {lang} pair (ε = {epsilon:g})", fontsize=10)
    return fig, (before, after)


def _cell_config(results: Path):
    """(training config, n_folds, model) of a comparison, from its config.json."""
    from ..methods import TrainConfig

    path = results / "config.json"
    if not path.exists():
        return None, 2, DEFAULT_MODEL
    plan = json.loads(path.read_text(encoding="utf-8"))
    return (
        TrainConfig.from_dict(plan.get("train", {})).replace(progress=False),
        int(plan.get("folds", 2)),
        plan.get("model", DEFAULT_MODEL),
    )


# ------------------------------------------------------------------ where the results are
def comparison_folder(
    preferred: str | Path | None = None, fallback: str | Path | None = None, small: bool | None = None, log=print
) -> Path:
    """The committed comparison (``results/compare-minilm``) when it holds a summary; otherwise run a
    small real comparison (Hausa; zero-shot, translate-train, optical; one fold) into the git-ignored
    ``runs/compare-small`` and return that. Finished cells are reused on the next call."""
    from ..data.paths import REPO_ROOT

    preferred = Path(preferred) if preferred is not None else REPO_ROOT / V1_RESULTS
    if (preferred / "summary.csv").exists():
        return preferred
    from ..experiments.plan import ComparePlan
    from ..experiments.runner import Runner
    from ..experiments.students import small_mode
    from ..methods import preset

    small = small_mode() if small is None else small
    fallback = (
        Path(fallback) if fallback is not None else REPO_ROOT / "runs" / ("compare-small" if small else "compare-demo")
    )
    log(f"no comparison in {preferred}: running a {'small' if small else 'demo-size'} one into {fallback}")
    plan = ComparePlan(
        langs=["hau"] if small else ["hau", "swa"],
        methods=["zero-shot", "translate-train", "optical"]
        if small
        else ["zero-shot", "translate-train", "code-switch", "optical"],
        folds=1,
        preset="tiny" if small else "default",
        train=preset("tiny" if small else "default"),
    )
    Runner(plan, fallback, progress=False).run()
    return fallback


# ------------------------------------------------------------------ the answer and the core's figures
def write_answer(results: Path, out: Path, tables: SummaryTables) -> None:
    """``answer.md``: the folder's protocol-v2 answer (what its results document says) when it has an
    ``analysis.json``, else the per-language answer of its summary tables."""
    from .v2 import v2_answer_markdown

    if (results / "analysis.json").exists():
        body = v2_answer_markdown(results).replace("\n## ", "\n### ").replace("## ", "### ", 1) + "\n"
    else:
        body = answer_markdown(tables)
    out.mkdir(parents=True, exist_ok=True)
    write_text(
        "## Does OT distillation beat data augmentation?\n\n"
        f"Generated by `optical-lab figures` from `{results}`.\n\n" + body,
        out / "answer.md",
    )


def evidence_figures(results: Path, tables: SummaryTables | None, save, log) -> None:
    """The forest plot, the dev curves and (with a dev sweep) the OT diagnostics (:mod:`.evidence`)."""
    from ..evaluation.pooled import Endpoint
    from .evidence import dev_curves_figure, diagnostics_figure, forest_figure

    if (results / "runs").is_dir() and (tables is not None or (results / "analysis.json").exists()):
        headline = Endpoint(*tables.primary()) if tables is not None else None
        try:
            fig, _ = forest_figure(results, endpoint=headline)
            save(
                fig,
                "forest_plot",
                "OPTICAL − each augmentation arm per language and pooled: 95% CI (line), "
                "each seed's difference (dots), ±MDE (grey band; an effect inside it can hide).",
            )
        except (FileNotFoundError, ValueError, KeyError) as exc:
            log(f"skip forest plot: {exc}")
    try:
        save(
            dev_curves_figure(results),
            "dev_curves",
            "Dev-bitext MRR per training step and arm (mean over seeds; "
            "thin: one seed): is a student still improving at its last step?",
        )
    except FileNotFoundError as exc:
        log(f"skip dev curves: {exc}")
    chosen = results / "sweep" / "chosen.json"
    if chosen.exists():
        optical = json.loads(chosen.read_text(encoding="utf-8")).get("optical", {})
        settings = [
            f"lr{optical.get('lr', 0):g}-ot_variant={v}-epsilon={optical.get('epsilon', 0):g}"
            for v in ("plain", "centred", "both")
        ]
        try:
            save(
                diagnostics_figure(results / "sweep", settings),
                "ot_diagnostics",
                f"OPTICAL's OT diagnostics per step for the plain, centred and both costs ({', '.join(settings)}).",
            )
        except FileNotFoundError as exc:
            log(f"skip OT diagnostics: {exc}")


# ------------------------------------------------------------------ the command
def pick_lang(tables: SummaryTables | None, wanted: str | None) -> str:
    if wanted:
        return wanted
    langs = tables.langs() if tables is not None else []
    for lang in ("hau", "swa", *langs):
        if lang in langs and lang not in HIGH_RESOURCE:
            return lang
    return langs[0] if langs else "hau"


def generate(
    results: str | Path = DEFAULT_RESULTS,
    out: str | Path = DEFAULT_OUT,
    lang: str | None = None,
    train: bool = True,
    plans: bool = True,
    formats=("png", "svg"),
    dpi: int = 110,
    teacher=None,
    log=print,
) -> list[Written]:
    """Every figure that the saved results allow; returns what was written (name, paths, caption)."""
    results, out = Path(results), Path(out)
    if not results.is_dir():
        raise DataError(
            f"no results folder {results}",
            fix=f"run `optical-lab compare --out {results}` first (or pass --results DIR)",
        )
    written: list[Written] = []

    def save(fig, name: str, caption: str) -> None:
        paths = save_figure(fig, out, name, formats, dpi)
        plt.close(fig)
        written.append(Written(name, paths, caption))
        log(f"wrote {', '.join(str(p) for p in paths)}")

    tables = None
    if (results / "summary.csv").exists():
        tables = SummaryTables.read(results)
        for task, metric in dict.fromkeys(zip(tables.means.task, tables.means.metric)):
            name = figure_name(task, metric)
            if name is None:
                continue
            save(
                comparison_figure(tables, task, metric),
                name,
                f"{metric} ({task}) per language and method, mean ± 95% CI over queries (folds pooled); "
                "★ = best method.",
            )
        write_answer(results, out, tables)
        log(f"wrote {out / 'answer.md'}")
    else:
        log(f"skip comparison charts: no {results / 'summary.csv'}")
    evidence_figures(results, tables, save, log)

    curve_csv = results / "size_curve" / "size_curve.csv"
    if curve_csv.exists():
        curve = pd.read_csv(curve_csv)
        save(
            size_curve_figure(curve),
            "size_curve",
            "MRR@10 against training-bitext size, OPTICAL vs the augmentation baseline (same step budget); "
            "dotted: zero-shot.",
        )
    else:
        log(f"skip size curve: no {curve_csv} (run `optical-lab compare --size-curve 100,300,all ...`)")

    lang = pick_lang(tables, lang)
    try:
        save(
            loss_curves_figure(results, lang),
            "loss_curves",
            f"Training loss per method ({lang}, fold 0) with the dev MRR used for model selection.",
        )
    except FileNotFoundError as exc:
        log(f"skip loss curves: {exc}")

    if plans and (results / "analysis.json").exists():
        log("skip transport plans: a protocol-v2 folder's students (MAFAND-MT bitext) are not rebuilt here")
    elif plans:
        from ..experiments.students import distilled_student
        from ..models.encoder import Encoder
        from ..tasks.registry import get_task

        config, n_folds, model = _cell_config(results)
        teacher = teacher or Encoder.load(model)
        task = get_task("ntrex")
        fold = task.folds(lang, n_folds, seed=0)[0]
        corpus = task.corpus(lang)
        line = plan_pair(teacher, corpus, fold.eval_key)
        english, foreign = corpus.english[line], corpus.target[line]
        fig, _ = epsilon_figure(teacher, teacher, english, foreign, lang)
        save(
            fig,
            "transport_plan_epsilon",
            f"NTREX line {line + 1} ({lang}, held out): plan at ε={EPSILONS[0]} (sharp) and ε={EPSILONS[1]} (diffuse), "
            "untrained student.",
        )
        if train and config is not None:
            run = distilled_student(teacher, lang, "optical", config, fold=0, n_folds=n_folds)
            cell = results / "runs" / lang / "optical" / "fold0-seed0" / "done.json"
            if cell.exists():
                saved = json.loads(cell.read_text()).get("best_dev_mrr")
                rebuilt = run.result.get("best_dev_mrr")
                same = saved is not None and rebuilt is not None and abs(saved - rebuilt) < 1e-3
                log(
                    f"rebuilt student: dev MRR {rebuilt:.4f} vs comparison cell {saved:.4f}"
                    + ("" if same else "  (differs: another machine/precision; the figure shows the rebuilt student)")
                )
            fig, _ = before_after_figure(teacher, run.student, english, foreign, lang, epsilon=config.sinkhorn.epsilon)
            save(
                fig,
                "transport_plan_before_after",
                f"NTREX line {line + 1} ({lang}, held out): plan before and after OPTICAL distillation "
                f"(ε={config.sinkhorn.epsilon:g}, student retrained with the comparison's config, fold 0, "
                f"dev-selected step {run.result.get('best_step')}).",
            )
        elif train:
            log(f"skip before/after plan: no {results / 'config.json'} with the training config")
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default=DEFAULT_RESULTS, help="comparison folder written by `optical-lab compare`")
    parser.add_argument("--out", default=DEFAULT_OUT, help="where PNG/SVG files go")
    parser.add_argument("--lang", default=None, help="language of the loss curves and transport plans (default: hau)")
    parser.add_argument("--formats", default="png,svg", help="comma-separated image formats to write")
    parser.add_argument("--dpi", type=int, default=110, help="resolution of the raster images")
    parser.add_argument(
        "--no-train",
        action="store_true",
        help="skip the before/after plan (it retrains the comparison's OPTICAL student once, then caches it)",
    )
    parser.add_argument("--no-plans", action="store_true", help="skip the transport-plan figures (no model needed)")


def main(args: argparse.Namespace) -> None:
    """Every figure, under the ``--out`` folder's lock (two runs never interleave their files); ``done.json``
    (the figures written and their sources, no time: regenerating unchanged figures changes no file) last."""
    with FolderLock(args.out):
        written = generate(
            args.results,
            args.out,
            args.lang,
            train=not args.no_train,
            plans=not args.no_plans,
            formats=tuple(f.strip() for f in args.formats.split(",") if f.strip()),
            dpi=args.dpi,
        )
        write_json({"results": str(args.results), "figures": [w.name for w in written]}, Path(args.out) / DONE_NAME)
    print(f"{len(written)} figure(s) in {args.out}")
