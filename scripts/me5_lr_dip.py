"""Why did me5-small translate-train at lr 1e-5 fall from dev MRR 0.74 to 0.18 (v2 sweep, dev only)?

Re-runs the first steps of the v2 sweep's translate-train setting (preset v2: warm-up 30 steps, linear
decay to step 300, batch 16, 128 tokens, word-embedding table frozen, retrieval prefixes, MAFAND-MT hau
train) on this CPU, in float32 (``--precision bf16``: under bf16 autocast, as v2 ran), scoring the dev
bitext far more often than the sweep did (every ``--eval-every`` steps), and logs with each dev score what
the student's foreign "passage" embeddings do (no evaluation collection is read):

* ``dev_mrr``: the trainer's dev score (teacher English ``query:`` -> student foreign ``passage:``);
* ``dev_mrr_centred``: the same after removing each side's mean embedding over the dev set (a ranking
  that ignores one shared direction);
* ``cos_to_mean`` mean / std over dev documents: cosine of each student document to the untrained
  student's mean document direction (how much of the shared "e5 cone" component it keeps);
* ``cos_between`` : mean cosine between two different student dev documents (anisotropy);
* ``loss``: mean training InfoNCE over the steps since the last evaluation.

    python scripts/me5_lr_dip.py --lr 1e-5 --temperature 0.05 --steps 100 --out results/v2-me5-small/dev-checks/dip

One JSON file per setting, written after every evaluation (``<out>/lr<lr>-t<temperature>.json``);
``--table <out>`` prints them as one markdown table.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate.utils import set_seed

from optical_lab.data.mafand import load_mafand
from optical_lab.io import write_json
from optical_lab.methods import build_objective
from optical_lab.methods.accelerator import make_accelerator
from optical_lab.methods.batches import batch_indices
from optical_lab.methods.config import preset
from optical_lab.methods.optimizer import make_optimizer, make_trainable
from optical_lab.methods.runtime import cpu_description, set_threads
from optical_lab.methods.teacher import FrozenTeacher
from optical_lab.methods.trainer import StepModule, retrieval_mrr, train_step
from optical_lab.models.encoder import Encoder


@torch.no_grad()
def geometry(queries: torch.Tensor, documents: torch.Tensor, mean_direction: torch.Tensor) -> dict[str, float]:
    """Dev scores and the shape of the student's document embeddings (see the module docstring)."""
    to_mean = documents @ mean_direction
    gram = documents @ documents.T
    n = len(documents)
    return {
        "dev_mrr": retrieval_mrr(queries, documents),
        "dev_mrr_centred": retrieval_mrr(
            F.normalize(queries - queries.mean(0), dim=-1), F.normalize(documents - documents.mean(0), dim=-1)
        ),
        "cos_to_mean": float(to_mean.mean()),
        "cos_to_mean_std": float(to_mean.std()),
        "cos_between": float((gram.sum() - gram.diagonal().sum()) / (n * (n - 1))),
    }


def _encode(student: Encoder, documents, accelerator) -> torch.Tensor:
    with accelerator.autocast():
        return student.encode(documents)


def run(args: argparse.Namespace) -> None:
    threads = set_threads(args.threads)
    config = preset(
        "v2",
        lr=args.lr,
        temperature=args.temperature,
        freeze_word_embeddings=True,
        mixed_precision=args.precision,
        max_dev_pairs=args.dev_pairs,
        progress=False,
    )
    accelerator = make_accelerator(config.mixed_precision)
    set_seed(config.seed)
    teacher = Encoder.load(args.model, device=accelerator.device)
    teacher.requires_grad_(False)
    # no target cache: each batch's targets are computed when it is drawn (the same values up to padding
    # round-off; caching all 3,098 training sentences first would cost more than the steps run here)
    frozen = FrozenTeacher(teacher, config.max_length, False, role=config.training_role)
    train, dev = load_mafand(args.lang, "train"), config.dev_sample(load_mafand(args.lang, "dev"))
    with accelerator.autocast():  # dev scored as the trainer scores it (in the run's precision)
        queries = frozen.encode(dev.english, role=config.dev_roles()[0])
    documents = teacher.pretokenize(dev.foreign, config.dev_roles()[1])
    student = make_trainable(teacher.copy(), config)
    encode = functools.partial(_encode, student, documents, accelerator)
    mean_direction = F.normalize(encode().mean(0), dim=0)
    optimizer, scheduler = make_optimizer(student, config)
    objective = build_objective("translate-train", config, train)
    model = StepModule(student, objective, frozen)
    lengths = [len(f) for f in train.foreign]
    suffix = "" if args.precision == "no" else f"-{args.precision}"  # float32 runs keep their first names
    out = Path(args.out) / f"lr{args.lr:g}-t{args.temperature:g}{suffix}.json"
    record = {
        "lang": args.lang,
        "model": args.model,
        "lr": args.lr,
        "temperature": args.temperature,
        "precision": accelerator.mixed_precision,
        "threads": threads,
        "cpu": cpu_description(),
        "config": config.to_dict(),
        "dev_pairs": len(dev),
        "evals": [{"step": 0, **geometry(queries, encode(), mean_direction)}],
    }
    print(json.dumps(record["evals"][-1]), flush=True)
    losses, start = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        batch = batch_indices(step, len(train), config.batch_size, config.seed, lengths)
        loss, _ = train_step(
            student,
            frozen,
            objective,
            [train.english[i] for i in batch],
            [train.foreign[i] for i in batch],
            optimizer,
            scheduler,
            accelerator,
            config,
            model=model,
        )
        losses.append(loss)
        if step % args.eval_every == 0:
            record["evals"].append(
                {
                    "step": step,
                    "lr_now": scheduler.get_last_lr()[0],
                    "loss": sum(losses) / len(losses),
                    **geometry(queries, encode(), mean_direction),
                    "seconds": round(time.perf_counter() - start, 1),
                }
            )
            losses = []
            print(json.dumps(record["evals"][-1]), flush=True)
            write_json(record, out)


def table(folder: Path) -> str:
    """Markdown: every evaluation of every setting written under ``folder``."""
    columns = ("dev_mrr", "dev_mrr_centred", "cos_to_mean", "cos_to_mean_std", "cos_between", "loss")
    lines = ["| lr | temperature | step | " + " | ".join(columns) + " |", "|---:|---:|---:|" + "---:|" * len(columns)]
    for path in sorted(folder.glob("lr*-t*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        for e in record["evals"]:
            values = " | ".join(f"{e[c]:.3f}" if c in e else "" for c in columns)
            lines.append(f"| {record['lr']:g} | {record['temperature']:g} | {e['step']} | {values} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, help="only print the markdown table of the settings under this folder")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--temperature", type=float, default=0.05)
    parser.add_argument("--steps", type=int, default=100, help="steps run (the schedule is the v2 one, to 300)")
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--dev-pairs", type=int, default=300)
    parser.add_argument(
        "--precision",
        default="no",
        choices=["no", "bf16"],
        help="autocast of training and dev encodes (the v2 sweep and grid ran bf16)",
    )
    parser.add_argument("--lang", default="hau")
    parser.add_argument("--model", default="me5-small")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="folder of the JSON files (required to train)")
    args = parser.parse_args(argv)
    if args.table:
        print(table(args.table))
    elif args.lr is None or args.out is None:
        parser.error("--lr and --out are required to train")
    else:
        run(args)


if __name__ == "__main__":
    main()
