"""Would dev selection have chosen differently with the untrained student scored in float32?

Until 2026-11-27 the comparison runner scored the untrained student's dev MRR (step 0 of every trained
cell) inside its bf16 autocast region, where rounded-score ties count for the relevant document; every
later dev score was computed outside it (``methods.trainer.retrieval_mrr``, fixed since). This script
recomputes step 0 per language and fold through the runner's own (fixed) code path, from the results
folder's saved plan, and compares it with every finished trained cell's dev history:

* ``changes``: the cell kept step 0 but a trained step beats the float32 step-0 score (its selection,
  and so its evaluation, would differ: recompute the cell), or the reverse;
* otherwise the selection is the same model, and the cell's numbers stand (its log's step-0 dev value
  is the old bf16-scored one).

A cell that stopped early (``patience``) cannot be judged from its history (the inflated step 0 may have
stopped it): the script then stops with an error. The v2 grids train with ``patience=0``.

    python scripts/audit_step0.py results/v2-me5-small      # writes <results>/step0_audit.json

To audit cells as they were before a recompute, export that commit's folder and point ``--out`` back:

    git archive 4c62923 results/v2-me5-small | tar -x -C /tmp/before
    python scripts/audit_step0.py /tmp/before/results/v2-me5-small \
        --out results/v2-me5-small/step0_audit.json --note "cells as committed at 4c62923"

Reads only dev bitext (no evaluation collection is encoded).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from optical_lab.experiments.plan import plan_from_saved
from optical_lab.experiments.records import environment
from optical_lab.experiments.runner import Runner
from optical_lab.io import read_json, stored_exists, write_json


def audit(results: Path) -> dict:
    plan = plan_from_saved(json.loads((results / "config.json").read_text(encoding="utf-8")))
    runner = Runner(plan, results, progress=False)
    trained = [m for m in plan.methods if m != "zero-shot"]
    rows, fixed = [], {}
    for folder, lang, fold, method, seed, train, dev, source, frozen, size in runner.cells(
        [(m, "default") for m in trained], results / "runs"
    ):
        summary = folder / "train_summary.json"
        if not (folder / "done.json").exists() or not stored_exists(summary):  # plain or compacted
            continue
        key = f"{lang}/fold{fold.index}"
        if key not in fixed:
            fixed[key] = runner.initial_dev_score(frozen, dev)
        info = read_json(summary)
        history = info["dev_history"]
        if info.get("stopped_early") or not history or history[0][0] != 0:
            # an inflated step 0 may have stopped the run early: its history then says nothing of the rest
            raise SystemExit(
                f"{folder}: stopped early or no step-0 dev score; this audit cannot judge it (recompute the cell)"
            )
        recorded, steps = history[0], history[1:]
        best_trained = max(steps, key=lambda s: s[1]) if steps else None
        kept_step0 = info["best_step"] == 0
        would_keep = best_trained is None or fixed[key] >= best_trained[1]
        rows.append(
            {
                "cell": folder.relative_to(results).as_posix(),
                "step0_recorded": recorded[1],
                "step0_float32": fixed[key],
                "best_trained": best_trained,
                "selected_step": info["best_step"],
                "changes": kept_step0 != would_keep,
            }
        )
    return {
        "results": str(results),
        "step0_float32": fixed,
        "cells": len(rows),
        "changes": [r["cell"] for r in rows if r["changes"]],
        "rows": rows,
        "environment": environment(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="default: <results>/step0_audit.json")
    parser.add_argument("--note", default=None, help="recorded with the audit, e.g. which commit's cells it read")
    args = parser.parse_args(argv)
    out = audit(args.results) | ({"note": args.note} if args.note else {})
    write_json(out, args.out or args.results / "step0_audit.json")
    print(json.dumps({k: out[k] for k in ("step0_float32", "cells", "changes")}, indent=1))


if __name__ == "__main__":
    main()
