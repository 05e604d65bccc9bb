"""How much does scoring retrieval in bf16 move the evaluation? (zero-shot cells, exactly as a grid scores them)

Before 2026-11-27 the comparison runner evaluated inside its bf16 autocast region, so on a machine where
``auto`` means bf16 the query-document products of every evaluation were bf16 (cosines rounded to 8 bits
of mantissa: documents within ~0.004 tie, ordered by id). ``retrieval.dense.dense_search`` now scores in
float32. For a results folder, this script rebuilds the run from its saved ``config.json`` (the runner's
task, evaluation tasks, folds, teacher and encode batch size) and evaluates each language's zero-shot
cell twice under the run's autocast: with the search's product in autocast's precision, as the grid was
scored, and in float32. The first must reproduce the committed zero-shot cell (``matches_grid``: the
per-query means of its ``*.per_query.csv``), which checks that the comparison is the grid's own.

    python scripts/score_precision_check.py results/v2-me5-small      # -> <results>/score_precision.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch

import optical_lab.retrieval.dense as dense
from optical_lab.experiments.plan import plan_from_saved
from optical_lab.experiments.records import environment
from optical_lab.experiments.runner import Runner
from optical_lab.experiments.suite import evaluate_everywhere
from optical_lab.io import open_stored, stored_glob, write_json

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


def committed_means(cell: Path) -> dict[str, float]:
    """Per-metric means of a finished cell's per-query files (sub-task:metric)."""
    means = {}
    for path in stored_glob(cell, "*.per_query.csv"):
        table = pd.read_csv(open_stored(path))
        means.update({f"{path.name.split('.')[0]}:{m}": float(table[m].mean()) for m in METRICS if m in table})
    return means


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a comparison folder, e.g. results/v2-me5-small")
    parser.add_argument("--langs", default=None, help="default: the run's languages")
    args = parser.parse_args(argv)
    plan = plan_from_saved(json.loads((args.results / "config.json").read_text(encoding="utf-8")))
    runner = Runner(plan, args.results, progress=False)
    out = {
        "results": str(args.results),
        "model": plan.model,
        "precision": runner.accelerator.mixed_precision,
        "environment": environment(),
        "cells": [],
    }
    for lang in args.langs.split(",") if args.langs else plan.langs:
        fold = runner.task.folds(lang, plan.folds, plan.fold_seed)[0]
        means = {}
        for name, search in (("autocast", autocast_search), ("float32", FLOAT32_SEARCH)):
            dense.dense_search = search
            runner.teacher.clear()  # encode again: nothing memoised from the other scoring
            try:
                with runner.accelerator.autocast():  # as Runner.run_cell evaluates a zero-shot cell
                    results = evaluate_everywhere(
                        runner.task,
                        runner.eval_tasks,
                        lang,
                        fold,
                        plan.folds,
                        plan.fold_seed,
                        runner.teacher,
                        runner.teacher,
                    )
            finally:
                dense.dense_search = FLOAT32_SEARCH
            means[name] = {
                f"{sub}:{m}": float(r.per_query[m].mean())
                for sub, r in results.items()
                for m in METRICS
                if m in r.per_query.columns
            }
        grid = committed_means(args.results / "runs" / lang / "zero-shot" / f"fold{fold.index}-seed0")
        row = {
            "lang": lang,
            **means,
            "grid_zero_shot": grid,
            # (per-query files store 8 significant digits: means agree to ~1e-8)
            "matches_grid": all(
                abs(means["autocast"][k] - v) < 1e-6 for k, v in grid.items() if k in means["autocast"]
            ),
            "difference": {k: means["autocast"][k] - means["float32"][k] for k in means["float32"]},
        }
        out["cells"].append(row)
        print(json.dumps({k: row[k] for k in ("lang", "matches_grid", "difference")}), flush=True)
    write_json(out, args.results / "score_precision.json")


if __name__ == "__main__":
    main()
