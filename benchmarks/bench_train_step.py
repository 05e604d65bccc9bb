"""Wall time of one OPTICAL training step relative to one sentence-KD step, same real batch, same run.

Both steps are the trainer's own :func:`optical_lab.methods.trainer.train_step` (student forward
on the foreign and the English sentences, loss, backward, clipping, AdamW, schedule) with the
default :class:`TrainConfig` (batch size, truncation, precision, English term), on the first
training batch of NTREX Hausa fold 0. Steps alternate between the two methods so that any load
on the machine hits both alike; the medians are compared. Target: ratio <= 1.3.

    python benchmarks/bench_train_step.py [--lang hau] [--repeats 11] [--threads 0]

Prints the table and writes it to ``benchmarks/RESULTS_train_step.md``.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from optical_lab.data import document_folds, fold_bitext, load_ntrex
from optical_lab.methods import TrainConfig, build_objective
from optical_lab.methods.runtime import set_threads
from optical_lab.methods.teacher import FrozenTeacher
from optical_lab.methods.trainer import batch_indices, make_accelerator, make_optimizer, train_step
from optical_lab.models import Encoder

TARGET = 1.3
METHODS = ("sentence-kd", "optical")
OTHERS = ("translate-train", "code-switch", "optical+aug")  # timed too, for information


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lang", default="hau")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="0 = auto (free cores)")
    parser.add_argument("--all-methods", action="store_true", help="also time the other trained methods")
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS_train_step.md")))
    args = parser.parse_args()

    threads = set_threads(args.threads)
    config = TrainConfig(progress=False)
    accelerator = make_accelerator(config.mixed_precision)
    teacher = Encoder.load("minilm", device=accelerator.device)
    corpus = load_ntrex(args.lang)
    fold = document_folds(corpus.doc_ids, k=2, seed=0)[0]
    bitext = fold_bitext(corpus, fold.train)
    index = batch_indices(1, len(bitext), config.batch_size, config.seed)  # ungrouped: a typical mix of lengths
    english, foreign = [bitext.english[i] for i in index], [bitext.foreign[i] for i in index]
    frozen = FrozenTeacher(teacher, config.max_length)
    frozen.precompute(english)  # as in training: the teacher's outputs are computed once per fold

    methods = METHODS + (OTHERS if args.all_methods else ())
    runs = {}
    for method in methods:
        torch.manual_seed(0)
        student = teacher.copy().requires_grad_(True)
        objective = build_objective(method, config, bitext)
        optimizer, scheduler = make_optimizer(student, config)
        runs[method] = (student, objective, optimizer, scheduler)
    times: dict[str, list[float]] = {m: [] for m in methods}
    for repeat in range(args.warmup + args.repeats):
        for method in methods:  # interleaved: machine load affects both methods alike
            student, objective, optimizer, scheduler = runs[method]
            tic = time.perf_counter()
            train_step(student, frozen, objective, english, foreign, optimizer, scheduler, accelerator, config)
            if repeat >= args.warmup:
                times[method].append(time.perf_counter() - tic)

    median = {m: statistics.median(t) for m, t in times.items()}
    ratio = median["optical"] / median["sentence-kd"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "# Training-step benchmark: OPTICAL vs sentence-KD",
        "",
        f"Command: `python benchmarks/bench_train_step.py --lang {args.lang} --repeats {args.repeats}"
        f"{' --all-methods' if args.all_methods else ''}`  ",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{threads} thread(s), precision {accelerator.mixed_precision}, 1-min load average at the end {load:.1f}  ",
        f"Batch: the first training batch of NTREX {args.lang} fold 0 — {len(english)} pairs, truncated to "
        f"{config.max_length} tokens; OT epsilon {config.epsilon}, {config.n_iters} Sinkhorn iterations, "
        f"English term weight {config.english_weight} for both methods.",
        "",
        "| method | median step (s) | min (s) | max (s) | steps timed | vs sentence-kd |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for method in methods:
        t = times[method]
        lines.append(f"| {method} | {median[method]:.3f} | {min(t):.3f} | {max(t):.3f} | {len(t)} | "
                     f"{median[method] / median['sentence-kd']:.2f}x |")
    verdict = "meets" if ratio <= TARGET else "MISSES"
    lines += ["", f"**Ratio optical / sentence-kd = {ratio:.2f}x** ({verdict} the target <= {TARGET}x).", ""]
    text = "\n".join(lines)
    print(text)
    Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
