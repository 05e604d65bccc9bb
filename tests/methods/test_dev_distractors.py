"""Dev selection among distractors (protocol v3, ``TrainConfig.dev_distractors``): the direction and ranks of
``dev_mrr``, and a trainer that refuses a distractor list the configuration does not name."""

from __future__ import annotations

import pytest
import torch

from optical_lab.data.bitext import Bitext
from optical_lab.methods.config import TrainConfig, preset
from optical_lab.methods.registry import build_objective
from optical_lab.methods.trainer import Trainer, dev_mrr, retrieval_mrr


def test_dev_mrr_ranks_foreign_queries_among_the_english_and_the_distractors():
    english = torch.eye(3)
    foreign = torch.eye(3)
    assert dev_mrr(english, foreign) == retrieval_mrr(english, foreign) == 1.0
    far = torch.tensor([[-1.0, 0.0, 0.0]])
    assert dev_mrr(english, foreign, far) == 1.0  # a distractor below every gold changes nothing
    # a distractor as close to foreign sentence 0 as its own English: a tie, the mean of ranks 1 and 2
    assert dev_mrr(english, foreign, torch.eye(3)[:1]) == pytest.approx((1 / 1.5 + 1 + 1) / 3)
    # the direction: English sentence 1 is closer to foreign sentence 0 than to its own, which costs English query 1
    # (English -> foreign, v1/v2) but no foreign query (foreign -> English, with distractors)
    english = torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 0.0, 1.0]])
    english = english / english.norm(dim=1, keepdim=True)
    assert dev_mrr(english, foreign) == pytest.approx((1 + 1 / 2 + 1) / 3)
    assert dev_mrr(english, foreign, far) == 1.0


def test_dev_distractors_is_part_of_the_fingerprint_and_of_the_v3_preset():
    assert preset("v3").dev_distractors == 5000 and TrainConfig().dev_distractors == 0
    assert TrainConfig().fingerprint() != TrainConfig(dev_distractors=10).fingerprint()
    assert "dev_distractors" not in TrainConfig().fingerprint_fields()  # committed results keep their fingerprints


def test_trainer_refuses_distractors_the_config_does_not_name(teacher):
    pairs = Bitext(["Good morning.", "Thank you.", "Where is it?"], ["Habari.", "Asante.", "Iko wapi?"], "swa")
    config = TrainConfig(steps=1, batch_size=2, max_length=16, progress=False, checkpoint_every=0, dev_distractors=2)
    objective = build_objective("sentence-kd", config, pairs)
    with pytest.raises(ValueError, match="dev_distractors = 2 but 1"):
        Trainer(teacher.copy(), teacher, objective, pairs, pairs, config, dev_distractors=["One more."])
    with pytest.raises(ValueError, match="dev_distractors = 0 but 1"):
        Trainer(
            teacher.copy(), teacher, objective, pairs, pairs, config.replace(dev_distractors=0), dev_distractors=["x"]
        )
    trainer = Trainer(teacher.copy(), teacher, objective, pairs, pairs, config, dev_distractors=["One.", "Two."])
    assert trainer.dev_distractors == ["One.", "Two."]
