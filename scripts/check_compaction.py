"""Prove that compacting results changes no number: regenerate every report before and after, compare bytes.

    python scripts/check_compaction.py regenerate results /tmp/before   # before `optical-lab results compact`
    optical-lab results compact results/*/
    python scripts/check_compaction.py regenerate results /tmp/after
    python scripts/check_compaction.py compare /tmp/before /tmp/after     # exit 1 on any difference

    python scripts/check_compaction.py selftest results                   # all of it on a scratch copy
    python scripts/check_compaction.py selftest --relayout results        # ... every stored file expanded first, so
                                                                          # all of it is compacted in today's layout

``regenerate`` works on a scratch copy of the results (the reports write into their folders), and writes to
OUT, per results folder: ``files.json`` (the SHA-256 of the exact bytes every logical file reads back as,
:func:`optical_lab.experiments.compact.logical_manifest`), ``per_query.csv`` (the long table every statistic
starts from), the comparison tables (``summary.md``/``.csv``, significance, winners), the protocol-v2
analysis and document (``analysis.json``, ``results.md``, with each run's registered family from the
Makefile), the size curve, the results documents (``optical-lab report document``,
``evaluate``'s summary), the compute plan's measured rates (:func:`step_seconds`, :func:`eval_seconds`) and
the figures that read results (comparison charts, loss curves; PNG). Nothing here needs a model or data.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from optical_lab.experiments.compact import compact_folder, expand_folder, logical_manifest  # noqa: E402
from optical_lab.experiments.compute_plan import eval_seconds, step_seconds  # noqa: E402
from optical_lab.experiments.evaluate import render_summary  # noqa: E402
from optical_lab.experiments.per_query import load_per_query  # noqa: E402
from optical_lab.experiments.results_doc import render_report  # noqa: E402
from optical_lab.experiments.size_curve import write_curve  # noqa: E402
from optical_lab.experiments.summary import summarize_folder  # noqa: E402
from optical_lab.io import read_json  # noqa: E402
from optical_lab.reports import v2  # noqa: E402
from optical_lab.reports.figures import generate  # noqa: E402

# each v2 run's registered family (the Makefile's `optical-lab report v2` lines)
V2_FAMILIES = {
    "v2-minilm": {},
    "v2-me5-small": {"langs": ("hau", "swa", "yor"), "seeds": 2},
    "v2-me5-small-f32": {"langs": ("hau", "swa", "yor"), "seeds": 2},
    "v2-qald-minilm": {
        "langs": ("ukr", "lit", "bel", "bak", "hye"),
        "seeds": 2,
        "endpoints": (v2.parse_endpoint("qald:F1"),),
    },
}


def regenerate_folder(folder: Path, out: Path) -> list[str]:
    """Every report of one results folder into ``out``; the names of what was written."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "files.json").write_text(json.dumps(logical_manifest(folder), indent=1, sort_keys=True) + "\n")
    config = read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    if (folder / "runs").is_dir():
        load_per_query(folder / "runs").to_csv(out / "per_query.csv", index=False)
        summarize_folder(folder).write(out)
        rates = {"step_seconds": step_seconds([folder]), "eval_seconds": eval_seconds(folder / "runs")}
        (out / "compute_rates.json").write_text(json.dumps(rates, indent=1, sort_keys=True) + "\n")
    if folder.name in V2_FAMILIES:
        family = V2_FAMILIES[folder.name]
        analysis = v2.analyse(folder, **family)
        shutil.copy(folder / "analysis.json", out / "analysis.json")
        (out / "results.md").write_text(v2.render(folder, analysis, family.get("langs", v2.PRIMARY_LANGS)))
    if (folder / "config_size_curve.json").is_file():
        curve = read_json(folder / "config_size_curve.json")
        write_curve(folder, curve["langs"], curve["size_curve"], curve["train"]["aug_method"])
        for name in ("size_curve.csv", "size_curve.md"):
            shutil.copy(folder / "size_curve" / name, out / name)
    if config.get("kind") == "compare" and (folder / "environment_compare.json").is_file():
        (out / "report.md").write_text(render_report(folder))
    if "tasks" in config and (folder / "environment.json").is_file():  # an `optical-lab evaluate` folder
        (out / "evaluate_summary.md").write_text(render_summary(folder))
    if (folder / "summary.csv").is_file() and (folder / "runs").is_dir():
        generate(folder, out / "figures", plans=False, formats=("png",), log=lambda *_: None)
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def results_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir())


IGNORED = shutil.ignore_patterns(".cache", "*.pt", "student", ".optical-lab.lock")


@contextlib.contextmanager
def inside(folder: Path):
    """Work in ``folder``: the reports name their results folder (``results/v2-minilm``), so both
    regenerations must see it under the same relative path."""
    here = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(here)


def regenerate(results: Path, out: Path) -> None:
    """Regenerate every report of every folder under ``results`` (on a scratch copy) into ``out``."""
    out = out.resolve()
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copytree(results, Path(scratch) / "results", ignore=IGNORED)
        with inside(Path(scratch)):
            for folder in results_folders(Path("results")):
                written = regenerate_folder(folder, out / folder.name)
                print(f"{folder.name}: {len(written)} files regenerated")


def digest_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def compare(before: Path, after: Path) -> int:
    """Byte-for-byte comparison of two regenerations; 0 when identical."""
    a, b = digest_tree(before), digest_tree(after)
    differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    for name in differ:
        print(f"DIFFERS: {name} ({'missing after' if name not in b else 'new after' if name not in a else 'content'})")
    print(f"{len(a)} files regenerated before, {len(b)} after; {len(differ)} differ")
    return 1 if differ or not a else 0


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def selftest(results: Path, relayout: bool = False) -> int:
    """Regenerate, compact (a scratch copy; ``relayout``: every stored file expanded to plain first), regenerate,
    compare."""
    with tempfile.TemporaryDirectory() as scratch:
        copy, before, after = Path(scratch) / "results", Path(scratch) / "before", Path(scratch) / "after"
        shutil.copytree(results, copy, ignore=IGNORED)
        regenerate(copy, before)
        stored = tree_bytes(copy)
        for folder in results_folders(copy):
            if relayout:
                print(f"expand {folder.name}: {expand_folder(folder)} stored files back to plain")
            print(f"compact {folder.name}: {compact_folder(folder).line()}")
        print(f"stored results: {stored / 2**20:.2f} MiB before, {tree_bytes(copy) / 2**20:.2f} MiB after")
        regenerate(copy, after)
        return compare(before, after)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    make = sub.add_parser("regenerate")
    make.add_argument("results", type=Path)
    make.add_argument("out", type=Path)
    both = sub.add_parser("compare")
    both.add_argument("before", type=Path)
    both.add_argument("after", type=Path)
    test = sub.add_parser("selftest")
    test.add_argument("results", type=Path)
    test.add_argument("--relayout", action="store_true", help="expand every stored file first: compact all anew")
    args = parser.parse_args(argv)
    if args.action == "regenerate":
        regenerate(args.results, args.out)
        return 0
    if args.action == "compare":
        return compare(args.before, args.after)
    return selftest(args.results, args.relayout)


if __name__ == "__main__":
    sys.exit(main())
