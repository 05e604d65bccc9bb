"""me5-small vs minilm: encode throughput and one training step, measured in the same run.

    python benchmarks/bench_backbones.py                      # prints a table, writes RESULTS_backbones.md
    python benchmarks/bench_backbones.py --n 128 --repeats 3  # quicker
    python benchmarks/bench_backbones.py --threads 1          # steadier when other jobs share the CPUs

* **encode**: ``Encoder.encode`` (no grad, batch 64, length-sorted) on ``--n`` real NTREX English
  sentences, ``role="passage"`` (me5-small gets its ``"passage: "`` prefix, minilm none); best of
  ``--repeats`` timed passes after a warm-up, reported as sentences/s.
* **train step**: forward + backward of an MSE loss on the mean-pooled, normalised embeddings of
  16 real sentences against fixed random unit targets (train mode, dropout on; no optimizer
  step); median of ``--steps`` steps after a warm-up.

Both backbones see the same sentences, threads and device, and the two are timed alternately
(minilm, me5-small, minilm, ...) so that other load on the machine affects both alike; the ratios
(me5-small / minilm) are the numbers to carry elsewhere, since absolute speeds depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optical_lab.data.ntrex import ntrex_file  # noqa: E402
from optical_lab.data.text_files import read_lines  # noqa: E402
from optical_lab.methods.runtime import cpu_description  # noqa: E402
from optical_lab.models import Encoder  # noqa: E402

BACKBONES = ("minilm", "me5-small")


def real_sentences(n: int) -> list[str]:
    lines = [line for line in read_lines(ntrex_file("eng")) if line.strip()]
    return lines[:n]


def encode_seconds(enc: Encoder, texts: list[str]) -> float:
    start = time.perf_counter()
    enc.encode(texts, role="passage", batch_size=64)
    return time.perf_counter() - start


def train_step_seconds(enc: Encoder, batch: list[str], target: torch.Tensor) -> float:
    """One forward + backward of the pooled-embedding MSE (train mode, so dropout is on)."""
    enc.train()
    enc.zero_grad(set_to_none=True)
    if enc.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    loss = F.mse_loss(enc(batch, role="passage"), target)
    loss.backward()
    if enc.device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    enc.zero_grad(set_to_none=True)
    enc.eval()
    return elapsed


def mean_tokens(enc: Encoder, texts: list[str]) -> float:
    batch = enc.tokenizer(enc._with_prefix(texts, "passage"), truncation=True, max_length=enc.max_length)
    return sum(len(ids) for ids in batch["input_ids"]) / len(texts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=256, help="sentences for the encode throughput")
    parser.add_argument("--repeats", type=int, default=3, help="timed encode passes (best is kept)")
    parser.add_argument("--steps", type=int, default=7, help="timed train steps (median is kept)")
    parser.add_argument("--device", default=None, help="cpu / cuda (default: cuda if available)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice); 1 gives stable numbers on a shared machine",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS_backbones.md")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    texts = real_sentences(args.n)
    batch = texts[:16]
    load_before = os.getloadavg()[0]
    encoders, rows = {}, {}
    for name in BACKBONES:
        start = time.perf_counter()
        encoders[name] = Encoder.load(name, device=args.device)
        rows[name] = {
            "load_s": time.perf_counter() - start,
            "params_m": sum(p.numel() for p in encoders[name].parameters()) / 1e6,
            "tokens": mean_tokens(encoders[name], texts),
            "encode_s": [],
            "step_s": [],
        }
    device = str(encoders["minilm"].device)
    targets = {
        name: F.normalize(torch.randn(len(batch), enc.dim, generator=torch.Generator().manual_seed(0)), dim=-1).to(
            enc.device
        )
        for name, enc in encoders.items()
    }
    for name, enc in encoders.items():  # warm-up (allocators, thread pools)
        enc.encode(texts[:64], role="passage")
        train_step_seconds(enc, batch, targets[name])
    # Alternate the two models on every repetition, so a change in machine load hits both alike.
    for _ in range(args.repeats):
        for name, enc in encoders.items():
            rows[name]["encode_s"].append(encode_seconds(enc, texts))
    # extra: me5-small with its 96M-weight word-embedding table frozen (no dense 384 MB gradient)
    me5_words = encoders["me5-small"].model.get_input_embeddings().weight
    frozen_s = []
    for _ in range(args.steps):
        for name, enc in encoders.items():
            rows[name]["step_s"].append(train_step_seconds(enc, batch, targets[name]))
        me5_words.requires_grad_(False)
        frozen_s.append(train_step_seconds(encoders["me5-small"], batch, targets["me5-small"]))
        me5_words.requires_grad_(True)
    for r in rows.values():
        r["encode"] = len(texts) / min(r["encode_s"])
        r["step"] = statistics.median(r["step_s"])
    load_after = os.getloadavg()[0]

    a, b = rows["me5-small"], rows["minilm"]
    lines = [
        "# Backbone speed: me5-small vs minilm",
        "",
        "Written by `"
        + " ".join(["python benchmarks/bench_backbones.py", *(argv if argv is not None else sys.argv[1:])])
        + "`: both models measured in the same run, alternating on every repetition.",
        "",
        f"Machine: {cpu_description()}, torch threads: {torch.get_num_threads()}, "
        f"device `{device}`, torch {torch.__version__}, Python {platform.python_version()}; "
        f"1-min load average {load_before:.1f} before, {load_after:.1f} after "
        "(other jobs shared the CPUs when above ~0.5).",
        f'Data: the first {len(texts)} NTREX-128 English sentences (train step: the first 16), `role="passage"`.',
        "",
        "| backbone | params (M) | mean tokens / sentence | encode (sentences/s, best pass) "
        "| train step, batch 16 (s, median) | load (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in BACKBONES:
        r = rows[name]
        lines.append(
            f"| {name} | {r['params_m']:.1f} | {r['tokens']:.1f} | {r['encode']:.1f} | {r['step']:.3f} "
            f"| {r['load_s']:.1f} |"
        )
    lines += [
        "",
        "Ratios (me5-small / minilm):",
        "",
        f"- encode throughput: **{a['encode'] / b['encode']:.2f}x** "
        f"(me5-small is {b['encode'] / a['encode']:.2f}x slower)",
        f"- train-step time: **{a['step'] / b['step']:.2f}x**",
        f"- train-step time with me5-small's word embeddings frozen: "
        f"**{statistics.median(frozen_s) / b['step']:.2f}x** ({statistics.median(frozen_s):.3f} s; "
        "the difference to the full step is the dense gradient of the 250k x 384 table)",
        f"- parameters: {a['params_m'] / b['params_m']:.2f}x (me5-small's 250k-token embedding table is 96M of its "
        f"{a['params_m']:.0f}M; the encoder body is 12 layers vs minilm's 6, same width 384)",
        "",
        "me5-small load time includes building the model into the cache only on the first run ever.",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    args.out.write_text(report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
