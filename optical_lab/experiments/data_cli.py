"""`optical-lab data where|langs|fetch`."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..data.fetch import DEFAULT_NTREX_LANGS, fetch
from ..data.languages import DATASETS, language_table
from ..data.paths import candidate_data_dirs, data_source


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["where", "langs", "fetch"],
                        help="where: the data folder in use; langs: every language it knows and which datasets have it; "
                             "fetch: download the data")
    parser.add_argument("--langs", default=",".join(DEFAULT_NTREX_LANGS), help="NTREX languages to fetch")
    parser.add_argument("--dest", default=None, help="target folder (default: the user cache)")
    parser.add_argument("--force", action="store_true", help="download again even if present")
    parser.add_argument("--all", action="store_true",
                        help="langs: also list languages NTREX has upstream but this folder lacks")


def print_languages(show_all: bool = False) -> None:
    """A table: code, name, then how each dataset spells the language ('-' when it lacks it)."""
    source = data_source()
    rows = [r for r in language_table(source.path) if show_all or any(r[d] for d in DATASETS)]
    header = ["code", "name", *DATASETS] + (["ntrex-128 upstream"] if show_all else [])
    table = [header] + [[r[h] or "-" for h in header] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print(f"languages in {source.path} ({source.how}):")
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    hidden = len(language_table(source.path)) - len(rows)
    if hidden:
        print(f"(+{hidden} more that NTREX-128 has upstream: `--all` lists them, `data fetch --langs CODE` fetches one)")


def main(args: argparse.Namespace) -> None:
    if args.action == "where":
        for how, folder in candidate_data_dirs():
            print(f"{'*' if folder.is_dir() else ' '} {folder}  ({how})")
        source = data_source()
        print(f"using: {source.path}  ({source.how})")
    elif args.action == "langs":
        print_languages(args.all)
    else:
        dest = fetch(Path(args.dest) if args.dest else None, tuple(args.langs.split(",")), force=args.force)
        print(f"data ready in {dest}")
