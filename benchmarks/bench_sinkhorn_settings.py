"""Which solver settings reach the Sinkhorn tolerance cheapest on real OPTICAL problems (issue #31).

Trains OPTICAL at protocol v3's OT settings (epsilon 0.02, plain + centred cost, 128 tokens, batch 16,
lr 1e-3) on length-grouped MAFAND training batches for ``--steps`` steps with the fixed 50-iteration
solver, keeps the OT problems (cost, marginals) of the steps in ``--keep``, then solves all of them
with each setting of :data:`SETTINGS` (float32, 1 thread, envelope gradient, 2 rounds, the second
timed) and prints, per setting: total time, total iterations and the share of problems within
tolerance. ``STAGE_ITERS`` (iterations per epsilon-scaling stage) is set per row.

    python benchmarks/bench_sinkhorn_settings.py [--lang hau] [--steps 30] [--keep 1,2,5,10,20,30]
"""

from __future__ import annotations

import argparse
import importlib
import time

import torch

from optical_lab.data.mafand import load_mafand
from optical_lab.methods import build_objective, preset
from optical_lab.methods.runtime import cpu_description, set_threads
from optical_lab.methods.teacher import FrozenTeacher
from optical_lab.methods.trainer import batch_indices, make_accelerator, make_optimizer, make_trainable, train_step
from optical_lab.models import Encoder
from optical_lab.ot import sinkhorn

solver = importlib.import_module("optical_lab.ot.sinkhorn")
scaling = importlib.import_module("optical_lab.ot.epsilon_scaling")  # STAGE_ITERS lives there
FIXED = {"n_iters": 50, "early_exit": False, "eps_scaling": None}
# label -> (sinkhorn keywords, STAGE_ITERS)
SETTINGS = {
    "50 iterations (v2)": (FIXED, 3),
    "early exit, no scaling": ({"eps_scaling": None}, 3),
    "early exit, r 0.5 x 3 (default)": ({"eps_scaling": 0.5}, 3),
    "early exit, r 0.5 x 1": ({"eps_scaling": 0.5}, 1),
    "early exit, r 0.3 x 3": ({"eps_scaling": 0.3}, 3),
    "early exit, r 0.7 x 2": ({"eps_scaling": 0.7}, 2),
}


def capture(lang: str, steps: int, keep: set[int]) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The (C, a, b) of every OT solve of the training steps in ``keep``."""
    config = preset(
        "v2", lr=1e-3, ot_variant="both", epsilon=0.02, progress=False, mixed_precision="no", warmup_steps=0
    )
    bitext = load_mafand(lang, "train")
    teacher = Encoder.load("minilm")
    frozen, accelerator = FrozenTeacher(teacher, config.max_length), make_accelerator("no")
    student = make_trainable(teacher.copy(), config)
    objective = build_objective("optical", config, bitext)
    optimizer, scheduler = make_optimizer(student, config)
    lengths = [len(f) for f in bitext.foreign]
    problems, recording = [], [False]
    original = solver.sinkhorn

    def recorder(C, a, b, **kwargs):
        if recording[0]:
            problems.append((C.detach().clone(), a.clone(), b.clone()))
        return original(C, a, b, **kwargs)

    plan_module = importlib.import_module("optical_lab.ot.plan")
    plan_module.sinkhorn = recorder
    try:
        for step in range(1, steps + 1):
            index = batch_indices(step, len(bitext), config.batch_size, config.seed, lengths)
            recording[0] = step in keep
            train_step(
                student,
                frozen,
                objective,
                [bitext.english[i] for i in index],
                [bitext.foreign[i] for i in index],
                optimizer,
                scheduler,
                accelerator,
                config,
            )
    finally:
        plan_module.sinkhorn = original
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lang", default="hau")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--keep", default="1,2,5,10,20,30")
    args = parser.parse_args()
    set_threads(1)
    problems = capture(args.lang, args.steps, {int(k) for k in args.keep.split(",")})
    print(
        f"CPU: {cpu_description()}; torch {torch.__version__}, 1 thread; {len(problems)} batches of OT problems "
        f"({sum(len(C) for C, _, _ in problems)} problems) from training steps {args.keep} of MAFAND {args.lang}, "
        "epsilon 0.02, plain + centred cost, 128 tokens\n"
    )
    print("| setting | time (s) | iterations | within tolerance |")
    print("|---|---:|---:|---:|")
    default_stage = scaling.STAGE_ITERS
    for label, (options, stage) in SETTINGS.items():
        scaling.STAGE_ITERS = stage
        for timed in (False, True):
            tic, iterations, converged = time.perf_counter(), 0, 0
            for C, a, b in problems:
                out = sinkhorn(C, a, b, epsilon=0.02, grad="envelope", **options)
                iterations, converged = iterations + out.n_iters, converged + int(out.converged.sum())
            seconds = time.perf_counter() - tic
        total = sum(len(C) for C, _, _ in problems)
        print(f"| {label} | {seconds:.2f} | {iterations} | {converged / total:.3f} |")
    scaling.STAGE_ITERS = default_stage


if __name__ == "__main__":
    main()
