"""Training to a dev plateau: the patience / min_delta rule, the cap, and where selection stopped."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_bert import hau_pairs, tiny_encoder

from optical_lab.data import DataError
from optical_lab.experiments.stopping import selected_before_cap_share, selected_steps, table
from optical_lab.methods import TrainConfig, Trainer, build_objective
from optical_lab.methods.config import ADDED_FIELDS
from optical_lab.methods.train_state import _State


def test_min_delta_counts_small_gains_against_patience_but_keeps_the_best_state():
    model = torch.nn.Linear(2, 2)
    scores = [(0, 0.50), (2, 0.504), (4, 0.507)]  # each a new best, none by more than 0.01
    for min_delta, stops in ((0.01, True), (0.0, False)):
        state = _State()
        for step, score in scores:
            with torch.no_grad():
                model.weight.fill_(step)
            state.record(step, score, model, patience=2, min_delta=min_delta)
        assert state.stopped is stops
        assert state.best_step == 4 and torch.all(state.best_state["weight"] == 4)  # the best is kept either way
    state = _State()
    for step, score in [(0, 0.5), (2, 0.505), (4, 0.52), (6, 0.521)]:  # a real gain resets the count
        state.record(step, score, model, patience=2, min_delta=0.01)
    assert state.bad_evals == 1 and not state.stopped


def test_min_delta_is_an_added_field_old_fingerprints_stay():
    base = TrainConfig(progress=False)
    assert "min_delta" not in base.fingerprint_fields()  # default: the field is left out
    assert base.replace(min_delta=0.0).fingerprint() == base.fingerprint()
    assert base.replace(min_delta=0.001).fingerprint() != base.fingerprint()
    saved = {k: v for k, v in base.to_dict().items() if k != "min_delta"}  # a config.json from before
    assert TrainConfig.from_dict(saved).min_delta == ADDED_FIELDS["min_delta"] == 0.0
    with pytest.raises(DataError, match="min_delta"):
        TrainConfig(min_delta=-0.1)


@pytest.fixture(scope="module")
def tiny():
    """A tiny randomly initialised BERT with MiniLM's tokenizer, NTREX hau train/dev pairs."""
    return (tiny_encoder(), *hau_pairs(32))


def _train(tiny, out, **changes):
    teacher, train, dev = tiny
    cfg = TrainConfig(
        steps=10,
        batch_size=4,
        max_length=24,
        warmup_steps=1,
        eval_every=2,
        checkpoint_every=0,
        max_dev_pairs=12,
        mixed_precision="no",
        progress=False,
        **changes,
    )
    result = Trainer(
        teacher.copy(), teacher, build_objective("sentence-kd", cfg, train), train, dev, cfg, out_dir=out
    ).train()
    (out / "config.json").write_text(json.dumps({"train": cfg.to_dict()}))
    return result


def test_patience_stops_before_the_cap_and_the_records_say_so(tiny, tmp_path):
    # min_delta 1: no dev MRR can gain a whole unit, so every evaluation after step 0 counts against patience
    stopped = _train(tiny, tmp_path / "runs" / "hau" / "sentence-kd" / "a", patience=2, min_delta=1.0)
    assert stopped.steps == 4 and stopped.stopped_early and stopped.max_steps == 10
    assert stopped.selected_before_cap and stopped.best_step < 10
    full = _train(tiny, tmp_path / "runs" / "hau" / "sentence-kd" / "b")  # patience 0: to the cap
    assert full.steps == 10 and not full.stopped_early and full.max_steps == 10
    assert full.selected_before_cap == (full.best_step < 10)

    log = [json.loads(line) for line in (tmp_path / "runs/hau/sentence-kd/a/train_log.jsonl").read_text().splitlines()]
    end = log[-1]
    assert end["event"] == "end" and end["selected_step"] == stopped.best_step and end["cap"] == 10
    assert end["stopped_early"] is True and max(r["step"] for r in log if r["event"] == "train") == 4

    rows = selected_steps(tmp_path)
    assert [(r["cell"].split("/")[-1], r["steps"], r["stopped_early"]) for r in rows] == [
        ("a", 4, True),
        ("b", 10, False),
    ]
    assert {r["part"] for r in rows} == {"grid"} and {r["method"] for r in rows} == {"sentence-kd"}
    assert selected_before_cap_share(tmp_path) == (1 + full.selected_before_cap) / 2
    assert "| grid | sentence-kd | 2 |" in table(rows)


def test_share_reads_old_summaries_through_their_config(tmp_path):
    """Results written before ``max_steps`` existed: the cap is the config's ``steps``."""
    for name, best in (("x", 300), ("y", 250), ("z", 0)):
        cell = tmp_path / "sweep" / "optical" / name
        cell.mkdir(parents=True)
        (cell / "train_summary.json").write_text(json.dumps({"steps": 300, "best_step": best}))
        (cell / "config.json").write_text(json.dumps({"train": {"steps": 300}}))
    assert selected_before_cap_share(tmp_path) == pytest.approx(2 / 3)
    assert selected_before_cap_share(tmp_path, part="grid") is None
    (tmp_path / "sweep" / "optical" / "x" / "config.json").unlink()
    with pytest.raises(DataError, match="max_steps"):
        selected_steps(tmp_path)


def test_compare_command_line_sets_the_stopping_rule():
    from optical_lab.cli import build_parser
    from optical_lab.experiments.compare import plan_from_args

    plan = plan_from_args(build_parser().parse_args(["compare", "--patience", "3", "--min-delta", "0.002"]))
    assert (plan.train.patience, plan.train.min_delta) == (3, 0.002)
    default = plan_from_args(build_parser().parse_args(["compare"])).train
    assert (default.patience, default.min_delta) == (0, 0.0) and default.fingerprint() == TrainConfig().fingerprint()
    with pytest.raises(DataError, match="--min-delta"):
        plan_from_args(build_parser().parse_args(["compare", "--min-delta", "-1"]))
