"""Which committed statements a re-generation changed, and why: ``results/<run>/corrections.md``, embedded by
the run's results document (``docs/results_*.md``).

``optical-lab report corrections results/v2-minilm --old OLD --why "..."`` compares the folder's
tables (``summary.csv``, ``significance.csv``, ``winners.csv``, ``analysis.json``) with the copies under ``OLD``
(e.g. ``git show``-ed from the commit before the change) and lists every statement that differs: query counts,
significance flips, winner verdicts, the registered answers and the per-language rules. Nothing is typed in:
the list is what the two sets of files say.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from ..evaluation.verdict import DIFFERENCE
from ..experiments.command import run_module
from ..experiments.results_doc import CORRECTIONS
from ..io import open_stored, read_json, stored_exists
from .v2 import OUTCOMES


def _read(folder: Path, name: str) -> pd.DataFrame | None:
    return pd.read_csv(open_stored(folder / name)) if stored_exists(folder / name) else None


def count_changes(old: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    """``n`` per (task, metric, method) that changed: e.g. seeds no longer counted as queries."""
    key = ["lang", "task", "metric", "method"]
    both = old.merge(new, on=key, suffixes=("_old", "_new"))
    changed = both[both.n_old != both.n_new]
    if changed.empty:
        return []
    pairs = changed.groupby(["task", "n_old", "n_new"]).size().reset_index()
    return [
        "`summary.csv` `n` (queries per language and arm): "
        + "; ".join(
            f"{r.task} {r.n_old} → {r.n_new}" for r in pairs.drop_duplicates(["task", "n_old", "n_new"]).itertuples()
        )
        + f" ({len(changed)} rows; the CIs widen accordingly)."
    ]


def significance_changes(old: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    """Tests whose significance (Holm) or sign changed; the old ``delta`` was method − reference."""
    key = ["lang", "task", "metric", "method"]
    old = old.assign(**{DIFFERENCE: -old["delta"]}) if "delta" in old else old
    both = old.merge(new, on=key, suffixes=("_old", "_new"))
    lines = []
    for r in both.itertuples():
        d_old, d_new = getattr(r, f"{DIFFERENCE}_old"), getattr(r, f"{DIFFERENCE}_new")
        if bool(r.significant_old) != bool(r.significant_new) or (d_old > 0) != (d_new > 0):
            lines.append(
                f"{r.lang} {r.task}:{r.metric}, optical − {r.method}: {d_old:+.3f} "
                f"(Holm p {r.p_holm_old:.3g}, "
                f"{'significant' if r.significant_old else 'not significant'}) → {d_new:+.3f} (Holm p "
                f"{r.p_holm_new:.3g}, {'significant' if r.significant_new else 'not significant'})"
            )
    head = f"`significance.csv`: {len(lines)} of {len(both)} tests changed significance or sign"
    return [head + (":" if lines else "."), *[f"  - {line}" for line in lines]]


def verdict_changes(old: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    """Winner verdicts that changed in words (a winner, a significance, a list of arms); those whose only change
    is the p-value they quote are counted, not listed."""
    key = ["lang", "task", "metric"]
    both = old.merge(new, on=key, suffixes=("_old", "_new"))
    changed = [r for r in both.itertuples() if r.verdict_old != r.verdict_new]
    worded = [r for r in changed if _words(r.verdict_old) != _words(r.verdict_new)]
    lines = [f'{r.lang} {r.task}:{r.metric}: "{r.verdict_old}" → "{r.verdict_new}"' for r in worded]
    head = (
        f"`winners.csv`: {len(worded)} of {len(both)} verdicts changed in words"
        f" ({len(changed) - len(worded)} more quote another Holm p only)"
    )
    return [head + (":" if lines else "."), *[f"  - {line}" for line in lines]]


def _words(verdict: str) -> str:
    """A verdict without the p-value it quotes."""
    return re.sub(r"Holm p=[0-9.e-]+", "Holm p", verdict)


def _outcome(text: str) -> str:
    """The registered rule's outcome named by an answer sentence (old or new wording)."""
    for key, words in OUTCOMES.items():
        if text.startswith(words.format(reference="optical")):
            return key
    return "none"  # the new wording of "none" starts with "neither" or "no detectable difference"


def analysis_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The registered answers and per-language rules of ``analysis.json``: outcome and wording."""
    lines = []
    for label, text in new.get("answers", {}).items():
        before = old.get("answers", {}).get(label)
        if before is None:
            continue
        same = _outcome(before) == _outcome(text)
        lines.append(
            f"`analysis.json` answer, {label}: outcome {'unchanged' if same else 'CHANGED'} "
            f'({_outcome(before)} → {_outcome(text)}); was "{before}", now "{text}".'
        )
    for label, rules in new.get("per_language", {}).items():
        for lang, rule in rules.items():
            before = old.get("per_language", {}).get(label, {}).get(lang)
            if before is not None and before != rule:
                lines.append(f'`analysis.json` per-language rule, {label} {lang}: "{before}" → "{rule}".')
    if "per_language" in new and "per_language" in old and not any("per-language rule" in line for line in lines):
        lines.append("`analysis.json` per-language rules: unchanged.")
    return lines


def corrections(folder: Path, old: Path, why: str, date: str) -> str:
    """The markdown list of changed statements of ``folder`` against the copies under ``old``."""
    lines = [f"## Corrections ({date})", "", why, ""]
    pairs = [(_read(old, n), _read(folder, n)) for n in ("summary.csv", "significance.csv", "winners.csv")]
    for (a, b), compare in zip(pairs, (count_changes, significance_changes, verdict_changes)):
        if a is not None and b is not None:
            lines += [f"- {line}" if not line.startswith("  ") else line for line in compare(a, b)]
    if (old / "analysis.json").exists() and (folder / "analysis.json").exists():
        lines += [
            f"- {line}"
            for line in analysis_changes(read_json(old / "analysis.json"), read_json(folder / "analysis.json"))
        ]
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``optical-lab report corrections``."""
    parser.add_argument("results", help="the re-generated results folder, e.g. results/v2-minilm")
    parser.add_argument("--old", required=True, help="a folder with the previous summary.csv etc.")
    parser.add_argument("--why", required=True, help="one paragraph: what changed in the method, and why")
    parser.add_argument("--date", required=True, help="the date of the change, as the document shows it")


def main(args: argparse.Namespace) -> None:
    """Write ``<results>/corrections.md`` and print it."""
    text = corrections(Path(args.results), Path(args.old), args.why, args.date)
    (Path(args.results) / CORRECTIONS).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    sys.exit(run_module(add_arguments, main, "python -m optical_lab.reports.corrections"))
