"""`optical-lab sweep`'s command line: the options and the call to :class:`~optical_lab.experiments.sweep.Sweep`.

Apart from the sweep itself (:mod:`.sweep`, which trains and so imports torch) so that ``optical-lab sweep
--help`` builds its parser without torch (``tests/test_cli.py``); the sweep is imported when it runs.
"""

from __future__ import annotations

import argparse
import json

from ..data.languages import parse_langs
from ..methods.registry import parse_methods
from ..models.registry import DEFAULT_MODEL
from .suite import DEFAULT_ALLOWED_OVERLAP
from .sweep_design import DESIGNS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``optical-lab sweep``'s options: the design, its languages, model and arms, the training overrides, running."""
    parser.add_argument(
        "--design", default="v2", choices=sorted(DESIGNS), help="the declared sweep (sweep_design.py): v2 or v3"
    )
    parser.add_argument(
        "--langs",
        "--lang",
        dest="langs",
        default=None,
        help="selection languages, comma-separated, with MAFAND-MT train/dev (default: the design's)",
    )
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help="teacher and starting point: registry name, HF id or folder"
    )
    parser.add_argument("--methods", default=None, help="trained methods to tune (default: the design's arms)")
    parser.add_argument("--preset", default=None, help="training preset (default: the design's, v2 or v3)")
    parser.add_argument("--steps", type=int, help="override the preset's steps (tests)")
    parser.add_argument("--seed", type=int, default=0, help="the training seed of every setting")
    parser.add_argument(
        "--freeze-word-embeddings",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the students' word-embedding table as the teacher's (see TrainConfig; default off)",
    )
    parser.add_argument("--threads", type=int, default=0, help="threads per training process (0: auto)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="cells trained at a time, each in its own process (a GPU: several; 2 CPU cores: 1); "
        "give --threads too: an automatic thread count may differ per worker, and on a CPU the "
        "thread count changes the float rounding of a result",
    )
    parser.add_argument(
        "--allow-overlap",
        type=int,
        default=DEFAULT_ALLOWED_OVERLAP,
        help="evaluation texts that may occur in the bitext before the sweep refuses (the comparison's allowance)",
    )
    parser.add_argument("--out", default=None, help="default results/<design>-<model>/sweep")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs of background runs)")


def main(args: argparse.Namespace) -> None:
    from .sweep import Sweep  # torch: only when a sweep runs

    methods = [m for m in parse_methods(args.methods) if m != "zero-shot"] if args.methods else None
    out = args.out or f"results/{args.design}-{args.model}/sweep"
    sweep = Sweep(
        out,
        langs=parse_langs(args.langs) if args.langs else None,
        model=args.model,
        preset_name=args.preset,
        methods=methods,
        seed=args.seed,
        threads=args.threads,
        allow_overlap=args.allow_overlap,
        progress=not args.no_progress,
        jobs=args.jobs,
        design=args.design,
        steps=args.steps,
        freeze_word_embeddings=args.freeze_word_embeddings,
    )
    chosen = sweep.run_all()
    print(json.dumps(chosen, indent=2))
    print(f"results: {out}/chosen.json, {out}/sweep.md")
