"""How much does scoring retrieval in bf16 move the evaluation? (zero-shot, as the v2 grids evaluate)

Before 2026-11-27 the comparison runner evaluated inside its bf16 autocast region, so on a machine where
``auto`` means bf16 the query-document products of every evaluation were bf16 (cosines rounded to 8 bits
of mantissa: documents within ~0.004 tie, ordered by id). ``retrieval.dense.dense_search`` now scores in
float32. This script evaluates the zero-shot model of each (model, language) as a grid cell does
(``experiments.suite.evaluate_everywhere`` under the run's autocast, fold 0 of the ``ntrex`` task plus
FLORES sentences) twice: with the search's product under autocast, as the v2 grids were scored, and in
float32, and writes the per-metric means of both.

    python scripts/score_precision_check.py --models minilm,me5-small --langs hau,yor,swa \\
        --out results/score_precision.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import optical_lab.retrieval.dense as dense
from optical_lab.experiments.records import environment
from optical_lab.experiments.suite import evaluate_everywhere
from optical_lab.io import write_json
from optical_lab.methods.runtime import set_threads
from optical_lab.methods.trainer import make_accelerator
from optical_lab.models.encoder import Encoder
from optical_lab.tasks.registry import get_task

METRICS = ("MRR@10", "acc@1")
FLOAT32_SEARCH = dense.dense_search


def autocast_search(query_embeddings, doc_embeddings, query_ids, doc_ids, k=100, block=1024):
    """``dense_search`` as it was before 2026-11-27: the product in whatever precision autocast gives it."""
    k = min(k, len(doc_ids))
    run = {}
    for start in range(0, len(query_ids), block):
        scores = query_embeddings[start : start + block] @ doc_embeddings.T
        top = torch.topk(scores, k, dim=1)
        for row, qid in enumerate(query_ids[start : start + block]):
            run[qid] = {doc_ids[j]: float(s) for s, j in zip(top.values[row].tolist(), top.indices[row].tolist())}
    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="minilm,me5-small")
    parser.add_argument("--langs", default="hau,yor,swa")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/score_precision.json"))
    args = parser.parse_args(argv)
    threads = set_threads(args.threads)
    accelerator = make_accelerator("auto")
    out = {"precision": accelerator.mixed_precision, "threads": threads, "environment": environment(), "cells": []}
    task, evals = get_task("ntrex"), {"flores-sentences": get_task("flores-sentences")}
    for model in args.models.split(","):
        encoder = Encoder.load(model, device=accelerator.device)
        encoder.requires_grad_(False)
        for lang in args.langs.split(","):
            fold = task.folds(lang, 1, 0)[0]
            means = {}
            for name, search in (("autocast", autocast_search), ("float32", FLOAT32_SEARCH)):
                dense.dense_search = search
                try:
                    with accelerator.autocast():
                        results = evaluate_everywhere(task, evals, lang, fold, 1, 0, encoder, encoder)
                finally:
                    dense.dense_search = FLOAT32_SEARCH
                means[name] = {f"{sub}:{m}": float(r.per_query[m].mean()) for sub, r in results.items()
                               for m in METRICS if m in r.per_query.columns}
            row = {"model": model, "lang": lang, **means,
                   "difference": {k: means["autocast"][k] - means["float32"][k] for k in means["float32"]}}
            out["cells"].append(row)
            print(json.dumps({k: row[k] for k in ("model", "lang", "difference")}), flush=True)
    write_json(out, args.out)


if __name__ == "__main__":
    main()
