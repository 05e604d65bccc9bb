"""The frozen teacher's training targets are computed once and shared through an on-disk cache.

A second :class:`FrozenTeacher` on the same cache folder (another method, seed or process) loads
the targets without calling the encoder and gets bit-identical tensors; a changed text, model,
truncation or precision is a different cache entry, never a stale hit.
"""

from __future__ import annotations

import pytest
import torch
from tiny_bert import tiny_encoder

from optical_lab.methods.teacher import FrozenTeacher, model_hash
from optical_lab.models import Encoder

TEXTS = ["The red house stands on the hill.", "Two dogs run.", "The red house stands on the hill.", "It rains."]


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return tiny_encoder(hidden=16).eval()


class _Counting:
    """Counts the encoder calls a FrozenTeacher makes."""

    def __init__(self, encoder: Encoder, monkeypatch) -> None:
        self.calls = 0
        original = encoder.tokens

        def tokens(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(encoder, "tokens", tokens)


def _targets(frozen: FrozenTeacher):
    batch = frozen.tokens(TEXTS)
    return batch.embeddings, batch.mask, batch.special, batch.input_ids


def test_second_teacher_hits_the_disk_cache(encoder, tmp_path, monkeypatch):
    counter = _Counting(encoder, monkeypatch)
    first = FrozenTeacher(encoder, max_length=16, cache_dir=tmp_path)
    first.precompute(TEXTS)
    assert counter.calls == 3 and first.disk_misses == 1  # one call per distinct sentence
    assert len(list(tmp_path.glob("*.safetensors"))) == 1 and not list(tmp_path.glob("*.tmp"))

    second = FrozenTeacher(encoder, max_length=16, cache_dir=tmp_path)
    second.precompute(TEXTS)
    assert counter.calls == 3 and second.disk_hits == 1  # no encoder call
    for a, b in zip(_targets(first), _targets(second)):
        assert torch.equal(a, b)
    assert counter.calls == 3


def test_changed_text_length_precision_or_model_misses(encoder, tmp_path):
    FrozenTeacher(encoder, max_length=16, cache_dir=tmp_path).precompute(TEXTS)
    variants = [
        (FrozenTeacher(encoder, max_length=16, cache_dir=tmp_path), TEXTS[:-1] + ["It snows."], None),
        (FrozenTeacher(encoder, max_length=8, cache_dir=tmp_path), TEXTS, None),
        (FrozenTeacher(encoder, max_length=16, cache_dir=tmp_path), TEXTS, torch.bfloat16),
    ]
    changed = encoder.copy()
    with torch.no_grad():
        next(changed.parameters())[0, 0] += 1.0
    assert model_hash(changed) != model_hash(encoder)
    variants.append((FrozenTeacher(changed, max_length=16, cache_dir=tmp_path), TEXTS, None))
    for frozen, texts, autocast in variants:
        with torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            frozen.precompute(texts)
        assert (frozen.disk_hits, frozen.disk_misses) == (0, 1)
    assert len(list(tmp_path.glob("*.safetensors"))) == 1 + len(variants)


def test_cache_matches_a_teacher_without_disk_cache(encoder, tmp_path):
    plain = FrozenTeacher(encoder, max_length=16)
    plain.precompute(TEXTS)
    FrozenTeacher(encoder, max_length=16, cache_dir=tmp_path).precompute(TEXTS)
    cached = FrozenTeacher(encoder, max_length=16, cache_dir=tmp_path)
    cached.precompute(TEXTS)
    assert cached.disk_hits == 1
    for a, b in zip(_targets(plain), _targets(cached)):
        assert torch.equal(a, b)
