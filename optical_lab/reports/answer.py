"""The research question, answered from the numbers: is OT distillation (OPTICAL) better than data
augmentation for cross-lingual retrieval in each language?

Everything here is generated from a comparison's summary tables (``optical-lab compare`` writes
``summary.csv``, ``significance.csv`` and ``winners.csv``, see :mod:`optical_lab.experiments.summary`);
no sentence is written by hand, so the text cannot disagree with the table. Per language:

    hau: OPTICAL MRR@10 0.520 ± 0.041 vs translate-train 0.550 ± 0.038 — translate-train wins,
    not significant (Holm p=0.31). Zero-shot 0.301.

"The augmentation rival" is the best-scoring augmentation method of that language
(the methods flagged ``augmentation`` in :mod:`optical_lab.methods.registry`); when another
method (e.g. ``optical+aug``) beats both, the sentence adds it. The p-value is the Holm-adjusted
paired randomization test against OPTICAL over the methods of that language, as computed by the
comparison harness. Ties and significance follow :mod:`optical_lab.evaluation.verdict`, the rule
the summary tables use too. An arm whose result is an oracle's (``MethodSpec.oracle``: translate-train trains
on human translations) is named "(oracle)".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..data.languages import HIGH_RESOURCE, NAMES
from ..evaluation.verdict import ALPHA, DIFFERENCE, is_tie
from ..methods.registry import AUGMENTATIONS, REFERENCE, method_spec
from ..methods.registry import METHODS as METHOD_NAMES
from ..tasks.registry import TASKS

AUGMENTATION_METHODS = AUGMENTATIONS


@dataclass
class SummaryTables:
    """The three tidy tables of a comparison (the CSVs ``optical-lab compare`` writes)."""

    means: pd.DataFrame  # lang, task, metric, method, mean, ci, ci_low, ci_high, n
    tests: pd.DataFrame  # lang, task, metric, reference, method, reference_minus_method, ci, p, p_holm, ...
    winners: pd.DataFrame | None = None  # lang, task, metric, winner, ..., verdict
    folder: Path | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, folder: str | Path) -> "SummaryTables":
        folder = Path(folder)
        if not (folder / "summary.csv").exists():
            raise FileNotFoundError(f"no summary.csv in {folder}: run `optical-lab compare --out {folder}` first")
        means = pd.read_csv(folder / "summary.csv")
        tests = (
            pd.read_csv(folder / "significance.csv")
            if (folder / "significance.csv").exists()
            else pd.DataFrame(
                columns=["lang", "task", "metric", "reference", "method", DIFFERENCE, "p", "p_holm", "significant"]
            )
        )
        winners = pd.read_csv(folder / "winners.csv") if (folder / "winners.csv").exists() else None
        return cls(means, tests, winners, folder)

    @classmethod
    def from_summary(cls, summary) -> "SummaryTables":
        """From an in-memory :class:`optical_lab.experiments.summary.ComparisonSummary`."""
        return cls(summary.means, summary.tests, summary.winners, None, list(summary.notes))

    def primary(self) -> tuple[str, str]:
        """The headline (sub-task, metric): the first registered task's headline present (known-item
        CLIR MRR@10 for NTREX), else the first reported."""
        pairs = list(dict.fromkeys(zip(self.means["task"], self.means["metric"])))
        for wanted in headlines():
            if wanted in pairs:
                return wanted
        if not pairs:
            raise ValueError("empty summary table")
        return pairs[0]

    def langs(self) -> list[str]:
        return list(dict.fromkeys(self.means["lang"]))

    def table(self, task: str, metric: str) -> pd.DataFrame:
        """lang, method, mean, ci (+ p_holm / significant vs optical) for one metric; plot-ready."""
        part = self.means[(self.means.task == task) & (self.means.metric == metric)].copy()
        tests = self.tests[(self.tests.task == task) & (self.tests.metric == metric)]
        columns = ["lang", "method", DIFFERENCE, "p_holm", "significant"]
        merged = part.merge(tests[columns], on=["lang", "method"], how="left")
        return merged.reset_index(drop=True)


def headlines() -> list[tuple[str, str]]:
    """(main sub-task, primary metric) of every registered task, in registry order."""
    return [(next(iter(cls.reported)), cls.primary) for cls in TASKS.values()]


@dataclass
class LanguageAnswer:
    """The per-language verdict, as numbers and as the generated sentence."""

    lang: str
    task: str
    metric: str
    optical: float | None
    optical_ci: float | None
    rival: str | None  # best augmentation method
    rival_mean: float | None
    rival_ci: float | None
    p_holm: float | None  # rival vs optical, Holm-adjusted
    significant: bool
    outcome: str  # "optical wins" | "augmentation wins" | "tie" | "no comparison"
    best: str | None = None  # best method overall
    best_mean: float | None = None
    best_p_holm: float | None = None
    zero_shot: float | None = None
    text: str = ""

    @property
    def optical_loses(self) -> bool:
        return self.outcome == "augmentation wins"


def _fmt_p(p: float | None) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "no test"
    return f"Holm p={p:.2g}" if p >= 0.001 else "Holm p<0.001"


def _num(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def answer_language(
    tables: SummaryTables,
    lang: str,
    task: str | None = None,
    metric: str | None = None,
    reference: str = REFERENCE,
    rivals: Sequence[str] = AUGMENTATION_METHODS,
    alpha: float = ALPHA,
    digits: int = 3,
) -> LanguageAnswer:
    """Compare ``reference`` with the best of ``rivals`` in one language and write the sentence."""
    if task is None or metric is None:
        task, metric = tables.primary()
    part = tables.means[(tables.means.lang == lang) & (tables.means.task == task) & (tables.means.metric == metric)]
    means = dict(zip(part.method, part["mean"].astype(float)))
    cis = dict(zip(part.method, part["ci"].astype(float)))
    tests = tables.tests[(tables.tests.lang == lang) & (tables.tests.task == task) & (tables.tests.metric == metric)]
    p_holm = {m: _num(p) for m, p in zip(tests.method, tests.p_holm)}
    f = f"{{:.{digits}f}}"
    label = f"{metric}" if (task, metric) in headlines() else f"{task} {metric}"
    name = method_spec(reference).display if reference in METHOD_NAMES else reference
    zero = means.get("zero-shot")
    ranked = sorted(means, key=lambda m: -means[m])
    best = ranked[0] if ranked else None
    ans = LanguageAnswer(
        lang,
        task,
        metric,
        means.get(reference),
        cis.get(reference),
        None,
        None,
        None,
        None,
        False,
        "no comparison",
        best,
        means.get(best) if best else None,
        p_holm.get(best),
        zero,
    )
    if reference not in means:
        ans.text = (
            f"{lang}: {name} was not run; best {label}: {best} {f.format(means[best])}."
            if best
            else f"{lang}: no results."
        )
        return ans
    present = [m for m in rivals if m in means]
    opt_text = f"{name} {label} {f.format(means[reference])} ± {f.format(cis[reference])}"
    if not present:
        ans.text = f"{lang}: {opt_text}; no augmentation method was run, so the question is open here."
        return ans
    rival = max(present, key=lambda m: means[m])  # ties keep the order of ``rivals``
    ans.rival, ans.rival_mean, ans.rival_ci = rival, means[rival], cis[rival]
    ans.p_holm = p_holm.get(rival)
    ans.significant = ans.p_holm is not None and ans.p_holm < alpha
    diff = means[rival] - means[reference]
    sig = "significant" if ans.significant else "not significant"
    oracle = " (oracle)" if rival in METHOD_NAMES and method_spec(rival).oracle else ""
    head = f"{lang}: {opt_text} vs {rival}{oracle} {f.format(means[rival])} ± {f.format(cis[rival])}"
    if is_tie(means[rival], means[reference]):
        ans.outcome = "tie"
        verdict = f"tie ({_fmt_p(ans.p_holm)})"
    elif diff > 0:
        ans.outcome = "augmentation wins"
        verdict = f"{rival} wins by {f.format(diff)}, {name} loses, {sig} ({_fmt_p(ans.p_holm)})"
    else:
        ans.outcome = "optical wins"
        verdict = f"{name} wins by {f.format(-diff)}, {sig} ({_fmt_p(ans.p_holm)})"
    extras = []
    top = max(means[reference], means[rival])
    if best not in (reference, rival) and means[best] > top and not is_tie(means[best], top):
        sig_best = p_holm.get(best)
        how = "significantly" if sig_best is not None and sig_best < alpha else "not significantly"
        extras.append(f"best overall is {best} {f.format(means[best])} ({how} above {name}, {_fmt_p(sig_best)})")
    if zero is not None:
        extras.append(f"zero-shot {f.format(zero)}")
    tail = "; ".join(extras)
    ans.text = f"{head} — {verdict}." + (f" {tail[:1].upper()}{tail[1:]}." if extras else "")
    return ans


def answer_all(
    tables: SummaryTables,
    task: str | None = None,
    metric: str | None = None,
    langs: Sequence[str] | None = None,
    **kwargs,
) -> list[LanguageAnswer]:
    if task is None or metric is None:
        task, metric = tables.primary()
    return [answer_language(tables, lang, task, metric, **kwargs) for lang in (langs or tables.langs())]


def overall(answers: Sequence[LanguageAnswer]) -> str:
    """One paragraph over languages, low-resource first (high-resource ones are reference points)."""
    name = method_spec(REFERENCE).display
    compared = [a for a in answers if a.outcome != "no comparison"]
    if not compared:
        return (
            f"No language has both {name} and an augmentation method: "
            "the question cannot be answered from these results."
        )
    low = [a for a in compared if a.lang not in HIGH_RESOURCE]
    high = [a for a in compared if a.lang in HIGH_RESOURCE]

    def tally(group: Sequence[LanguageAnswer]) -> str:
        wins = [a for a in group if a.outcome == "optical wins"]
        losses = [a for a in group if a.outcome == "augmentation wins"]
        ties = [a for a in group if a.outcome == "tie"]
        parts = []
        if wins:
            s = sum(a.significant for a in wins)
            parts.append(f"{name} wins in {len(wins)} ({', '.join(a.lang for a in wins)}; {s} significant)")
        if losses:
            s = sum(a.significant for a in losses)
            parts.append(f"loses in {len(losses)} ({', '.join(a.lang for a in losses)}; {s} significant)")
        if ties:
            parts.append(f"ties in {len(ties)} ({', '.join(a.lang for a in ties)})")
        return "; ".join(parts)

    metric = compared[0].metric
    lines = []
    if low:
        lines.append(
            f"Low-resource languages ({len(low)}), {metric}, {name} vs the best augmentation method: {tally(low)}."
        )
    if high:
        lines.append(f"High-resource references ({len(high)}): {tally(high)}.")
    sig_win = [a for a in low if a.outcome == "optical wins" and a.significant]
    sig_loss = [a for a in low if a.outcome == "augmentation wins" and a.significant]
    if low:
        if sig_win and not sig_loss:
            verdict = (
                "OT distillation is significantly better than data augmentation in "
                f"{len(sig_win)} of {len(low)} low-resource languages and significantly worse in none."
            )
        elif sig_loss and not sig_win:
            verdict = (
                "Data augmentation is significantly better than OT distillation in "
                f"{len(sig_loss)} of {len(low)} low-resource languages and significantly worse in none."
            )
        elif sig_win and sig_loss:
            verdict = (
                f"Mixed: {name} is significantly better in {len(sig_win)} and significantly worse in "
                f"{len(sig_loss)} of {len(low)} low-resource languages."
            )
        else:
            verdict = (
                f"No significant difference between {name} and the best augmentation method in any of the "
                f"{len(low)} low-resource languages at this budget."
            )
        lines.append("Answer: " + verdict)
    return " ".join(lines)


def answer_markdown(
    tables: SummaryTables | str | Path,
    task: str | None = None,
    metric: str | None = None,
    langs: Sequence[str] | None = None,
) -> str:
    """Markdown: one bullet per language, then the overall answer."""
    if not isinstance(tables, SummaryTables):
        tables = SummaryTables.read(tables)
    answers = answer_all(tables, task, metric, langs)
    names = [f"- **{a.lang}** ({NAMES.get(a.lang, a.lang)}): {a.text.split(': ', 1)[1]}" for a in answers]
    return "\n".join(names) + "\n\n" + overall(answers) + "\n"


def answers_frame(answers: Sequence[LanguageAnswer]) -> pd.DataFrame:
    """The numbers behind the sentences, one row per language."""
    rows = [
        {
            "lang": a.lang,
            "optical": a.optical,
            "rival": a.rival,
            "rival_mean": a.rival_mean,
            "difference": None if a.optical is None or a.rival_mean is None else a.rival_mean - a.optical,
            "p_holm": a.p_holm,
            "significant": a.significant,
            "outcome": a.outcome,
            "best": a.best,
            "zero_shot": a.zero_shot,
        }
        for a in answers
    ]
    return pd.DataFrame(rows).set_index("lang")
