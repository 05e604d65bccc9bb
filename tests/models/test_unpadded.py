"""The unpadded BERT forward (models/unpadded.py) gives Hugging Face's outputs and gradients."""

from __future__ import annotations

import pytest
import torch
from tiny_bert import tiny_encoder

from optical_lab.models import unpadded
from optical_lab.models.encoder import Encoder

TEXTS = [
    "Habari ya asubuhi, rafiki yangu.",
    "Good morning",
    "A much longer sentence, with many more word pieces than any other sentence of this batch has.",
    "x",
]


def _outputs_and_grads(encoder: Encoder, batch, unpad: bool, train: bool, seed: int = 0):
    """Masked token outputs, pooled loss and every parameter's gradient of one forward + backward."""
    encoder.unpad = unpad
    encoder.train(train)
    encoder.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    tokens = encoder.run(batch)
    weights = torch.linspace(-1.0, 1.0, encoder.dim)  # a loss whose gradient reaches every output coordinate
    (encoder.pool(tokens) * weights).sum().backward()
    grads = {name: p.grad.clone() for name, p in encoder.named_parameters() if p.grad is not None}
    return tokens, grads


def _assert_same(encoder: Encoder, train: bool) -> None:
    batch = encoder.tokenize(TEXTS)
    assert bool((batch["attention_mask"] == 0).any()), "the batch must be padded to test anything"
    ref, ref_grads = _outputs_and_grads(encoder, batch, unpad=False, train=train)
    out, grads = _outputs_and_grads(encoder, batch, unpad=True, train=train)
    mask = ref.mask[..., None]
    torch.testing.assert_close(out.embeddings * mask, ref.embeddings * mask, rtol=1e-5, atol=1e-5)
    assert not out.embeddings[~ref.mask].any(), "pad positions are zero"
    assert grads.keys() == ref_grads.keys()
    # gradients to within float rounding of the largest one (the key biases' true gradient is 0:
    # softmax ignores a shift shared by all keys, so both forwards give rounding noise there)
    scale = max(float(g.abs().max()) for g in ref_grads.values())
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], rtol=1e-4, atol=1e-5 * scale, msg=name)


@pytest.mark.parametrize("train", [False, True], ids=["eval", "dropout"])
def test_tiny_bert_matches_hugging_face(train):
    encoder = tiny_encoder(hidden=32, layers=2)
    assert encoder.model.config.hidden_dropout_prob > 0 and encoder.model.config.attention_probs_dropout_prob > 0
    assert unpadded.supports(encoder.model)
    _assert_same(encoder, train)


@pytest.mark.parametrize("train", [False, True], ids=["eval", "dropout"])
def test_minilm_matches_hugging_face(teacher, train):
    _assert_same(teacher.copy(), train)


def test_dropout_draws_are_hugging_faces():
    """Seeded alike, the unpadded forward drops the same units as BertModel.forward: different seeds
    differ by more than the two forwards do (the comparison above is not passing by chance)."""
    encoder = tiny_encoder(hidden=32, layers=1)
    batch = encoder.tokenize(TEXTS)
    ref, _ = _outputs_and_grads(encoder, batch, unpad=False, train=True, seed=1)
    same, _ = _outputs_and_grads(encoder, batch, unpad=True, train=True, seed=1)
    other, _ = _outputs_and_grads(encoder, batch, unpad=True, train=True, seed=2)
    mask = ref.mask[..., None]
    ref, same, other = (t.embeddings.detach() for t in (ref, same, other))
    assert float((same - ref).mul(mask).abs().max()) < 1e-5
    assert float((other - ref).mul(mask).abs().max()) > 1e-2


def test_switch_and_fallback(monkeypatch):
    encoder = tiny_encoder()
    assert encoder.unpad is None and encoder.unpadded == unpadded.ENABLED_BY_DEFAULT
    monkeypatch.setenv(unpadded.ENV_SWITCH, "0")
    assert not encoder.unpadded
    encoder.unpad = True
    assert encoder.unpadded
    monkeypatch.delenv(unpadded.ENV_SWITCH)
    encoder.model.config._attn_implementation = "flash_attention_2"  # not one this module reproduces
    assert not unpadded.supports(encoder.model) and not encoder.unpadded
    assert not unpadded.supports(torch.nn.Linear(2, 2))  # any other architecture: its own forward


def test_encode_is_unchanged(teacher):
    """Evaluation encoding (no gradient, length-sorted batches) gives the same embeddings either way."""
    encoder = teacher.copy()
    texts = TEXTS * 3
    encoder.unpad = False
    ref = encoder.encode(texts, batch_size=5)
    encoder.unpad = True
    torch.testing.assert_close(encoder.encode(texts, batch_size=5), ref, rtol=1e-5, atol=1e-6)
