"""A run whose step goes non-finite (protocol v3 deviation 2): with dev selection it stops there and returns its
best dev state so far, flagged; without dev selection it raises, as before."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_bert import hau_pairs, tiny_encoder

from optical_lab.io import read_json
from optical_lab.methods import TrainConfig, Trainer, build_objective
from optical_lab.methods.train_state import TrainingDiverged, TrainResult, _State

NAN_FROM = 6  # the first step whose loss is NaN


@pytest.fixture(scope="module")
def tiny():
    return (tiny_encoder(), *hau_pairs(32))


def _config(**changes) -> TrainConfig:
    base = dict(checkpoint_every=2, checkpoint_seconds=0, keep_checkpoint=True)
    return TrainConfig(
        steps=10,
        batch_size=4,
        max_length=24,
        warmup_steps=1,
        eval_every=2,
        max_dev_pairs=12,
        mixed_precision="no",
        progress=False,
        **(base | changes),
    )


def diverging(objective, student, seen: dict):
    """``objective`` whose loss is NaN from step :data:`NAN_FROM` on; ``seen['last']``: the student's weights then."""
    forward, calls = objective.forward, [0]

    def nan_from(*args):
        calls[0] += 1
        loss = forward(*args)
        if calls[0] < NAN_FROM:
            return loss
        seen.setdefault("last", {k: v.detach().clone() for k, v in student.state_dict().items()})
        return loss * float("nan")

    objective.forward = nan_from
    return objective


def test_a_diverged_run_returns_its_best_dev_state_flagged(tiny, tmp_path, monkeypatch):
    teacher, train, dev = tiny
    cfg, seen, states = _config(), {}, []
    record = _State.record
    monkeypatch.setattr(_State, "record", lambda self, *a, **k: (states.append(self), record(self, *a, **k))[1])
    student = teacher.copy()
    objective = diverging(build_objective("sentence-kd", cfg, train), student, seen)
    result = Trainer(student, teacher, objective, train, dev, cfg, out_dir=tmp_path).train()

    assert result.diverged.startswith("training diverged: loss nan") and result.diverged_step == NAN_FROM
    assert result.steps == NAN_FROM - 1 and not result.stopped_early
    assert [step for step, _ in result.dev_history] == [0, 2, 4]
    assert result.best_dev_mrr == max(score for _, score in result.dev_history)
    best = states[-1].best_state
    assert result.best_step == states[-1].best_step
    weights = student.state_dict()
    assert all(torch.equal(weights[k].cpu(), best[k]) for k in best)  # the best dev state, not the last one
    assert any(not torch.equal(seen["last"][k].cpu(), best[k]) for k in best)
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())

    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r for r in log if r["event"] == "diverged"] == [
        {"step": NAN_FROM, "event": "diverged", "message": result.diverged}
    ]
    assert log[-1]["event"] == "end" and log[-1]["selected_step"] == result.best_step
    assert max(r["step"] for r in log if r["event"] == "train") == NAN_FROM - 1
    summary = read_json(tmp_path / "train_summary.json")
    assert summary["diverged"] == result.diverged and summary["diverged_step"] == NAN_FROM
    assert not (tmp_path / "checkpoint.pt").exists()  # never resumed into divergence, even with keep_checkpoint


def test_without_dev_selection_a_diverged_run_raises(tiny, tmp_path):
    teacher, train, _ = tiny
    cfg = _config(keep_checkpoint=False, checkpoint_every=0)
    student = teacher.copy()
    objective = diverging(build_objective("sentence-kd", cfg, train), student, {})
    with pytest.raises(TrainingDiverged, match="loss nan"):
        Trainer(student, teacher, objective, train, None, cfg, out_dir=tmp_path).train()


def test_a_summary_written_before_the_flag_reads_as_not_diverged():
    old = {"steps": 4, "best_step": 2, "best_dev_mrr": 0.5, "dev_history": [[0, 0.4], [2, 0.5]]}
    result = TrainResult(**old)
    assert result.diverged is None and result.diverged_step is None
