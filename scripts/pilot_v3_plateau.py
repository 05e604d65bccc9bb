"""Dev-only pilot that sets protocol v3's training cap (docs/protocol_v3.md, "Train to a plateau").

Protocol v2 selected its cap (300 steps) in 70 of 75 cells: its students were still improving. Before v3 is
registered, this pilot trains the two arms v2 found slowest to converge on dev — OPTICAL (v2's dev-chosen
settings, with the solved Sinkhorn of ot/spec.py) and translate-train — on one selection language's MAFAND-MT
train bitext for ``--steps`` steps with no early stop, scoring dev MRR every 50 steps. Only MAFAND-MT dev is
scored: no evaluation collection is loaded. The curves (``train_log.jsonl`` per arm) decide the cap, patience
and min_delta the protocol registers; the protocol cites this folder.

    python scripts/pilot_v3_plateau.py --lang swa --steps 2000 --out results/v3-pilot
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from optical_lab.data.mafand import load_mafand
from optical_lab.experiments.records import environment
from optical_lab.io import write_json
from optical_lab.methods.config import preset
from optical_lab.methods.teacher import FrozenTeacher
from optical_lab.methods.trainer import train_student
from optical_lab.models.encoder import Encoder

# v2's dev-chosen settings (results/v2-minilm/sweep/chosen.json), with the solved Sinkhorn (SinkhornSpec defaults)
ARMS = {
    "optical": dict(
        lr=1e-3,
        ot_variant="both",
        epsilon=0.02,
        english_weight=1.0,
        n_iters=1000,
        ot_early_exit=True,
        ot_eps_scaling=0.5,
    ),
    "translate-train": dict(lr=3e-4),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lang", default="swa")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--out", default="results/v3-pilot")
    args = parser.parse_args()
    torch.set_num_threads(1)
    train, dev = load_mafand(args.lang, "train"), load_mafand(args.lang, "dev")
    for arm in args.arms.split(","):
        out = Path(args.out) / args.lang / arm
        if (out / "done.json").exists():
            continue
        out.mkdir(parents=True, exist_ok=True)
        config = preset("v2", steps=args.steps, warmup_steps=100, eval_every=50, patience=0, **ARMS[arm])
        teacher = Encoder.load("minilm", device="cpu")
        frozen = FrozenTeacher(teacher, max_length=config.max_length)
        _, _, result = train_student(teacher, frozen, arm, train, dev, config, out_dir=out)
        write_json({"config": config.to_dict(), "environment": environment()}, out / "config.json")
        write_json({"best_step": result.best_step, "best_dev_mrr": result.best_dev_mrr}, out / "done.json")
        print(arm, json.dumps({"best_step": result.best_step, "best_dev_mrr": result.best_dev_mrr}))


if __name__ == "__main__":
    main()
