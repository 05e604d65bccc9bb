"""`optical-lab export RESULTS`: a results folder as plain TREC files any standard tool re-scores.

Every run the toolkit wrote under ``RESULTS`` (``<sub-task>.run`` or ``.run.gz``: comparison cells,
``optical-lab evaluate`` folders) is written uncompressed to ``--out`` (default ``RESULTS/trec``)
under one flat name, ``<lang>_<method>_<fold-seed>_<sub-task>.run`` (the folder path, ``/`` as
``_``), with the qrels it was scored against beside it (``.qrels``) and, when the task kept them,
its topics. ``index.tsv`` lists run, qrels and the toolkit's per-query scores of each, so that

    trec_eval -m recip_rank OUT/x.qrels OUT/x.run
    python -c "import ir_measures; ..."        # or ranx

re-score what the toolkit reported. Results written before the qrels were saved with the runs have
no qrels file: those runs are exported and listed with an empty qrels column (re-run
``optical-lab evaluate`` or the comparison to get them).

``--tensorboard LOGDIR`` also writes every training curve under ``RESULTS`` (each
``train_log.jsonl``: loss, its terms, learning rate, gradient norm, dev MRR) as TensorBoard event
files, one run per cell (``tensorboard --logdir LOGDIR``; needs ``pip install 'optical_lab[tensorboard]'``).
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import pandas as pd

from ..data.errors import DataError
from ..io import read_jsonl, stored_glob

SUFFIXES = (".run.gz", ".run")


def _read(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()


def _sibling(run: Path, suffix: str) -> Path | None:
    """``<sub-task><suffix>`` (or ``.gz``) beside a run file."""
    stem = run.name.removesuffix(".gz").removesuffix(".run")
    return next((p for p in (run.with_name(stem + suffix), run.with_name(stem + suffix + ".gz")) if p.is_file()), None)


def export(results: str | Path, out: str | Path | None = None) -> pd.DataFrame:
    """Write every run under ``results`` (and its qrels/topics) as plain TREC files; return the index."""
    results = Path(results)
    if not results.is_dir():
        raise DataError("no such results folder", path=results, fix="pass a folder written by compare or evaluate")
    out = Path(out) if out else results / "trec"
    runs = sorted(p for p in results.rglob("*.run*") if p.name.endswith(SUFFIXES) and out not in p.parents)
    if not runs:
        raise DataError(
            "no TREC run (*.run, *.run.gz) under this folder",
            path=results,
            fix="pass a folder written by `optical-lab compare` or `optical-lab evaluate`",
        )
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for run in runs:
        stem = "_".join(run.relative_to(results).with_name(run.name.removesuffix(".gz").removesuffix(".run")).parts)
        row = {"run": f"{stem}.run", "qrels": "", "topics": "", "per_query": ""}
        (out / row["run"]).write_bytes(_read(run))
        for key, suffix in (("qrels", ".qrels"), ("topics", ".topics.tsv")):
            found = _sibling(run, suffix)
            if found is not None:
                row[key] = f"{stem}{suffix}"
                (out / row[key]).write_bytes(_read(found))
        scores = _sibling(run, ".per_query.csv")
        row["per_query"] = str(scores.relative_to(results)) if scores else ""
        rows.append(row)
    index = pd.DataFrame(rows)
    index.to_csv(out / "index.tsv", sep="\t", index=False)
    return index


def write_tensorboard(results: str | Path, logdir: str | Path) -> int:
    """Every ``train_log.jsonl`` under ``results`` as TensorBoard scalars ``<event>/<field>`` by step,
    one run per cell (its folder path); returns the number of runs written."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:  # torch's writer needs the tensorboard package
        raise DataError(
            "TensorBoard event files need the tensorboard package", fix="pip install 'optical_lab[tensorboard]'"
        ) from exc
    results = Path(results)
    logs = stored_glob(results, "train_log.jsonl", recursive=True)  # plain or compacted (optical_lab.io)
    for log in logs:
        with SummaryWriter(log_dir=str(Path(logdir) / log.parent.relative_to(results))) as writer:
            for record in read_jsonl(log):
                for key, value in record.items():
                    if key not in ("step", "event", "seconds") and isinstance(value, (int, float)):
                        writer.add_scalar(f"{record.get('event', 'train')}/{key}", value, record["step"])
    return len(logs)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="a results folder (compare or evaluate)")
    parser.add_argument("--out", default=None, help="where the TREC files go (default RESULTS/trec)")
    parser.add_argument(
        "--tensorboard",
        default=None,
        metavar="LOGDIR",
        help="also write the training curves as TensorBoard event files under LOGDIR",
    )


def main(args: argparse.Namespace) -> None:
    index = export(args.results, args.out)
    out = Path(args.out) if args.out else Path(args.results) / "trec"
    without = int((index["qrels"] == "").sum())
    print(
        f"{len(index)} runs -> {out} (index.tsv)"
        + (f"; {without} without qrels (written before runs kept them: re-run to get them)" if without else "")
    )
    if args.tensorboard:
        count = write_tensorboard(args.results, args.tensorboard)
        print(f"{count} training curves -> {args.tensorboard} (tensorboard --logdir {args.tensorboard})")
