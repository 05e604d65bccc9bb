"""`optical-lab train`: train and save one student (a method, a language, a bitext).

What one comparison cell trains, without evaluating it: the teacher ``--model`` (with
``--pooling`` / ``--query-prefix`` / ``--document-prefix`` when its files say otherwise), the
training pairs of ``--bitext`` (``ntrex``: the NTREX documents outside fold ``--fold`` of
``--folds``; ``mafand``; or your own file(s)), the training settings of ``compare`` (``--preset``,
``--steps``, ``--epsilon``, ...), trained by the one trainer (:func:`~optical_lab.methods.trainer.train_student`).

``--out`` receives ``student/`` (an ``Encoder.save`` folder, also a sentence-transformers model:
``optical-lab evaluate --student OUT/student``, ``SentenceTransformer("OUT/student")``),
``train_log.jsonl`` and ``train_summary.json`` (the trainer's), ``config.json`` (what decides the
student) and ``environment.json`` (versions, CPU, data and teacher hashes).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from ..data.errors import DataError
from ..data.languages import parse_langs
from ..io import write_json
from ..methods.registry import REFERENCE, TRAINED
from ..methods.runtime import set_threads, shown_flags
from ..models.registry import add_backbone_options, backbone_overrides
from ..tasks.registry import get_task
from .command import deprecated_values
from .compare import (
    DEPRECATED_PRESETS,
    PLAN,
    add_bitext_options,
    add_training_options,
    bitext_from_args,
    train_config_from_args,
)
from .plan import ComparePlan, training_bitext
from .records import environment, make_results_dir, provenance


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``optical-lab train``'s options, in groups: the student, its data, training, output."""
    student = parser.add_argument_group("the student")
    student.add_argument(
        "--method", default=REFERENCE, choices=TRAINED, help=f"the training method (default {REFERENCE})"
    )
    student.add_argument("--lang", required=True, help="the student's language (any spelling, e.g. hau)")
    student.add_argument(
        "--model", default=PLAN["model"], help="teacher and starting point: registry name, HF id or folder"
    )
    add_backbone_options(parser.add_argument_group("model settings (override what the model's own files say)"))
    data = parser.add_argument_group("training data and folds")
    add_bitext_options(data)
    data.add_argument(
        "--folds", type=int, default=PLAN["folds"], help="NTREX document folds (--bitext ntrex trains outside one)"
    )
    data.add_argument("--fold", type=int, default=0, help="which fold's evaluation documents to keep out (0-based)")
    data.add_argument("--fold-seed", type=int, default=PLAN["fold_seed"], help="seed of the document folds")
    training = parser.add_argument_group("training (the preset, then what is given here)")
    training.add_argument("--seed", type=int, default=0, help="training seed (pair subsample, batches, initialisation)")
    add_training_options(training)
    deprecated_values(parser, "--preset", DEPRECATED_PRESETS)
    run = parser.add_argument_group("running and output")
    run.add_argument("--threads", type=int, default=PLAN["threads"], help="torch threads (0 = auto: free cores)")
    run.add_argument("--out", required=True, help="folder for the student and its training log (must not hold one)")


def train_one(plan: ComparePlan, lang: str, fold_index: int, out: str | Path, backbone: dict | None = None) -> dict:
    """Train ``plan``'s one method for ``lang`` on fold ``fold_index``'s training bitext; save it under ``out``.

    Returns the trainer's result (``TrainResult`` as a dict) with the bitext's name."""
    from ..methods.trainer import train_student  # torch: imported when a student is trained, not for --help
    from ..models.encoder import Encoder

    (method,) = plan.methods
    out = Path(out)
    if (out / "student").exists():
        raise DataError(f"{out} already holds a student", path=out, fix="choose another --out, or delete this folder")
    task = get_task(plan.task, **plan.task_options)
    task.fold_scheme = plan.fold_scheme
    folds = task.folds(lang, plan.folds, seed=plan.fold_seed)
    if not 0 <= fold_index < len(folds):
        raise DataError(f"--fold {fold_index}: {lang} has folds 0..{len(folds) - 1}", fix="e.g. --fold 0")
    train, dev, source = training_bitext(plan, lang, folds[fold_index])
    make_results_dir(out)
    teacher = Encoder.load(plan.model, max_length=plan.eval_max_length, **(backbone or {}))
    config = plan.train_config(method)
    student, _, result = train_student(
        teacher, teacher, method, train, dev, config, out_dir=out, desc=f"train {lang} {method}"
    )
    student.save(out / "student", teacher=plan.model, lang=lang, method=method, bitext=source)
    info = asdict(result) | {"bitext": source}
    write_json(
        {"plan": asdict(plan), "lang": lang, "fold": fold_index, "backbone": backbone or {}, "result": info},
        out / "config.json",
    )
    files = task.data_files(lang) if plan.bitext == "ntrex" else list(plan.bitext_files)
    write_json(
        environment() | {"cpu_flags": shown_flags()} | provenance(files, teacher.source), out / "environment.json"
    )
    return info


def main(args: argparse.Namespace) -> None:
    langs = parse_langs(args.lang)
    if len(langs) != 1:
        raise DataError(f"--lang names {len(langs)} languages; a student has one", fix=f"e.g. --lang {langs[0]}")
    config = train_config_from_args(args).replace(seed=args.seed)
    bitext, files = bitext_from_args(args, langs)
    plan = ComparePlan(
        langs=langs,
        methods=[args.method],
        folds=args.folds,
        model=args.model,
        bitext=bitext,
        preset=args.preset,
        train=config,
        fold_seed=args.fold_seed,
        bitext_files=files,
        threads=args.threads,
    )
    set_threads(plan.threads)
    info = train_one(plan, langs[0], args.fold, args.out, backbone_overrides(args))
    print(
        f"trained {args.method} for {langs[0]} on {info['train_pairs']} pairs of {info['bitext']} "
        f"({info['steps']} steps; best dev MRR {info['best_dev_mrr'] or 0:.3f} at step {info['best_step']})"
    )
    if info["diverged"]:  # the student is the best dev state before it (methods/train_state.py, "Divergence")
        print(f"warning: stopped at step {info['diverged_step']}, {info['diverged']}", file=sys.stderr)
    print(f"student: {Path(args.out) / 'student'}  (optical-lab evaluate --student {Path(args.out) / 'student'})")
