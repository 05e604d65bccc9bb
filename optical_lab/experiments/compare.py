"""`optical-lab compare`: train every method per language, fold and seed, evaluate, and compare.

This module is the command line only: it turns arguments into a
:class:`~optical_lab.experiments.plan.ComparePlan` and hands it to the
:class:`~optical_lab.experiments.runner.Runner` (the cells, their folders, resume) — see there and
:mod:`.summary` (the statistics). Methods and tasks are listed from their registries
(:mod:`optical_lab.methods.registry`, :mod:`optical_lab.tasks.registry`), so neither needs an edit
here when one is added.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import MISSING
from pathlib import Path
from typing import Any

from ..data.collections import FOLD_SCHEMES
from ..data.errors import DataError
from ..data.languages import parse_langs
from ..data.params import add_flag
from ..methods.config import PRESETS, TrainConfig, apply_precedence, explicit_settings, preset, training_flags
from ..methods.registry import METHODS, methods_help, parse_methods
from ..methods.runtime import set_threads
from ..tasks.registry import ALIASES, SUITE, TASKS, cli_options, parse_tasks, task_name
from .command import deprecated_values
from .plan import ComparePlan
from .stopping import grid_cap
from .suite import DEFAULT_ALLOWED_OVERLAP, load_user_bitext
from .sweep_design import arm_settings

DEFAULT_LANGS = "swa,hau,yor,som,zul,fra,deu"
DEPRECATED_PRESETS = {"demo": "default"}  # a removed preset name -> the preset it was identical to
# ComparePlan's defaults, the one home of the comparison's defaults (the options below show them)
PLAN = {name: f.default for name, f in ComparePlan.__dataclass_fields__.items() if f.default is not MISSING}


def parse_sizes(text: str) -> list[int | None]:
    sizes: list[int | None] = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        if part == "all":
            sizes.append(None)
        elif part.isdigit() and int(part) > 0:
            sizes.append(int(part))
        else:
            raise DataError(
                f"bad --size-curve entry {part!r}", fix="use positive integers and/or 'all', e.g. 100,300,all"
            )
    return sizes


def add_task_options(parser: argparse.ArgumentParser) -> None:
    """``--<option>`` for every option of every registered task (``--topics``, ``--qald-file``, ...)."""
    for name, help_text in cli_options().items():
        parser.add_argument(
            "--" + name.replace("_", "-"), dest=f"task_{name}", metavar=name.upper(), default=None, help=help_text
        )


def task_options_from_args(args: argparse.Namespace, tasks: list[str] | None = None) -> dict:
    """The task options given on the command line (``--topics``, ``--flores-split``, ...), refused
    when none of ``tasks`` (default: ``args.task``) has them; each task takes its own
    (:func:`optical_lab.tasks.registry.get_task`)."""
    tasks = tasks or [task_name(args.task)]
    given = {
        name: getattr(args, f"task_{name}") for name in cli_options() if getattr(args, f"task_{name}", None) is not None
    }
    own = {option for name in tasks for option in TASKS[name].OPTIONS}
    foreign = sorted(set(given) - own)
    if foreign:
        owner = next(n for n, c in TASKS.items() if foreign[0] in c.OPTIONS)
        raise DataError(
            f"--{foreign[0].replace('_', '-')} is not an option of task {' or '.join(repr(t) for t in tasks)}",
            fix=f"use --task{'s' if len(tasks) > 1 else ''} {owner}, or drop it",
        )
    return given


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``optical-lab compare``'s options, in groups: what is compared, the data, training, output."""
    what = parser.add_argument_group("what is compared")
    what.add_argument("--langs", default=DEFAULT_LANGS, help="comma-separated ISO 639-3 codes")
    what.add_argument("--methods", default="all", help="'all' or a comma-separated subset of: " + methods_help())
    what.add_argument(
        "--folds", type=int, default=PLAN["folds"], help="document folds (1 = train on one half, evaluate on the other)"
    )
    what.add_argument("--seeds", type=int, default=PLAN["seeds"], help="number of training seeds (0..N-1)")
    what.add_argument("--model", default=PLAN["model"], help="teacher: registry name, HF id or local path")
    what.add_argument(
        "--method-config",
        default=None,
        help="per-method settings, e.g. results/v2-minilm/sweep/chosen.json from `optical-lab sweep` "
        "(default: the preset's for every method)",
    )
    what.add_argument(
        "--cap-check",
        action="store_true",
        help="protocol v3's cap check (docs/protocol_v3.md, 'Train to a plateau'): read the finished sweep whose "
        "chosen.json --method-config names; when fewer than 80 %% of its runs that left step 0 selected a step before "
        "the cap, every arm's cap (--steps) is doubled (an explicit --steps wins)",
    )
    what.add_argument(
        "--size-curve", default=None, help="e.g. 100,300,all: bitext-size curve instead of the comparison"
    )
    tasks = parser.add_argument_group("tasks: where students are judged")
    tasks.add_argument(
        "--task",
        default=PLAN["task"],
        choices=list(TASKS),
        help="the one task whose folds decide training and evaluation (optical_lab/tasks/)",
    )
    deprecated_values(parser, "--task", ALIASES)
    tasks.add_argument(
        "--eval-tasks",
        default=None,
        help=f"further tasks every trained student is scored on, e.g. 'suite' = {','.join(SUITE)} "
        "(default: the --task only); each evaluates the languages it has",
    )
    tasks.add_argument(
        "--eval-max-length",
        type=int,
        default=PLAN["eval_max_length"],
        help="evaluation truncation (default: the model's)",
    )
    add_task_options(parser.add_argument_group("task options (each belongs to the task(s) named in its help)"))
    data = parser.add_argument_group("training data and folds")
    add_bitext_options(data)
    data.add_argument(
        "--fold-scheme",
        default=PLAN["fold_scheme"],
        choices=list(FOLD_SCHEMES),
        help="NTREX folds: held-out-dev (one dev set no fold evaluates) or per-fold-dev (the "
        "committed results' scheme)",
    )
    data.add_argument("--fold-seed", type=int, default=PLAN["fold_seed"], help="seed of the document folds")
    data.add_argument(
        "--allow-overlap",
        type=int,
        default=PLAN["allow_overlap"],
        help="leak guard: evaluation texts a (language, fold) may also have in its training/dev "
        f"bitext before the run is refused (default {DEFAULT_ALLOWED_OVERLAP}: NTREX's own repeated sentence)",
    )
    add_training_options(parser.add_argument_group("training (the preset, then what is given here)"))
    deprecated_values(parser, "--preset", DEPRECATED_PRESETS)
    run = parser.add_argument_group("running and output")
    run.add_argument(
        "--out", default="results/compare", help="results folder (re-running into it skips finished cells)"
    )
    run.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="skip finished cells and resume killed ones (default); --no-resume recomputes",
    )
    run.add_argument(
        "--save-student",
        action="store_true",
        help="write every trained student to <cell>/student (safetensors + tokenizer), for "
        "`optical-lab evaluate --student`",
    )
    run.add_argument(
        "--keep-diverged",
        action="store_true",
        help="a cell whose training diverges keeps its best dev state, is evaluated and flagged (protocol v3, "
        "deviation 2; the v3 grids pass it); default: the run stops with one error line",
    )
    run.add_argument("--threads", type=int, default=PLAN["threads"], help="torch threads (0 = auto: free cores)")
    run.add_argument(
        "--join",
        action="store_true",
        help="help the comparison already running in --out (the same command line, threads may differ): "
        "compute the cells nobody else holds; that run waits for them and writes the summary",
    )
    run.add_argument(
        "--join-wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="with --join: wait up to this long for the run it joins to write the folder's config.json "
        "(a worker started together with its owner)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bars (e.g. in a log file)")


def add_bitext_options(parser: argparse.ArgumentParser) -> None:
    """Where the training pairs come from (:func:`bitext_from_args`): ``compare`` and ``train``."""
    parser.add_argument(
        "--bitext",
        default=PLAN["bitext"],
        help="training bitext: 'ntrex' (NTREX documents outside the fold), 'mafand' (MAFAND-MT "
        "train, dev: MAFAND dev; every --langs entry needs its en-LANG pair in the data folder), or a "
        "TSV file of english<TAB>foreign pairs (one --langs entry)",
    )
    parser.add_argument("--bitext-en", default=None, help="your English side, line-aligned with --bitext-xx")
    parser.add_argument("--bitext-xx", default=None, help="your foreign side, line-aligned with --bitext-en")


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """The training settings (``--preset`` and a flag for every ``TrainConfig`` setting declared with one:
    steps, OT, precision, ...): ``compare`` and ``train``. Built from the settings' declarations
    (:func:`optical_lab.methods.config.training_flags`): one argument group per declared group, the
    default and help of each. Every flag defaults to None, so what was given explicitly is known
    (:func:`optical_lab.methods.config.explicit_settings`, the precedence rule)."""
    parser.add_argument(
        "--preset",
        default=PLAN["preset"],
        choices=list(PRESETS),
        help="training budget (methods/config.py PRESETS; default: default). Precedence: an explicit flag > "
        "--method-config > --preset > the defaults shown",
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    flags = training_flags()  # the trainer's own groups first, then the objectives'
    for key, name, info, kind, default in sorted(flags, key=lambda flag: not flag[2].group.startswith("training")):
        if info.group not in groups:
            groups[info.group] = parser.add_argument_group(info.group)
        add_flag(groups[info.group], name, info, kind, default, dest=key)


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The ``TrainConfig`` of :func:`add_training_options`' arguments: the preset, with what the command line sets."""
    return preset(args.preset).replace(**explicit_settings(vars(args)))  # TrainConfig.validate refuses bad values


def plan_from_args(args: argparse.Namespace) -> ComparePlan:

    config = train_config_from_args(args)
    methods = methods_of(args)
    explicit = explicit_settings(vars(args))
    if getattr(args, "cap_check", False):
        config, explicit = apply_cap_check(args.method_config, config, explicit)
    # explicit flag > method config file > preset > default (methods/config.apply_precedence)
    method_config, notes = apply_precedence(read_method_config(args.method_config, methods), explicit)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    langs = parse_langs(args.langs)
    task = task_name(args.task)
    eval_tasks = [t for t in parse_tasks(args.eval_tasks) if t != task] if args.eval_tasks else []
    if args.allow_overlap < 0:
        raise DataError(f"bad --allow-overlap {args.allow_overlap}", fix="a count of evaluation texts, 0 or more")
    bitext, bitext_files = bitext_from_args(args, langs)
    return ComparePlan(
        langs=langs,
        methods=methods,
        folds=args.folds,
        seeds=args.seeds,
        task=task,
        task_options=task_options_from_args(args, [task, *eval_tasks]),
        model=args.model,
        bitext=bitext,
        preset=args.preset,
        train=config,
        eval_max_length=args.eval_max_length,
        fold_seed=args.fold_seed,
        threads=args.threads,
        size_curve=parse_sizes(args.size_curve) if args.size_curve else None,
        eval_tasks=eval_tasks,
        bitext_files=bitext_files,
        fold_scheme=args.fold_scheme,
        allow_overlap=args.allow_overlap,
        method_config=method_config,
    )


def apply_cap_check(
    method_config: str | None, config: TrainConfig, explicit: dict[str, Any]
) -> tuple[TrainConfig, dict[str, Any]]:
    """``--cap-check``: the grid's training config and explicit settings with the step cap that protocol v3's cap
    check sets from the finished sweep beside ``method_config`` (:func:`.stopping.grid_cap`; doubled: every arm's
    ``steps``, above any method config). An explicit ``--steps`` wins (noted); a sweep run under another cap than
    the grid's preset is refused."""
    if not method_config:
        raise DataError(
            "--cap-check reads the sweep that wrote --method-config", fix="add --method-config SWEEP/chosen.json"
        )
    check = grid_cap(Path(method_config).parent)
    share = "no run left step 0" if check["share"] is None else f"{check['share']:.1%} of {check['runs']} runs"
    if "steps" in explicit:
        print(
            f"note: --steps {explicit['steps']} given: the cap check's ({check['steps']}) is not applied",
            file=sys.stderr,
        )
        return config, explicit
    if config.steps != check["sweep_cap"]:
        raise DataError(
            f"--cap-check: the sweep ran under a cap of {check['sweep_cap']} steps, this grid's preset has "
            f"{config.steps}",
            path=method_config,
            fix="run the grid with the sweep's preset",
        )
    print(
        f"note: cap check (protocol v3): {share} past step 0 selected a step before the cap {check['sweep_cap']} "
        f"(target {check['target']:.0%}): "
        + (
            f"the grid's cap is doubled to {check['steps']} steps for every arm (record it as a dated deviation)"
            if check["doubled"]
            else f"the grid keeps the cap {check['steps']}"
        ),
        file=sys.stderr,
    )
    if not check["doubled"]:
        return config, explicit
    return config.replace(steps=check["steps"]), explicit | {"steps": check["steps"]}


def methods_of(args: argparse.Namespace) -> list[str]:
    try:
        return parse_methods(args.methods)
    except ValueError as exc:
        raise DataError(str(exc), fix="e.g. --methods all, or --methods zero-shot,optical") from None


def read_method_config(path: str | None, methods: list[str]) -> dict[str, dict]:
    """Per-method settings from a sweep's ``chosen.json`` (``{method: {setting: value}}``; a v3 sweep's
    ``settings_tried`` report beside them is not read: :func:`.sweep_design.arm_settings`)."""
    if not path:
        return {}
    try:
        chosen = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(
            f"cannot read --method-config {path}: {exc}",
            path=path,
            fix="pass the chosen.json written by `optical-lab sweep`",
        ) from None
    chosen = arm_settings(chosen) if isinstance(chosen, dict) else chosen
    unknown = sorted(set(chosen) - set(METHODS)) if isinstance(chosen, dict) else []
    if not isinstance(chosen, dict) or unknown or not all(isinstance(v, dict) for v in chosen.values()):
        raise DataError(
            f"--method-config {path}: expected {{method: {{setting: value}}}} for known methods"
            + (f"; unknown: {', '.join(unknown)}" if unknown else ""),
            path=path,
            fix="pass the chosen.json written by `optical-lab sweep`",
        )
    for method, settings in chosen.items():
        try:
            TrainConfig().replace(**settings)  # an unknown setting or a bad value: named, never a TypeError
        except DataError as exc:
            raise DataError(
                f"--method-config, method {method!r}: {exc.args[0].split(chr(10))[0]}",
                path=path,
                fix=exc.fix or "pass the chosen.json written by `optical-lab sweep`",
            ) from None
    return {m: v for m, v in chosen.items() if m in methods}


def bitext_from_args(args: argparse.Namespace, langs: list[str]) -> tuple[str, list[str]]:
    """(plan.bitext, plan.bitext_files) from ``--bitext`` / ``--bitext-en`` / ``--bitext-xx``. A user's
    files are read (strictly: path, line and fix on the first problem) here, before anything is written."""
    pair = [args.bitext_en, args.bitext_xx]
    if any(pair) and not all(pair):
        raise DataError(
            f"--bitext-{'xx' if args.bitext_en else 'en'} is missing",
            fix="give both sides: --bitext-en english.txt --bitext-xx foreign.txt (line-aligned)",
        )
    if all(pair) and args.bitext != "ntrex":
        raise DataError("--bitext and --bitext-en/--bitext-xx both name a training bitext", fix="use one of them")
    if not all(pair) and args.bitext in ("ntrex", "mafand"):
        return args.bitext, []
    files = [str(Path(f).resolve()) for f in (pair if all(pair) else [args.bitext])]
    for name in files:
        if not Path(name).is_file():
            raise DataError(
                f"no such bitext file {name}",
                path=name,
                fix="--bitext takes ntrex, mafand or a TSV file (english<TAB>foreign per line)",
            )
    if len(langs) != 1:
        raise DataError(
            f"a user bitext is in one language, but --langs names {len(langs)}",
            fix=f"run one comparison per language, e.g. --langs {langs[0]}",
        )
    load_user_bitext(tuple(files), langs[0])  # validate now
    return "user", files


def main(args: argparse.Namespace) -> None:
    from .runner import Runner

    plan = plan_from_args(args)
    set_threads(plan.threads)
    start = time.perf_counter()
    if args.join and plan.size_curve is not None:
        raise DataError("--join helps a comparison, not a size curve", fix="drop --join or --size-curve")
    runner = Runner(
        plan,
        args.out,
        resume=args.resume,
        progress=not args.no_progress,
        save_student=args.save_student,
        keep_diverged=args.keep_diverged,
        worker=args.join,
        join_wait=args.join_wait,
    )
    result = runner.run_size_curve() if plan.size_curve is not None else runner.run()
    if not runner.accelerator.is_main_process:  # under data-parallel, one process reports
        return
    if result is None:  # a --join worker: the run that owns the folder summarises
        print(f"\nworker: {len(runner.timings)} cells ({time.perf_counter() - start:.0f} s) in {args.out}")
        return
    if plan.size_curve is not None:
        print(result.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    else:
        print()
        print(result.winners_table().to_string(float_format=lambda v: f"{v:.3f}"))
        task, metric = result.primary
        print()
        print(result.wide(task, metric).to_string())
    threads = sorted({info.get("threads") for info in runner.timings if info.get("threads")})
    print(
        f"\nresults: {args.out}  ({time.perf_counter() - start:.0f} s, torch threads {threads or '-'}, "
        f"precision {runner.plan.train.mixed_precision})"
    )
