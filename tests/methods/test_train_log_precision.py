"""The training log's declared precision: a step's diagnostics at LOG_DIGITS significant digits, nothing a reader
needs exactly rounded, and the log as written is what compaction stores, losslessly."""

from __future__ import annotations

import json
import math

import pytest
from tiny_bert import hau_pairs, tiny_encoder

from optical_lab.columns import decode_columns, encode_columns_checked
from optical_lab.methods import TrainConfig, Trainer, build_objective
from optical_lab.methods.train_state import LOG_DIGITS, logged_lines, logged_step, logged_value


def _digits(x: float) -> int:
    """Significant digits of ``x``'s shortest decimal form."""
    mantissa = repr(abs(x)).partition("e")[0].replace(".", "").lstrip("0").rstrip("0")
    return len(mantissa)


def test_diagnostics_are_rounded_and_what_is_read_exactly_is_not():
    third = 1 / 3
    record = {
        "step": 7,
        "event": "train",
        "loss": 1.8347551822662354,
        "ot_foreign": 1.5943315029144287,
        "ot_not_converged": 25.0,  # a count, logged as a float
        "ot_problems": 32.0,
        "ot_unconverged_share": 25 / 32 * third,  # a ratio the v3 analysis reads (not integral)
        "aux_ot_unconverged_share": third,  # an auxiliary objective's copy of it
        "marginal_error": 4.3430132791399956e-05,
        "token_cos": 12345.678,  # beyond 4 digits before the point: rounded too
        "integral": 123456.0,  # an integral value stays as it is, whatever its key
        "lr": 3.3333333333333335e-05,
        "grad_norm": 1.1239351034164429,
        "seconds": 0.53081234,
        "nan": math.nan,
        "inf": math.inf,
    }
    out = logged_step(record)
    assert list(out) == list(record)
    assert out["loss"] == 1.835 and out["ot_foreign"] == 1.594 and out["grad_norm"] == 1.124
    assert out["marginal_error"] == 4.343e-05 and out["seconds"] == 0.5308 and out["token_cos"] == 12350.0
    for key in ("step", "event", "ot_not_converged", "ot_problems", "ot_unconverged_share", "lr", "integral"):
        assert out[key] == record[key] and type(out[key]) is type(record[key]), key
    assert out["aux_ot_unconverged_share"] == third
    assert math.isnan(out["nan"]) and out["inf"] == math.inf
    assert logged_step(out) == out  # idempotent: a log at this precision is its own rounded form
    assert all(_digits(out[k]) <= LOG_DIGITS for k in ("loss", "marginal_error", "seconds", "token_cos"))
    # dev and end records are never touched (model selection and the stopping rule read them)
    dev = {"step": 50, "event": "dev", "dev_mrr": 0.458785742521286, "best": True}
    end = {"step": 50, "event": "end", "selected_step": 50, "cap": 1000, "x": 0.123456789}
    assert logged_step(dev) == dev and logged_step(end) == end
    assert logged_value(-0.000123456) == -0.0001235


def test_a_log_written_before_reads_as_it_would_be_written_now():
    lines = [
        {"step": 0, "event": "dev", "dev_mrr": 0.33475184440612793, "best": True},
        {"step": 1, "event": "train", "loss": 1.8347551822662354, "lr": 1e-05 / 3, "seconds": 0.5308},
    ]
    old = "".join(json.dumps(r) + "\n" for r in lines).encode()
    new = logged_lines(old)
    assert new.splitlines()[0] == old.splitlines()[0]
    assert json.loads(new.splitlines()[1]) == {**lines[1], "loss": 1.835}
    assert logged_lines(new) == new and logged_lines(old.rstrip(b"\n")) == new.rstrip(b"\n")


@pytest.mark.parametrize("method", ["optical", "sentence-kd"])
def test_the_trainer_logs_at_the_declared_precision_and_compaction_keeps_it_exactly(tmp_path, method):
    teacher, (train, dev) = tiny_encoder(), hau_pairs(16)
    cfg = TrainConfig(
        steps=4,
        batch_size=4,
        max_length=24,
        warmup_steps=3,  # lr = base / 3 at step 1: 17 significant digits, logged exactly
        eval_every=2,
        checkpoint_every=0,
        max_dev_pairs=12,
        mixed_precision="no",
        progress=False,
    )
    objective = build_objective(method, cfg, train)
    result = Trainer(teacher.copy(), teacher, objective, train, dev, cfg, out_dir=tmp_path).train()
    data = (tmp_path / "train_log.jsonl").read_bytes()
    records = [json.loads(line) for line in data.splitlines()]
    steps = [r for r in records if r["event"] == "train"]
    assert len(steps) == 4 and all(logged_step(r) == r for r in steps)
    assert all(_digits(r[k]) <= LOG_DIGITS for r in steps for k in ("loss", "grad_norm", "seconds"))
    assert _digits(steps[0]["lr"]) > LOG_DIGITS  # the schedule is logged exactly
    if method == "optical":  # the counts stay integral, the plan's indicators are rounded
        assert all(r["ot_problems"] > 0 and r["ot_not_converged"].is_integer() for r in steps)
        assert all(_digits(r["token_cos"]) <= LOG_DIGITS for r in steps)
    # the dev scores are the trainer's own, unrounded (the selection read them)
    assert [(r["step"], r["dev_mrr"]) for r in records if r["event"] == "dev"] == [tuple(h) for h in result.dev_history]
    encoded = encode_columns_checked(data)
    assert encoded is not None and decode_columns(encoded) == data  # compaction stores the log as written
    kinds = {entry[0]: entry[1] for entry in json.loads(encoded.partition(b"\n")[0])["columns"]}
    assert kinds["grad_norm"][:3] in ("sig", "dec", "con", "sam")  # by its decimal digits, not as a binary float
