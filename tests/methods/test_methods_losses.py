"""Every method's objective goes down when the student trains on real bitext (a fixed batch)."""

from __future__ import annotations

import pytest
import torch

from optical_lab.data import document_folds, fold_bitext, load_ntrex
from optical_lab.methods import METHODS, TrainConfig, build_objective, parse_methods
from optical_lab.methods.accelerator import make_accelerator
from optical_lab.methods.optimizer import make_optimizer
from optical_lab.methods.teacher import FrozenTeacher
from optical_lab.methods.trainer import train_step

CONFIG = TrainConfig(
    lr=2e-4,
    batch_size=8,
    max_length=32,
    warmup_steps=0,
    steps=10,
    mixed_precision="no",
    code_switch_ratio=1.0,
    progress=False,
)


@pytest.fixture(scope="module")
def hausa_train():
    corpus = load_ntrex("hau")
    return fold_bitext(corpus, document_folds(corpus.doc_ids, k=2, seed=0)[0].train)


def _loss(objective, student, frozen, english, foreign) -> float:
    torch.manual_seed(123)  # the same code-switching draws every time
    student.eval()  # no dropout: the before/after comparison sees only the weights change
    with torch.no_grad():
        return float(objective(student, frozen, english, foreign))


@pytest.mark.parametrize("method", [m for m in METHODS if m != "zero-shot"])
def test_method_reduces_its_own_loss(method, teacher, hausa_train):
    english, foreign = hausa_train.english[:8], hausa_train.foreign[:8]
    objective = build_objective(method, CONFIG, hausa_train)
    frozen = FrozenTeacher(teacher, CONFIG.max_length)
    torch.manual_seed(0)
    student = teacher.copy().requires_grad_(True)
    optimizer, scheduler = make_optimizer(student, CONFIG)
    accelerator = make_accelerator("no")
    before = _loss(objective, student, frozen, english, foreign)
    for _ in range(4):
        train_step(student, frozen, objective, english, foreign, optimizer, scheduler, accelerator, CONFIG)
    after = _loss(objective, student, frozen, english, foreign)
    assert after < before, (method, before, after)
    assert objective.last_logs  # terms are reported for the log
    if method.startswith("optical"):  # the OT problems left above tolerance: their count and share of the step's
        logs = objective.last_logs
        assert 0 <= logs["ot_unconverged_share"] <= 1
        assert (logs["ot_unconverged_share"] == 0) == (logs["ot_not_converged"] == 0)
        assert logs["ot_unconverged_share"] == logs["ot_not_converged"] / logs["ot_problems"]
    # the teacher is untouched
    assert all(not p.requires_grad or p.grad is None for p in teacher.parameters())


def test_registry():
    assert build_objective("zero-shot", CONFIG, None) is None
    assert parse_methods("all") == list(METHODS)
    assert parse_methods("optical, zero-shot") == ["zero-shot", "optical"]
    with pytest.raises(ValueError):
        parse_methods("optical,magic")
    combined = build_objective(
        "optical+aug",
        CONFIG.replace(aug_method="code-switch"),
        fold_bitext(load_ntrex("hau"), tuple(load_ntrex("hau").documents()[:5])),
    )
    assert type(combined.auxiliary).__name__ == "CodeSwitchLoss"


def test_frozen_teacher_cache_matches_direct_forward(teacher):
    texts = ["A short sentence.", "Another, somewhat longer sentence about the weather today."]
    frozen = FrozenTeacher(teacher, max_length=32)
    direct = frozen.pooled(texts)
    frozen.precompute(texts)
    cached = frozen.pooled(texts)
    assert torch.allclose(direct, cached, atol=1e-5)
    tokens = frozen.tokens(texts)
    assert tokens.mask.sum() == sum(len(teacher.tokenizer(t)["input_ids"]) for t in texts)
    assert teacher.max_length == 128  # truncation was temporary


def test_a_frozen_word_embedding_table_stays_the_teachers_while_the_rest_trains(teacher, hausa_train):
    from optical_lab.methods.optimizer import make_trainable

    config = CONFIG.replace(freeze_word_embeddings=True)
    english, foreign = hausa_train.english[:8], hausa_train.foreign[:8]
    torch.manual_seed(0)
    student = make_trainable(teacher.copy(), config)
    table = student.model.get_input_embeddings().weight
    optimizer, scheduler = make_optimizer(student, config)
    assert all(p is not table for group in optimizer.param_groups for p in group["params"])
    train_step(
        student,
        FrozenTeacher(teacher, config.max_length),
        build_objective("sentence-kd", config, hausa_train),
        english,
        foreign,
        optimizer,
        scheduler,
        make_accelerator("no"),
        config,
    )
    assert table.grad is None and torch.equal(table, teacher.model.get_input_embeddings().weight)
    moved = [
        name
        for name, p in student.model.named_parameters()
        if not torch.equal(p, dict(teacher.model.named_parameters())[name])
    ]
    assert moved and "embeddings.word_embeddings.weight" not in moved
    # off by default, and absent from the identity of every config that leaves it off
    assert not CONFIG.freeze_word_embeddings and "freeze_word_embeddings" not in CONFIG.fingerprint_fields()
    assert config.fingerprint() != CONFIG.replace(freeze_word_embeddings=False).fingerprint()


def test_dev_mrr_is_scored_in_float32_under_bf16_autocast():
    """Under bf16 autocast a plain product rounds cosines to 8 bits of mantissa; the ties it makes count for
    the relevant document, so the untrained student's dev score (computed by the runner inside autocast)
    came out higher than the trained steps' (scored outside): a bias towards selecting step 0."""
    from optical_lab.methods.trainer import retrieval_mrr

    generator = torch.Generator().manual_seed(0)
    base = torch.nn.functional.normalize(torch.randn(1, 64, generator=generator), dim=1)
    # 200 documents within a cosine of ~1e-3 of each other: distinct in float32, mostly tied in bf16
    documents = torch.nn.functional.normalize(base + 0.03 * torch.randn(200, 64, generator=generator), dim=1)
    queries = documents.roll(1, dims=0)  # query i is closest to document i-1, not to its own document i
    exact = retrieval_mrr(queries, documents)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert retrieval_mrr(queries, documents) == exact
        rounded = queries @ documents.T  # what the runner's scores were: the bf16 product ties many of them
    assert rounded.dtype == torch.bfloat16
    ties_help = (1.0 / ((rounded.float() > rounded.float().diagonal()[:, None]).sum(1) + 1)).mean()
    assert ties_help > exact + 0.01  # the bias the float32 scores remove (0.041 vs 0.028 here)


def test_dev_mrr_gives_a_tie_with_the_relevant_document_the_mean_rank():
    """A duplicate of the relevant document neither helps nor hurts: ranks 1 and 2 tied -> 1.5."""
    from optical_lab.methods.trainer import retrieval_mrr

    documents = torch.eye(3)
    documents[2] = documents[0]  # documents 0 and 2 are the same text
    queries = documents.clone()
    # query 0: tied with document 2 -> rank 1.5; query 1: rank 1; query 2: tied with document 0 -> 1.5
    assert retrieval_mrr(queries, documents) == pytest.approx((1 / 1.5 + 1 + 1 / 1.5) / 3)
