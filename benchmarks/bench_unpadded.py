"""The student's forward + backward: Hugging Face's padded BERT forward vs the unpadded one (issue #31).

On the batches training draws (NTREX ``--lang`` fold 0, batch 16, ``--max-length`` tokens, the first
``--batches`` steps, length-grouped and random), each side (English, foreign) of each batch runs a
training-mode forward + backward of MiniLM (dropout on) in three ways, interleaved ``--repeats`` times:
Hugging Face's ``BertModel.forward`` (``unpad=False``), :func:`optical_lab.models.unpadded.unpadded_forward`
with Hugging Face's dropout draws (the default), and with the fast draws (``dropout_draws="fast"``). The
best of the repeats counts, in this process's CPU seconds (1 thread: on a quiet machine the wall time;
under load, less sensitive to other processes than the wall clock). Reported: the padding share of the
batches and the speed-up of each way over Hugging Face's, per batch and over all of an order's batches.

    python benchmarks/bench_unpadded.py [--lang hau] [--batches 3] [--repeats 3] [--max-length 64]

Prints the report and writes it to ``benchmarks/RESULTS_unpadded.md`` (``--out``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from optical_lab.data import document_folds, fold_bitext, load_ntrex
from optical_lab.methods.batches import batch_indices
from optical_lab.methods.runtime import allocator_description, cpu_description, keep_freed_memory
from optical_lab.models import Encoder

WAYS = {
    "Hugging Face": (False, "hugging-face"),
    "unpadded": (True, "hugging-face"),
    "unpadded, fast draws": (True, "fast"),
}


def cpu_seconds(encoder: Encoder, batch: dict, unpad: bool, draws: str) -> float:
    """CPU seconds of one training-mode forward + backward of ``encoder`` on ``batch``."""
    encoder.unpad, encoder.dropout_draws = unpad, draws
    encoder.zero_grad(set_to_none=True)
    tic = time.process_time()
    encoder.pool(encoder.run(batch)).sum().backward()
    return time.process_time() - tic


def encode_section(emit, encoder: Encoder, corpus, args) -> None:
    """Evaluation encoding (:meth:`Encoder.encode`: no gradient, batches of 64 sorted by length) of the first
    ``--encode`` NTREX sentences of each side at 128 tokens, padded vs unpadded, best CPU seconds of
    ``--repeats``."""
    emit(f"## Evaluation encoding: the first {args.encode} NTREX {args.lang} / English sentences, 128 tokens")
    emit()
    emit("| texts | padding share | Hugging Face (s) | unpadded (s) | speed-up |")
    emit("|---|---:|---:|---:|---:|")
    encoder.max_length = 128
    for name, texts in ((args.lang, corpus.target[: args.encode]), ("English", corpus.english[: args.encode])):
        tokenized = encoder.pretokenize(list(texts), batch_size=64)
        real = sum(int(b["attention_mask"].sum()) for b in tokenized.batches)
        share = 1 - real / sum(b["attention_mask"].numel() for b in tokenized.batches)
        best = {}
        for _ in range(args.repeats):
            for unpad in (False, True):
                encoder.unpad = unpad
                tic = time.process_time()
                encoder.encode(tokenized)
                best[unpad] = min(best.get(unpad, float("inf")), time.process_time() - tic)
        emit(f"| {name} | {share:.0%} | {best[False]:.2f} | {best[True]:.2f} | {best[False] / best[True]:.2f}x |")
    emit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lang", default="hau")
    parser.add_argument("--batches", type=int, default=3, help="training steps' batches per order")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (the best counts)")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--encode", type=int, default=384, help="sentences per side of the encoding section")
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS_unpadded.md")))
    args = parser.parse_args()
    keep_freed_memory()
    torch.set_num_threads(1)
    lines: list[str] = []

    def emit(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    emit("# Unpadded vs Hugging Face BERT forward + backward (MiniLM, training mode)")
    emit()
    emit(
        f"Command: `python benchmarks/bench_unpadded.py --lang {args.lang} --batches {args.batches} "
        f"--repeats {args.repeats} --max-length {args.max_length} --encode {args.encode}`  "
    )
    emit(f"CPU: {cpu_description()}  ")
    emit(
        f"Allocator: {allocator_description()}; torch {torch.__version__}, 1 thread; at start: load average "
        + " ".join(f"{v:.2f}" for v in os.getloadavg())
    )
    emit()
    encoder = Encoder.load("minilm", device="cpu", max_length=args.max_length).train()
    corpus = load_ntrex(args.lang)
    bitext = fold_bitext(corpus, document_folds(corpus.doc_ids, k=2, seed=0)[0].train)
    lengths = [len(f) for f in bitext.foreign]
    emit(
        "| batches | batch | side | shape | padding share | "
        + " | ".join(f"{w} (s)" for w in WAYS)
        + " | unpadded speed-up | with fast draws |"
    )
    emit("|---|---:|---|---|---:|" + "---:|" * (len(WAYS) + 2))
    totals = {}
    for order, grouped in (("grouped", True), ("random", False)):
        total = dict.fromkeys(WAYS, 0.0)
        for step in range(1, args.batches + 1):
            index = batch_indices(step, len(bitext), 16, 0, lengths if grouped else None)
            for side in ("english", "foreign"):
                batch = encoder.tokenize([getattr(bitext, side)[i] for i in index])
                best = {way: float("inf") for way in WAYS}
                for _ in range(args.repeats):
                    for way, (unpad, draws) in WAYS.items():
                        best[way] = min(best[way], cpu_seconds(encoder, batch, unpad, draws))
                for way in WAYS:
                    total[way] += best[way]
                mask = batch["attention_mask"]
                base = best["Hugging Face"]
                emit(
                    f"| {order} | {step} | {side} | {tuple(mask.shape)} | {1 - mask.float().mean():.0%} | "
                    + " | ".join(f"{best[w]:.3f}" for w in WAYS)
                    + f" | {base / best['unpadded']:.2f}x | {base / best['unpadded, fast draws']:.2f}x |"
                )
        totals[order] = total
    emit()
    for order, total in totals.items():
        base = total["Hugging Face"]
        emit(
            f"- **{order} batches**: unpadded {base / total['unpadded']:.2f}x, with fast dropout draws "
            f"{base / total['unpadded, fast draws']:.2f}x Hugging Face's forward + backward "
            "(sum of the best CPU seconds)"
        )
    emit()
    encode_section(emit, encoder, corpus, args)
    emit(f"- at the end: load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
