"""Checkpoints are data, never code (issue #14.3).

Results folders are shared, so a ``checkpoint.pt`` found in one is untrusted input. The trainer
reads it with ``torch.load(weights_only=True)``: a pickle that would run code on load is refused
with a :class:`DataError` before anything in it executes.
"""

from __future__ import annotations

import pickle

import pytest
import torch
from tiny_bert import tiny_encoder

from optical_lab.data.bitext import Bitext
from optical_lab.data.errors import DataError
from optical_lab.methods import TrainConfig, Trainer, build_objective
from optical_lab.methods.checkpoint import read_checkpoint
from optical_lab.models import Encoder


class _Payload:
    """Unpickling this object calls ``Path(marker).write_text(...)``: code run by loading data."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.write_text, (pathlib.Path(self.marker), "code ran"))


def _crafted_checkpoint(path, marker) -> None:
    # a plausible checkpoint whose "step" is the payload: a plain torch.load would run it
    with open(path, "wb") as handle:
        pickle.dump({"step": _Payload(str(marker)), "student": {}}, handle, protocol=2)


def _tiny_encoder() -> Encoder:
    return tiny_encoder(hidden=16)


CONFIG = TrainConfig(
    steps=2,
    batch_size=2,
    max_length=16,
    warmup_steps=0,
    eval_every=0,
    checkpoint_every=0,
    max_dev_pairs=4,
    mixed_precision="no",
    progress=False,
)
PAIRS = Bitext(
    ["a red house", "the cat sleeps", "two dogs run", "it rains"],
    ["nyumba nyekundu", "paka analala", "mbwa wawili wanakimbia", "mvua inanyesha"],
    "swa",
)


def test_crafted_checkpoint_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    _crafted_checkpoint(tmp_path / "checkpoint.pt", marker)
    with pytest.raises(DataError, match="refusing to load this checkpoint") as info:
        read_checkpoint(tmp_path / "checkpoint.pt")
    assert "checkpoint.pt" in str(info.value) and "Fix: delete it" in str(info.value)
    assert not marker.exists()
    # sanity: the file really is a code-running pickle (what an unsafe load would have done)
    with open(tmp_path / "checkpoint.pt", "rb") as handle:
        pickle.load(handle)
    assert marker.read_text() == "code ran"


def test_trainer_refuses_a_crafted_checkpoint_in_its_folder(tmp_path):
    """Where the trainer looks (``out_dir/checkpoint.pt``), even with checkpoints disabled."""
    marker = tmp_path / "pwned"
    _crafted_checkpoint(tmp_path / "checkpoint.pt", marker)
    teacher = _tiny_encoder()
    trainer = Trainer(
        teacher.copy(), teacher, build_objective("sentence-kd", CONFIG, PAIRS), PAIRS, None, CONFIG, out_dir=tmp_path
    )
    with pytest.raises(DataError, match="could run code"):
        trainer.train()
    assert not marker.exists()


def test_own_checkpoints_round_trip_with_weights_only(tmp_path):
    """What the trainer writes (weights, optimizer, scheduler, RNG states, history) loads under
    ``weights_only=True``; a truncated file is a clear error too."""
    teacher = _tiny_encoder()
    config = CONFIG.replace(steps=3, checkpoint_every=1, checkpoint_seconds=0, keep_checkpoint=True)
    result = Trainer(
        teacher.copy(), teacher, build_objective("optical", config, PAIRS), PAIRS, PAIRS, config, out_dir=tmp_path
    ).train()
    assert result.checkpoints_written == 3  # after steps 1 and 2, and the final state
    assert result.checkpoint_bytes > 0
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)  # raises if anything is not plain data
    assert ckpt["step"] == 3 and isinstance(ckpt["rng"]["numpy"][1], torch.Tensor)
    loaded = read_checkpoint(tmp_path / "checkpoint.pt")
    assert loaded["best_state"].keys() == loaded["student"].keys()

    data = (tmp_path / "checkpoint.pt").read_bytes()
    (tmp_path / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="unreadable checkpoint"):
        read_checkpoint(tmp_path / "checkpoint.pt")


def test_checkpoint_interval_is_not_part_of_the_fingerprint():
    """Existing configs keep their fingerprint (results folders and figure caches are keyed by it)."""
    assert TrainConfig().fingerprint() == TrainConfig(checkpoint_seconds=5).fingerprint()
    assert TrainConfig().fingerprint() != TrainConfig(lr=1e-5).fingerprint()
