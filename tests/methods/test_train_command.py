"""Training one student: ``Trainer`` honours ``TrainConfig.max_train_pairs``; ``optical-lab train`` saves a
student that ``Encoder.load`` and ``optical-lab evaluate --student`` read back."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_bert import tiny_encoder

from optical_lab.data.bitext import Bitext
from optical_lab.methods import TrainConfig, Trainer, build_objective
from optical_lab.models import Encoder

TINY = TrainConfig(
    steps=2,
    batch_size=4,
    warmup_steps=0,
    max_length=16,
    eval_every=0,
    checkpoint_every=0,
    max_dev_pairs=4,
    progress=False,
    mixed_precision="no",
)


def _tiny() -> Encoder:
    return tiny_encoder(max_length=16).eval()


def bitext(n: int) -> Bitext:
    return Bitext([f"English sentence number {i}." for i in range(n)], [f"Sentensi ya {i}." for i in range(n)], "swa")


@pytest.mark.parametrize("cap, expected", [(6, 6), (None, 20), (50, 20)])
def test_trainer_honours_max_train_pairs(cap, expected, tmp_path):
    teacher, train = _tiny(), bitext(20)
    config = TINY.replace(max_train_pairs=cap)
    trainer = Trainer(teacher.copy(), teacher, build_objective("sentence-kd", config, train), train, None, config)
    assert len(trainer.train_bitext) == expected
    assert set(trainer.train_bitext.english) == set(train.subsample(cap, config.seed).english)  # the nested subsample
    assert trainer.train().train_pairs == expected


def test_train_command_saves_a_loadable_student(tmp_path, monkeypatch, capsys):
    from optical_lab.cli import main

    tiny = _tiny()
    real_load = Encoder.load.__func__
    monkeypatch.setattr(
        Encoder,
        "load",
        classmethod(
            lambda cls, name="minilm", device=None, max_length=None, **kw: (
                tiny if name == "minilm" else real_load(cls, name, device="cpu", max_length=max_length, **kw)
            )
        ),
    )
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--lang",
                "hau",
                "--method",
                "optical",
                "--preset",
                "tiny",
                "--steps",
                "2",
                "--max-train-pairs",
                "12",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "trained optical for hau on 12 pairs" in capsys.readouterr().out
    saved = json.loads((out / "config.json").read_text())
    assert saved["result"]["train_pairs"] == 12 and saved["plan"]["methods"] == ["optical"]
    assert json.loads((out / "student" / "optical_lab_encoder.json").read_text())["method"] == "optical"
    student = Encoder.load(str(out / "student"), device="cpu")
    # the trainer keeps the best dev state: the untrained one (step 0) or a trained one
    unchanged = torch.allclose(student.encode(["Sannu ya"]), tiny.encode(["Sannu ya"]), atol=1e-6)
    assert unchanged == (saved["result"]["best_step"] == 0) and saved["result"]["steps"] == 2
    assert main(["train", "--lang", "hau", "--out", str(out)]) == 1  # the folder holds a student: refused
