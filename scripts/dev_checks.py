"""Why does the me5-small student not improve on dev? Two checks of docs/me5_small.md's hypotheses (dev only).

Protocol v2's me5-small sweep found no OPTICAL setting whose dev MRR ends above the untrained student's
within the v2 budget (300 steps x 16 pairs). docs/me5_small.md names two explanations the sweep cannot
tell apart; each subcommand checks one, on the tuning language's MAFAND-MT train/dev bitext only (no
evaluation collection is encoded, so a check can inform a later protocol without touching any
evaluation number):

``budget`` — hypothesis 1, the budget: trains *one* setting of the sweep again, identical except for the
number of steps (and how often dev is scored). The folder is a sweep folder
(``optical_lab.experiments.sweep.Sweep``): a finished setting is read, not trained again, and
``<out>/<method>/<setting>/done.json`` holds ``dev_history`` and ``best_step``.

    python scripts/dev_checks.py budget --method optical --lr 3e-4 --steps 1000 --eval-every 100 \\
        --freeze-word-embeddings --out results/v2-me5-small/dev-checks/budget

``target`` — hypothesis 2, the target: what the dev score would be if the student reached its training
target exactly. Training pulls the foreign sentence towards the teacher's embedding of the English one in
the training role (``TrainConfig.training_role``); dev selection ranks foreign documents for the teacher's
English *queries* (``TrainConfig.dev_roles``). Scoring the teacher's English in the training role as the
documents gives that ceiling, next to the untrained student's score (the foreign documents).

    python scripts/dev_checks.py target --langs hau,swa,yor --out results/v2-me5-small/dev-checks/target.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from optical_lab.data.mafand import load_mafand
from optical_lab.experiments.records import environment
from optical_lab.experiments.sweep import Sweep
from optical_lab.io import write_json
from optical_lab.methods.accelerator import make_accelerator
from optical_lab.methods.config import preset
from optical_lab.methods.runtime import set_threads
from optical_lab.methods.trainer import retrieval_mrr
from optical_lab.models.encoder import Encoder


def budget(args: argparse.Namespace) -> None:
    sweep = Sweep(
        args.out,
        lang=args.lang,
        model=args.model,
        methods=[args.method],
        threads=args.threads,
        progress=not args.no_progress,
        steps=args.steps,
        eval_every=args.eval_every,
        freeze_word_embeddings=args.freeze_word_embeddings,
    )
    write_json(environment(), sweep.out / "environment.json")
    info = sweep.run(args.method, {"lr": args.lr}, stage="budget-check")
    print(json.dumps({k: info[k] for k in ("setting", "best_step", "best_dev_mrr", "dev_history", "train_s")}))


@torch.no_grad()
def target(args: argparse.Namespace) -> None:
    config = preset("v2")
    accelerator = make_accelerator(config.mixed_precision)
    threads = set_threads(args.threads)
    encoder = Encoder.load(args.model, device=accelerator.device)  # as the sweep loads it
    encoder.eval()
    query_role, document_role = config.dev_roles()
    out = {
        "model": args.model,
        "training_role": config.training_role,
        "dev_roles": [query_role, document_role],
        "max_dev_pairs": config.max_dev_pairs,
        "precision": accelerator.mixed_precision,
        "threads": threads,
        "environment": environment(),
        "languages": {},
    }
    for lang in args.langs.split(","):
        dev = config.dev_sample(load_mafand(lang, "dev"))  # the trainer's own dev sample
        with accelerator.autocast():
            queries = encoder.encode(dev.english, query_role, batch_size=64)
            english = encoder.encode(dev.english, config.training_role, batch_size=64)
            foreign = encoder.encode(dev.foreign, document_role, batch_size=64)
        out["languages"][lang] = {
            "dev_pairs": len(dev),
            "untrained_student_mrr": retrieval_mrr(queries, foreign),
            "target_reached_mrr": retrieval_mrr(queries, english),
            "cos_query_vs_target": float((queries.float() * english.float()).sum(1).mean()),
            "cos_student_vs_target": float((foreign.float() * english.float()).sum(1).mean()),
        }
        print(lang, json.dumps(out["languages"][lang]), flush=True)
    write_json(out, Path(args.out))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="check", required=True)
    b = sub.add_parser("budget", help="one sweep setting with a longer budget")
    b.add_argument("--lang", default="hau", help="the sweep's tuning language (MAFAND-MT train/dev)")
    b.add_argument("--method", default="optical")
    b.add_argument("--lr", type=float, required=True)
    b.add_argument("--steps", type=int, required=True)
    b.add_argument("--eval-every", type=int, default=100)
    b.add_argument("--freeze-word-embeddings", action=argparse.BooleanOptionalAction, default=None)
    b.add_argument("--no-progress", action="store_true")
    t = sub.add_parser("target", help="dev score if the training target were reached")
    t.add_argument("--langs", default="hau,swa,yor")
    for p in (b, t):
        p.add_argument("--model", default="me5-small")
        p.add_argument("--threads", type=int, default=0, help="torch threads (0: auto)")
        p.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    budget(args) if args.check == "budget" else target(args)


if __name__ == "__main__":
    main()
