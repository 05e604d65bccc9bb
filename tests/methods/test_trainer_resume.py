"""The training loop: batches, model selection, and resume after a real SIGKILL.

The kill test runs the trainer in a subprocess on a tiny randomly initialised BERT (same
tokenizer as the teacher) so each run takes seconds, kills it with SIGKILL after a checkpoint,
resumes it, and compares it with an uninterrupted run: same step count, bit-identical final
weights, optimizer state and per-step losses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import tiny_bert
import torch

from optical_lab.methods.batches import batch_indices
from optical_lab.methods.checkpoint import read_checkpoint
from optical_lab.methods.train_state import _State

SCRIPT = textwrap.dedent("""
    import sys, time, torch
    sys.path.insert(0, TINY_BERT_DIR)
    from tiny_bert import hau_pairs, tiny_encoder
    from optical_lab.methods import TrainConfig, Trainer, build_objective

    out, delay = sys.argv[1], float(sys.argv[2])
    every_s = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    torch.set_num_threads(1)
    teacher = tiny_encoder(layers=2)
    train, dev = hau_pairs(48)
    # checkpoint_seconds=0: a checkpoint every 2 steps (deterministic), instead of by wall clock
    cfg = TrainConfig(steps=14, batch_size=4, max_length=24, warmup_steps=2, eval_every=4, checkpoint_every=2,
                      checkpoint_seconds=every_s, keep_checkpoint=True, max_dev_pairs=12, mixed_precision="no",
                      progress=False).replace(n_iters=20)
    objective = build_objective("optical+aug", cfg, train)
    if delay:  # slow the steps down (not the maths) so the test can kill the run mid-way
        forward = objective.forward
        objective.forward = lambda *a: (time.sleep(delay), forward(*a))[1]
    Trainer(teacher.copy(), teacher, objective, train, dev, cfg, out_dir=out).train()
""").replace("TINY_BERT_DIR", repr(str(tiny_bert.HERE)))


def _run(script: Path, out: Path, delay: float, every_s: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": "0", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen(
        [sys.executable, str(script), str(out), str(delay), str(every_s)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _train_log(folder: Path) -> list[dict]:
    lines = (folder / "train_log.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines if line.strip()]


def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    straight, killed = tmp_path / "straight", tmp_path / "killed"

    reference = _run(script, straight, 0.0)
    victim = _run(script, killed, 0.4)
    # wait for the second checkpoint (step 4) to be on disk, then kill without warning
    deadline = time.time() + 240
    while time.time() < deadline:
        log = killed / "train_log.jsonl"
        if (
            (killed / "checkpoint.pt").exists()
            and log.exists()
            and any(json.loads(l)["step"] >= 5 for l in log.read_text().splitlines() if l.strip())
        ):
            break
        assert victim.poll() is None, victim.stdout.read()
        time.sleep(0.05)
    assert victim.poll() is None, "the run finished before it could be killed"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert not (killed / "train_summary.json").exists()
    interrupted_at = max(r["step"] for r in _train_log(killed))
    assert 4 < interrupted_at < 14

    resumed = _run(script, killed, 0.0)
    assert resumed.wait(timeout=300) == 0, resumed.stdout.read()
    assert reference.wait(timeout=300) == 0, reference.stdout.read()

    a = json.loads((straight / "train_summary.json").read_text())
    b = json.loads((killed / "train_summary.json").read_text())
    assert a["steps"] == b["steps"] == 14
    assert a["resumed_from"] is None and b["resumed_from"] is not None and b["resumed_from"] % 2 == 0
    assert (a["best_step"], a["dev_history"]) == (b["best_step"], b["dev_history"])
    # the log of the resumed run has each step once, with the same losses
    assert _train_log(straight) == _train_log(killed)

    ca = read_checkpoint(straight / "checkpoint.pt")  # weights_only=True: tensors and plain data only
    cb = read_checkpoint(killed / "checkpoint.pt")
    assert ca["step"] == cb["step"] == 14
    for key in ("student", "best_state"):
        assert ca[key].keys() == cb[key].keys()
        for name in ca[key]:
            assert torch.equal(ca[key][name], cb[key][name]), (key, name)
    for sa, sb in zip(ca["optimizer"]["state"].values(), cb["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not list(killed.glob("*.tmp"))  # atomic writes leave no temporary files


def _steps_logged(folder: Path) -> int:
    log = folder / "train_log.jsonl"
    if not log.exists():
        return 0
    return max([json.loads(line)["step"] for line in log.read_text().splitlines() if line.strip()], default=0)


def test_sigterm_checkpoints_the_last_step_and_resumes(tmp_path):
    """By wall clock (here: never within the run), so the only checkpoint is the one SIGTERM asks for:
    written after the step in flight, then the process ends as SIGTERM ends it; the resumed run
    continues from exactly that step."""
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    out = tmp_path / "run"
    victim = _run(script, out, 0.3, every_s=3600.0)
    deadline = time.time() + 240
    while _steps_logged(out) < 3 and time.time() < deadline:
        assert victim.poll() is None, victim.stdout.read()
        time.sleep(0.05)
    victim.send_signal(signal.SIGTERM)
    assert victim.wait(timeout=60) == -signal.SIGTERM
    stopped_at = _steps_logged(out)
    assert 3 <= stopped_at < 14
    assert read_checkpoint(out / "checkpoint.pt")["step"] == stopped_at  # no step lost
    assert not (out / "train_summary.json").exists()

    resumed = _run(script, out, 0.0, every_s=3600.0)
    assert resumed.wait(timeout=300) == 0, resumed.stdout.read()
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["resumed_from"] == stopped_at and summary["steps"] == 14
    assert summary["checkpoints_written"] == 1  # the final one (keep_checkpoint), none by the clock
    assert [r["step"] for r in _train_log(out) if r["event"] == "train"] == list(range(1, 15))


def test_batches_are_a_pure_function_of_seed_and_step():
    n, b = 23, 4
    lengths = [(i * 7) % 11 for i in range(n)]
    for grouped in (None, lengths):
        epoch = [i for step in range(1, 7) for i in batch_indices(step, n, b, seed=3, lengths=grouped)]
        assert sorted(epoch) == list(range(n))  # each pair once per epoch
        assert batch_indices(8, n, b, 3, grouped) == batch_indices(8, n, b, 3, grouped)
        assert batch_indices(1, n, b, 3, grouped) != batch_indices(1, n, b, 4, grouped)
    spread = [
        max(lengths[i] for i in batch) - min(lengths[i] for i in batch)
        for batch in (batch_indices(s, n, b, 3, lengths) for s in range(1, 7))
    ]
    assert sum(spread) < sum(
        max(lengths[i] for i in bb) - min(lengths[i] for i in bb)
        for bb in (batch_indices(s, n, b, 3) for s in range(1, 7))
    )


def test_model_selection_keeps_the_best_dev_state():
    model = torch.nn.Linear(2, 2)
    state = _State()
    for step, score in [(0, 0.5), (4, 0.7), (8, 0.6)]:
        with torch.no_grad():
            model.weight.fill_(step)
        state.record(step, score, model, patience=2)
    assert state.best_step == 4 and state.best_score == 0.7
    assert torch.all(state.best_state["weight"] == 4)
    assert not state.stopped
    state.record(12, 0.65, model, patience=2)
    assert state.stopped  # two evaluations without improvement
