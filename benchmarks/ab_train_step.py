"""Whole sentence-KD training steps of this tree against an earlier revision's, interleaved in one process.

A step-time change of a few percent is invisible in separate runs on a shared machine (other processes
move the time of a step by 5-20 %). Here both versions train in one process, 1 thread, step for step:
each version its own copy of MiniLM and its own AdamW, the same batches (NTREX ``--lang`` fold 0, the
first ``--batches`` length-grouped batches, or random ones with ``--random``, in turn), the same seed
before every step, the order of the two alternating. The reference is ``--against``'s unpadded forward
(``optical_lab/models/unpadded.py`` loaded from git) with accelerate's ``clip_grad_norm_`` (what the
trainer called before :func:`optical_lab.methods.optimizer.clip_gradients`); the rest is this tree's
:func:`~optical_lab.methods.trainer.train_step`. Reported: the reference's / this tree's CPU seconds, per
step (median of the per-step ratios; sum and best of each), and whether the two trained alike: the
same losses and gradient norms, bit for bit or not, and the largest weight difference at the end.

    python benchmarks/ab_train_step.py [--against fb94f4f] [--steps 40] [--batches 4] [--random]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from optical_lab.data import document_folds, fold_bitext, load_ntrex
from optical_lab.methods import TrainConfig, build_objective
from optical_lab.methods import trainer as trainer_module
from optical_lab.methods.accelerator import make_accelerator
from optical_lab.methods.batches import batch_indices
from optical_lab.methods.optimizer import make_optimizer, make_trainable
from optical_lab.methods.runtime import cpu_description, keep_freed_memory
from optical_lab.methods.teacher import FrozenTeacher
from optical_lab.models import Encoder
from optical_lab.models import encoder as encoder_module

MODULE = "optical_lab/models/unpadded.py"


def module_at(revision: str):
    """``optical_lab.models.unpadded`` as it was at ``revision`` (read with ``git show``)."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(["git", "show", f"{revision}:{MODULE}"], cwd=root, check=True, capture_output=True).stdout
    path = Path(tempfile.mkdtemp()) / "unpadded_reference.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("unpadded_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def accelerate_clipping(accelerator, params, max_norm: float) -> float:
    return float(accelerator.clip_grad_norm_(params, max_norm))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="fb94f4f", help="the reference revision")
    parser.add_argument("--lang", default="hau")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per version (after 2 untimed)")
    parser.add_argument("--batches", type=int, default=4, help="the first N training batches, in turn")
    parser.add_argument("--random", action="store_true", help="random batches instead of length-grouped ones")
    args = parser.parse_args()
    keep_freed_memory()
    torch.set_num_threads(1)
    reference = module_at(args.against)
    config = TrainConfig(progress=False, mixed_precision="no", max_length=64)
    teacher = Encoder.load("minilm", device="cpu")
    corpus = load_ntrex(args.lang)
    bitext = fold_bitext(corpus, document_folds(corpus.doc_ids, k=2, seed=0)[0].train)
    lengths = None if args.random else [len(f) for f in bitext.foreign]
    batches = [
        batch_indices(s, len(bitext), config.batch_size, config.seed, lengths) for s in range(1, args.batches + 1)
    ]
    frozen = FrozenTeacher(teacher, config.max_length)
    frozen.precompute([bitext.english[i] for batch in batches for i in batch])
    accelerator = make_accelerator("no")
    versions = {
        "reference": (reference.unpadded_forward, accelerate_clipping),
        "this tree": (encoder_module.unpadded_forward, trainer_module.clip_gradients),
    }
    runs = {}
    for name in versions:
        torch.manual_seed(0)
        student = make_trainable(teacher.copy(), config)
        runs[name] = dict(
            student=student, objective=build_objective("sentence-kd", config, bitext), seconds=[], logs=[]
        )
        runs[name]["optimizer"], runs[name]["scheduler"] = make_optimizer(student, config)
    try:
        for step in range(args.steps + 2):
            batch = batches[step % len(batches)]
            english, foreign = [bitext.english[i] for i in batch], [bitext.foreign[i] for i in batch]
            for name in list(versions)[:: 1 if step % 2 == 0 else -1]:
                encoder_module.unpadded_forward, trainer_module.clip_gradients = versions[name]
                run = runs[name]
                torch.manual_seed(1000 + step)
                tic = time.process_time()
                logs = trainer_module.train_step(
                    run["student"], frozen, run["objective"], english, foreign, run["optimizer"], run["scheduler"],
                    accelerator, config,
                )  # fmt: skip
                run["seconds"].append(time.process_time() - tic)
                run["logs"].append(logs)
    finally:
        encoder_module.unpadded_forward, trainer_module.clip_gradients = versions["this tree"]
    old, new = (runs[name]["seconds"][2:] for name in versions)
    ratios = [a / b for a, b in zip(old, new)]
    same = runs["reference"]["logs"] == runs["this tree"]["logs"]
    weights = zip(runs["reference"]["student"].parameters(), runs["this tree"]["student"].parameters())
    largest = max(float((a.detach() - b.detach()).abs().max()) for a, b in weights)
    print(f"CPU: {cpu_description()}; torch {torch.__version__}, 1 thread; load average {os.getloadavg()}")
    print(f"reference {args.against}; {'random' if args.random else 'length-grouped'} batches x{args.batches}")
    print(f"{args.steps} timed steps per version; median step: reference {statistics.median(old):.3f} s, "
          f"this tree {statistics.median(new):.3f} s")  # fmt: skip
    print(f"reference / this tree: median of per-step ratios {statistics.median(ratios):.4f}, "
          f"of sums {sum(old) / sum(new):.4f}, of best steps {min(old) / min(new):.4f}")  # fmt: skip
    print(f"losses and gradient norms bit-identical: {same}; largest weight difference at the end {largest:.2e}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
