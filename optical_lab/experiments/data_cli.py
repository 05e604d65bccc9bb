"""`optical-lab data where|fetch`."""
from __future__ import annotations

import argparse

from ..data.fetch import DEFAULT_NTREX_LANGS, fetch
from ..data.paths import candidate_data_dirs, data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["where", "fetch"])
    parser.add_argument("--langs", default=",".join(DEFAULT_NTREX_LANGS), help="NTREX languages to fetch")
    parser.add_argument("--dest", default=None, help="target folder (default: the user cache)")
    parser.add_argument("--force", action="store_true", help="download again even if present")


def main(args: argparse.Namespace) -> None:
    if args.action == "where":
        for how, folder in candidate_data_dirs():
            print(f"{'*' if folder.is_dir() else ' '} {folder}  ({how})")
        print(f"using: {data_dir()}")
    else:
        from pathlib import Path

        dest = fetch(Path(args.dest) if args.dest else None, tuple(args.langs.split(",")), force=args.force)
        print(f"data ready in {dest}")
