"""Where a training step's time goes: torch.profiler on one :func:`train_step`, CPU self time by kind.

The step is the trainer's own (student forward on the foreign and English sentences, loss, backward,
clipping, AdamW, schedule) on the first training batch of NTREX ``--lang`` fold 0 (random order, as
``bench_train_step.py`` times it; ``--grouped`` for the first length-grouped one), after two warm-up
steps, at 1 thread. Every profiled operator's self CPU time is put in one kind (first match in
:data:`KINDS`, by operator name): matrix products, dropout mask draws, element-wise work, the optimizer,
... so the share of the step that is not matmul can be read off (issue #31).

    python benchmarks/profile_step.py [--method sentence-kd] [--max-length 64] [--grouped] [--padded]

``--padded`` profiles Hugging Face's padded forward (``Encoder.unpad = False``) instead of the unpadded
one (:mod:`optical_lab.models.unpadded`); ``--dropout-draws fast`` the fast draws.
"""

from __future__ import annotations

import argparse
import collections
import os

import torch
from torch.profiler import ProfilerActivity, profile

from optical_lab.data import document_folds, fold_bitext, load_ntrex
from optical_lab.methods import TrainConfig, build_objective
from optical_lab.methods.runtime import cpu_description, keep_freed_memory
from optical_lab.methods.teacher import FrozenTeacher
from optical_lab.methods.trainer import batch_indices, make_accelerator, make_optimizer, make_trainable, train_step
from optical_lab.models import Encoder

# (kind, substrings of the operator names it holds), first match wins
KINDS = (
    ("matrix products (linear layers, attention)", ("addmm", "aten::mm", "bmm", "matmul")),
    ("dropout mask draws", ("bernoulli", "random_")),
    ("optimizer (AdamW)", ("adam",)),
    ("LayerNorm", ("layer_norm",)),
    ("gradient norm and clipping", ("vector_norm", "clip", "foreach")),
    ("GELU", ("gelu",)),
    ("softmax", ("softmax",)),
    ("embedding lookup and gradient", ("embedding",)),
    ("gather / scatter (unpadding)", ("index_select", "index_copy", "index_add")),
    ("fill, copy, concatenate", ("fill_", "zero_", "copy_", "cat", "clone", "contiguous", "empty")),
    ("element-wise arithmetic", ("aten::add", "aten::mul", "aten::div", "aten::sub", "where", "masked_fill")),
)


def kind(name: str) -> str:
    lowered = name.lower()
    return next((k for k, keys in KINDS if any(key in lowered for key in keys)), "other (dispatch, views, Python)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lang", default="hau")
    parser.add_argument("--method", default="sentence-kd")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--grouped", action="store_true", help="the first length-grouped batch")
    parser.add_argument("--padded", action="store_true", help="Hugging Face's padded forward")
    parser.add_argument("--dropout-draws", default="hugging-face", choices=["hugging-face", "fast"])
    parser.add_argument("--rows", type=int, default=15, help="operators listed")
    args = parser.parse_args()
    keep_freed_memory()
    torch.set_num_threads(1)
    config = TrainConfig(
        progress=False, mixed_precision="no", max_length=args.max_length, dropout_draws=args.dropout_draws
    )
    teacher = Encoder.load("minilm", device="cpu")
    corpus = load_ntrex(args.lang)
    bitext = fold_bitext(corpus, document_folds(corpus.doc_ids, k=2, seed=0)[0].train)
    lengths = [len(f) for f in bitext.foreign] if args.grouped else None
    index = batch_indices(1, len(bitext), config.batch_size, config.seed, lengths)
    english, foreign = [bitext.english[i] for i in index], [bitext.foreign[i] for i in index]
    frozen = FrozenTeacher(teacher, config.max_length)
    frozen.precompute(english)
    torch.manual_seed(0)
    student = make_trainable(teacher.copy(), config)
    student.unpad = not args.padded
    objective = build_objective(args.method, config, bitext)
    optimizer, scheduler = make_optimizer(student, config)
    accelerator = make_accelerator("no")

    def step():
        return train_step(student, frozen, objective, english, foreign, optimizer, scheduler, accelerator, config)

    for _ in range(2):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    by_kind = collections.Counter()
    for event in events:
        by_kind[kind(event.key)] += event.self_cpu_time_total
    print(f"CPU: {cpu_description()}; torch {torch.__version__}, 1 thread")
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for side, texts in (("english", english), ("foreign", foreign)):
        mask = teacher.tokenizer(texts, padding=True, truncation=True, max_length=args.max_length)["attention_mask"]
        real, shape = sum(map(sum, mask)), (len(mask), len(mask[0]))
        print(f"{side}: padded {shape}, {real} real tokens, padding share {1 - real / (shape[0] * shape[1]):.0%}")
    forward = "Hugging Face (padded)" if args.padded else f"unpadded, {args.dropout_draws} dropout draws"
    print(f"\n{args.method}, {args.max_length} tokens, {forward}: {total / 1e6:.3f} s of CPU self time")
    print("| kind | seconds | share |\n|---|---:|---:|")
    for name, micros in by_kind.most_common():
        print(f"| {name} | {micros / 1e6:.3f} | {micros / total:.1%} |")
    print()
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
