"""``optical-lab report document``: a comparison's results document (``docs/results_minilm.md``).

The document embeds the comparison's generated ``summary.md`` (and size curve), its configuration and
the measured wall time and memory (:func:`optical_lab.experiments.results_doc.render_report`): every number
comes from files the run wrote.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..io import write_text
from .command import run_module
from .results_doc import render_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", required=True, help="the comparison folder, e.g. results/compare-minilm")
    parser.add_argument("--out", required=True, help="the document to write, e.g. docs/results_minilm.md")
    parser.add_argument("--title", default="Results: all-MiniLM-L6-v2 teacher", help="the document's title")
    parser.add_argument("--time-log", help="output of /usr/bin/time -v for the run (default: RESULTS/time_v.txt)")
    parser.add_argument(
        "--load-log", help="'HH:MM:SS <loadavg>' lines sampled during the run (default: RESULTS/loadavg.log)"
    )
    parser.add_argument(
        "--curve-time-log", help="the size curve's /usr/bin/time -v output (default: RESULTS/size_curve/time_v.txt)"
    )
    parser.add_argument(
        "--curve-load-log", help="the size curve's load samples (default: RESULTS/size_curve/loadavg.log)"
    )
    parser.add_argument("--note", action="append", default=[], help="a sentence to add under 'What ran' (repeatable)")


def main(args: argparse.Namespace) -> None:
    text = render_report(
        args.results, args.time_log, args.load_log, args.title, args.curve_time_log, args.curve_load_log, args.note
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_text(text, Path(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(run_module(add_arguments, main, "python -m optical_lab.experiments.document_cli", __doc__.splitlines()[0]))
