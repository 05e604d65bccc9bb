"""Data-parallel training matches one process on the same global batch (issue #14.5).

The comparison runner trains OPTICAL on a small NTREX slice twice: in 2 CPU processes
(``torchrun --standalone --nproc_per_node 2``, gloo, this file as the worker script) and
in this one process, with the same global batch of 5 pairs (shares of 3 and 2 pairs: unequal, so
the per-process loss weighting matters). Dropout is switched off in both (each process would draw
its own masks, as in any DDP run). Asserted: every logged training loss and gradient norm (of the
*global* batch, logged once) within ``RTOL``, the same dev history within ``DEV_ATOL`` and the same
selected step, the cell's metrics within ``DEV_ATOL``, and one report line per cell, not one per process.
Measured on a 2-core CPU (5 steps): largest relative difference of the losses 8.4e-8 and of the
gradient norms 1.0e-7 for OPTICAL (1.6e-7 and 1.6e-7 for sentence-KD, same mechanism, left out to
keep the test short), dev MRRs identical — float summation order and padding to a shorter batch.
``RTOL`` = 1e-4 leaves a wide margin; the old code logged rank 0's share of the loss (3 of 5
pairs) and averaged unequal shares unweighted. The log holds a step's loss, terms and gradient norm at
``LOG_DIGITS`` significant digits (``methods/train_state.py``): two values that close may round to neighbouring
last digits, so the tolerance adds one unit of the last logged digit (``LOGGED_RTOL``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from optical_lab.io import read_jsonl
from optical_lab.methods.train_state import LOG_DIGITS

RTOL = 1e-4
LOGGED_RTOL = 10.0 ** (1 - LOG_DIGITS)  # one unit of the last logged digit, relative to the value
DEV_ATOL = 1e-6
METHODS = ["optical"]


def no_dropout(encoder):
    for module in encoder.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return encoder


def make_runner(out, base):
    from test_compare import SmallTask

    from optical_lab.experiments.plan import ComparePlan
    from optical_lab.experiments.runner import Runner
    from optical_lab.methods import preset

    config = preset("tiny", steps=5, batch_size=5, eval_every=1, mixed_precision="no", max_train_pairs=None)
    plan = ComparePlan(langs=["hau"], methods=METHODS, folds=1, seeds=1, train=config, threads=1)
    runner = Runner(plan, out, task=SmallTask(sentence_task=False), progress=False)  # CLIR only: seconds
    runner._base = base
    return runner


def worker(out: str) -> None:
    """One process of the 2-process run (started by torchrun)."""
    from optical_lab.models import Encoder

    torch.set_num_threads(1)
    base = no_dropout(Encoder.load("minilm", device="cpu", max_length=128))
    base.requires_grad_(False)
    runner = make_runner(out, base)
    assert runner.accelerator.num_processes == 2
    runner.run()


def _log(folder: Path, event: str) -> list[dict]:
    return [line for line in read_jsonl(folder / "train_log.jsonl") if line["event"] == event]


def test_two_processes_follow_the_one_process_trajectory(tmp_path, teacher):
    two, one = tmp_path / "two", tmp_path / "one"
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), str(Path(__file__).parent)]),
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", __file__, str(two)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [line for line in done.stdout.splitlines() if line.startswith("hau ")]
    assert len(reports) == len(METHODS), done.stdout  # one report per cell, not one per process

    base = no_dropout(teacher.copy())
    base.requires_grad_(False)
    runner = make_runner(one, base)
    assert runner.accelerator.num_processes == 1
    runner.run()

    for method in METHODS:
        a, b = (root / "runs/hau" / method / "fold0-seed0" for root in (two, one))
        train_a, train_b = _log(a, "train"), _log(b, "train")
        assert [r["step"] for r in train_a] == [r["step"] for r in train_b] == [1, 2, 3, 4, 5]  # logged once
        for ra, rb in zip(train_a, train_b):
            assert set(ra) == set(rb)
            # the loss, its terms, the count of unconverged OT problems, the schedule, the gradient norm
            # (the plan diagnostics token_cos/plan_entropy are token-weighted: pooled approximately)
            for key in ("loss", "ot_foreign", "ot_english", "ot_not_converged", "lr", "grad_norm"):
                assert ra[key] == pytest.approx(rb[key], rel=RTOL + LOGGED_RTOL, abs=1e-9), (method, key, ra, rb)
        dev_a, dev_b = _log(a, "dev"), _log(b, "dev")
        assert [r["dev_mrr"] for r in dev_a] == pytest.approx([r["dev_mrr"] for r in dev_b], abs=DEV_ATOL)
        done_a, done_b = (json.loads((f / "done.json").read_text()) for f in (a, b))
        assert done_a["best_step"] == done_b["best_step"]
        for task, metrics in done_b["metrics"].items():
            assert done_a["metrics"][task] == pytest.approx(metrics, abs=DEV_ATOL), (method, task)


def test_accelerate_launch_cpu_with_several_processes_is_refused(monkeypatch):
    # `accelerate launch --cpu --num_processes 2` silently ran ONE process: it sets a rendezvous
    # address but starts no second process (no WORLD_SIZE)
    from optical_lab.data import DataError
    from optical_lab.methods.trainer import make_accelerator

    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(DataError, match="starts one process"):
        make_accelerator("no")
    monkeypatch.delenv("MASTER_ADDR")
    assert make_accelerator("no").num_processes == 1  # a plain `accelerate launch --cpu`: fine


if __name__ == "__main__":
    worker(sys.argv[1])
