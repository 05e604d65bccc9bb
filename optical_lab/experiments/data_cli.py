"""`optical-lab data where|langs|fetch`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data.fetch import DEFAULT_NTREX_LANGS, DEFAULT_SIB_LANGS, fetch
from ..data.languages import datasets, known_languages, language_table
from ..data.paths import candidate_data_dirs, data_source


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=["where", "langs", "overlap", "fetch"],
        help="where: the data folder in use; langs: every language it knows and which datasets have it; "
        "overlap: evaluation texts found in each training bitext (leak survey); fetch: download the data",
    )
    parser.add_argument("--langs", default=",".join(DEFAULT_NTREX_LANGS), help="NTREX languages to fetch")
    parser.add_argument(
        "--sib-langs",
        default=",".join(DEFAULT_SIB_LANGS),
        help="SIB-200 languages to fetch (FLORES-200 codes like wol_Latn; English is always fetched)",
    )
    parser.add_argument(
        "--allow-unpinned",
        action="store_true",
        help="fetch: accept files without a SHA-256 pin (languages the mirror lacks) on a line-count check",
    )
    parser.add_argument("--dest", default=None, help="target folder (default: the user cache)")
    parser.add_argument("--force", action="store_true", help="download again even if present")
    parser.add_argument(
        "--all", action="store_true", help="langs: also list languages NTREX has upstream but this folder lacks"
    )
    parser.add_argument(
        "--tasks",
        default=None,
        help="overlap: survey these evaluation tasks' texts (e.g. afriqa-passages,afriqa-questions,"
        "tico-sentences) against every training and dev bitext of each language they have",
    )
    parser.add_argument("--out", default=None, help="overlap --tasks: also write the markdown table to this file")


def print_languages(show_all: bool = False) -> None:
    """A table: code, name, then how each dataset spells the language ('-' when it lacks it)."""
    source = data_source()
    rows = [r for r in language_table(source.path) if show_all or any(r[d] for d in datasets())]
    header = ["code", "name", *datasets()] + (["ntrex-128 upstream"] if show_all else [])
    table = [header] + [[r[h] or "-" for h in header] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print(f"languages in {source.path} ({source.how}):")
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    hidden = len(language_table(source.path)) - len(rows)
    if hidden:
        print(
            f"(+{hidden} more that NTREX-128 has upstream: `--all` lists them, `data fetch --langs CODE` fetches one)"
        )


def print_overlap_survey() -> None:
    """The leak survey of the data folder: each training bitext (MAFAND-MT train, NTREX) against
    every evaluation set of the same language (MAFAND dev/test, NTREX, SIB-200), both sides."""
    from ..data.leakage import measure_overlap
    from ..data.mafand import load_mafand
    from ..data.ntrex import load_ntrex
    from ..data.sib import load_sib

    known = known_languages()
    sib_english = (
        [t for split in load_sib("eng").splits.values() for t in split.texts]
        if "sib-200" in known["eng"].datasets
        else []
    )
    print("train | evaluation set | texts | exact | normalised | e.g.")

    def show(report) -> None:
        for s in report.sets:
            print(
                f"{report.train} | {s.name} | {s.n_texts} | {s.exact} | {s.normalised} | "
                f"{s.examples[0][:60] if s.examples else ''}"
            )

    for lang, entry in sorted(known.items()):
        if lang == "eng":
            continue
        evaluation: dict[str, list[str]] = {}
        if "ntrex-128" in entry.datasets:
            ntrex = load_ntrex(lang)
            evaluation.update({"ntrex.eng": ntrex.english, f"ntrex.{lang}": ntrex.target})
        if "sib-200" in entry.datasets and sib_english:
            evaluation.update(
                {
                    "sib.eng": sib_english,
                    f"sib.{lang}": [t for split in load_sib(lang).splits.values() for t in split.texts],
                }
            )
        if "mafand-mt" in entry.datasets:
            for split in ("dev", "test"):
                bitext = load_mafand(lang, split)
                evaluation.update({f"mafand-{split}.eng": bitext.english, f"mafand-{split}.{lang}": bitext.foreign})
            show(measure_overlap(load_mafand(lang, "train"), evaluation, f"mafand-train.{lang}"))
        if "ntrex-128" in entry.datasets:
            show(
                measure_overlap(
                    ntrex.bitext(), {k: v for k, v in evaluation.items() if not k.startswith("ntrex")}, f"ntrex.{lang}"
                )
            )


def print_task_overlap(task_names: str, out: str | None = None) -> str:
    """The leak survey of evaluation tasks (:func:`.suite.survey_overlap`) as a markdown table: per
    language and training/dev bitext, per task "normalised (exact) of texts", summed over its sets."""
    import pandas as pd

    from ..io import atomic_write
    from ..tasks.registry import get_task, parse_tasks
    from .suite import survey_overlap

    tasks = {name: get_task(name) for name in parse_tasks(task_names)}
    langs = sorted(code for code in known_languages() if any(not t.unavailable(code) for t in tasks.values()))
    rows = pd.DataFrame(survey_overlap(tasks, langs))
    summed = rows.groupby(["lang", "train", "task"], sort=False)[["texts", "exact", "normalised"]].sum()
    cells = summed.apply(lambda r: f"{r.normalised} ({r.exact}) of {r.texts:,}", axis=1).unstack("task").fillna("")
    text = (
        f"Evaluation texts of {', '.join(tasks)} found in each training/dev bitext (both sides): "
        f"normalised (exact) of the texts compared, summed over each task's sets; {len(rows)} comparisons, "
        f"{int(rows.normalised.sum())} normalised and {int(rows.exact.sum())} exact hits in all.\n\n"
        + cells.reset_index().to_markdown(index=False)
        + "\n"
    )
    print(text)
    if out:
        atomic_write(out, lambda handle: handle.write(text.encode("utf-8")))
    return text


def main(args: argparse.Namespace) -> None:
    if args.action == "where":
        for how, folder in candidate_data_dirs():
            print(f"{'*' if folder.is_dir() else ' '} {folder}  ({how})")
        source = data_source()
        print(f"using: {source.path}  ({source.how})")
    elif args.action == "langs":
        print_languages(args.all)
    elif args.action == "overlap" and args.tasks:
        print_task_overlap(args.tasks, args.out)
    elif args.action == "overlap":
        print_overlap_survey()
    else:
        dest = fetch(
            Path(args.dest) if args.dest else None,
            tuple(c.strip() for c in args.langs.split(",") if c.strip()),
            force=args.force,
            sib_langs=tuple(c.strip() for c in args.sib_langs.split(",") if c.strip()),
            allow_unpinned=args.allow_unpinned,
        )
        print(f"data ready in {dest}")
