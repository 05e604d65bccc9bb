"""Prefixed backbones (e5) train and select on the same inputs they are evaluated on (issue #13)."""

from __future__ import annotations

import pytest

from optical_lab.data.bitext import Bitext
from optical_lab.methods import TrainConfig, build_objective
from optical_lab.methods.teacher import FrozenTeacher
from optical_lab.methods.trainer import Trainer, make_accelerator
from optical_lab.models.encoder import as_role

ENGLISH = ["The river rose overnight.", "Schools reopen on Monday.", "The minister resigned.", "Rain is expected."]
FOREIGN = [
    "Kogin ya tashi da dare.",
    "Makarantu za su bude ranar Litinin.",
    "Ministan ya yi murabus.",
    "Ana sa ran ruwa.",
]


def _prefixed(teacher):
    """A copy of the teacher that writes e5-style prefixes and records every text it tokenises."""
    encoder = teacher.copy()
    encoder.query_prefix, encoder.passage_prefix = "query: ", "passage: "
    seen: list[str] = []
    tokenize = encoder.tokenize

    def recording(texts, role=None):
        seen.extend(encoder._with_prefix(texts, role))
        return tokenize(texts, role)

    encoder.tokenize = recording
    return encoder, seen


def test_as_role_prefixes_texts_without_a_role(teacher):
    encoder, seen = _prefixed(teacher)
    with as_role(encoder, "passage"):
        encoder.tokens(["a"])
        encoder.tokens(["b"], "query")  # an explicit role wins
    encoder.tokens(["c"])
    assert seen == ["passage: a", "query: b", "c"]


@pytest.mark.parametrize("use_prefixes", [True, False])
def test_training_and_dev_selection_use_the_evaluation_prefixes(teacher, use_prefixes):
    teacher_encoder, teacher_seen = _prefixed(teacher)
    student, student_seen = _prefixed(teacher)
    config = TrainConfig(
        steps=2,
        batch_size=2,
        max_length=16,
        warmup_steps=0,
        eval_every=1,
        max_dev_pairs=4,
        checkpoint_every=0,
        mixed_precision="no",
        progress=False,
        use_prefixes=use_prefixes,
    )
    bitext = Bitext(ENGLISH, FOREIGN, "hau")
    frozen = FrozenTeacher(teacher_encoder, config.max_length, role=config.training_role)
    Trainer(
        student.requires_grad_(True),
        frozen,
        build_objective("optical", config, bitext),
        bitext,
        bitext,
        config,
        accelerator=make_accelerator("no"),
    ).train()
    if use_prefixes:
        # the student learns every text as a document; the teacher's targets are documents too
        assert {t.split(": ")[0] for t in student_seen} == {"passage"}
        assert {f"passage: {t}" for t in ENGLISH} <= set(teacher_seen)
        assert {f"query: {t}" for t in ENGLISH} <= set(teacher_seen)  # dev queries, as evaluation encodes them
    else:
        assert not any(t.startswith(("query: ", "passage: ")) for t in student_seen + teacher_seen)


def test_trainer_refuses_teacher_targets_with_other_prefixes(teacher):
    encoder, _ = _prefixed(teacher)
    config = TrainConfig(steps=1, batch_size=2, max_length=16, progress=False, mixed_precision="no")
    bitext = Bitext(ENGLISH, FOREIGN, "hau")
    with pytest.raises(ValueError, match="passage"):
        Trainer(
            encoder.copy(),
            FrozenTeacher(encoder, 16, role=None),
            build_objective("optical", config, bitext),
            bitext,
            None,
            config,
        )
