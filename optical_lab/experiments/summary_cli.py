"""``optical-lab report summary FOLDER``: re-render a results folder's summary tables from its finished cells.

Whatever command wrote the folder: a comparison (``compare``: ``summary.md``/``.csv``, significance,
winners; :func:`optical_lab.experiments.summary.summarize_folder`), its bitext-size curve
(``size_curve/size_curve.md``/``.csv``; :func:`optical_lab.experiments.size_curve.write_curve`) and an
evaluation (``evaluate``: ``summary.md``; :func:`optical_lab.experiments.evaluate.render_summary`).
Nothing is recomputed but the tables: they are rebuilt from the per-query files the runs wrote.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..data.errors import DataError
from ..io import read_json, stored_exists, write_text
from .command import run_module
from .size_curve import CURVE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, help="a results folder written by compare or evaluate")


def main(args: argparse.Namespace) -> None:
    """Re-render every summary the folder has; an error when it has none."""
    folder = args.folder
    config = read_json(folder / "config.json") if stored_exists(folder / "config.json") else {}
    rendered = False
    if config.get("kind") == "compare" and (folder / "runs").is_dir():
        from .summary import summarize_folder

        summarize_folder(folder).write(folder)
        print((folder / "summary.md").read_text(encoding="utf-8"))
        rendered = True
    if stored_exists(folder / f"config_{CURVE}.json"):
        from .size_curve import write_curve

        curve = read_json(folder / f"config_{CURVE}.json")
        table = write_curve(folder, curve["langs"], curve["size_curve"], curve["train"]["aug_method"])
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        rendered = True
    if "tasks" in config and stored_exists(folder / "environment.json"):
        from .evaluate import render_summary

        write_text(render_summary(folder), folder / "summary.md")
        print(f"wrote {folder / 'summary.md'}")
        rendered = True
    if not rendered:
        raise DataError(
            f"{folder} holds no comparison, size curve or evaluation to summarise",
            fix="name a folder written by `optical-lab compare` or `optical-lab evaluate` (it has config.json)",
        )


if __name__ == "__main__":
    sys.exit(run_module(add_arguments, main, "python -m optical_lab.experiments.summary_cli", __doc__.splitlines()[0]))
