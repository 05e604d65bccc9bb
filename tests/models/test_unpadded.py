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


def test_fast_keep_mask_is_a_scaled_bernoulli():
    torch.manual_seed(0)
    mask = unpadded.keep_mask((1000, 1000), 0.1, torch.empty(0))
    values = mask.unique()
    torch.testing.assert_close(values, torch.tensor([0.0, 1 / 0.9]))
    assert abs(float((mask == 0).float().mean()) - 0.1) < 0.002  # 1e6 draws: the sd of the share is 3e-4
    torch.manual_seed(0)
    assert torch.equal(unpadded.keep_mask((1000, 1000), 0.1, torch.empty(0)), mask)  # seeded by torch


def test_eager_attention_without_dropout_is_hugging_faces():
    encoder = tiny_encoder(hidden=32, layers=1).eval()
    torch.manual_seed(0)
    query, key, value = (torch.randn(4, 2, 7, 16) for _ in range(3))
    keys = torch.arange(7)[None, :] < torch.tensor([7, 5, 1, 3])[:, None]
    hf = encoder.model.encoder.layer[0].attention.self
    from transformers.masking_utils import create_bidirectional_mask
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    mask = create_bidirectional_mask(config=hf.config, inputs_embeds=torch.empty(4, 7, 32), attention_mask=keys)
    attention = ALL_ATTENTION_FUNCTIONS.get_interface(hf.config._attn_implementation, None)
    expected, _ = attention(hf, query, key, value, mask, dropout=0.0, scaling=0.25)
    bias = torch.zeros(4, 1, 7).masked_fill_(~keys[:, None, :], torch.finfo(torch.float32).min)
    head_major = (t.transpose(0, 1).contiguous() for t in (query, key, value))  # (heads, B, L, d)
    out = unpadded.eager_attention(*head_major, bias, 0.25, lambda t: t).permute(1, 2, 0, 3)  # (B, L, heads, d)
    torch.testing.assert_close(out * keys[..., None, None], expected * keys[..., None, None], rtol=1e-5, atol=1e-6)


def test_fast_dropout_draws():
    """The fast draws change which units drop, nothing else: eval (no dropout) is Hugging Face's output, a
    training forward is seeded (the same seed, the same output) and drops about p of the units."""
    encoder = tiny_encoder(hidden=32, layers=2)
    batch = encoder.tokenize(TEXTS)
    mask = batch["attention_mask"].bool()[..., None]
    hf, _ = _outputs_and_grads(encoder, batch, unpad=False, train=False)
    encoder.dropout_draws = "fast"
    fast, grads = _outputs_and_grads(encoder, batch, unpad=True, train=False)
    torch.testing.assert_close(fast.embeddings * mask, hf.embeddings * mask, rtol=1e-5, atol=1e-5)
    first, grads = _outputs_and_grads(encoder, batch, unpad=True, train=True, seed=3)
    again, _ = _outputs_and_grads(encoder, batch, unpad=True, train=True, seed=3)
    reference, _ = _outputs_and_grads(encoder, batch, unpad=False, train=True, seed=3)
    assert torch.equal(first.embeddings, again.embeddings) and grads
    assert float((first.embeddings - reference.embeddings).detach().mul(mask).abs().max()) > 1e-2
    with pytest.raises(ValueError, match="dropout draws"):
        unpadded.unpadded_forward(encoder.model, batch["input_ids"], batch["attention_mask"], draws="other")


def test_training_config_names_the_draws():
    """TrainConfig.dropout_draws: its choices are the module's, its default adds nothing to a cell's identity."""
    import typing

    from optical_lab.methods import TrainConfig

    hint = typing.get_type_hints(TrainConfig)["dropout_draws"]
    assert typing.get_args(hint) == unpadded.DROPOUT_DRAWS
    config = TrainConfig()
    assert config.dropout_draws == "hugging-face" and "dropout_draws" not in config.fingerprint_fields()
    assert config.replace(dropout_draws="fast").fingerprint() != config.fingerprint()


def test_train_step_uses_the_configs_draws():
    from optical_lab.data import Bitext
    from optical_lab.methods import TrainConfig, build_objective
    from optical_lab.methods.accelerator import make_accelerator
    from optical_lab.methods.optimizer import make_optimizer
    from optical_lab.methods.teacher import FrozenTeacher
    from optical_lab.methods.trainer import train_step

    config = TrainConfig(
        steps=1, batch_size=2, max_length=16, progress=False, dropout_draws="fast", mixed_precision="no"
    )
    teacher, student = tiny_encoder(), tiny_encoder()
    pairs = Bitext(TEXTS[:2], TEXTS[2:], "swa")
    optimizer, scheduler = make_optimizer(student, config)
    objective = build_objective("sentence-kd", config, pairs)
    frozen = FrozenTeacher(teacher, config.max_length)
    args = (pairs.english, pairs.foreign, optimizer, scheduler, make_accelerator("no"), config)
    train_step(student, frozen, objective, *args)
    assert student.dropout_draws == "fast" and student.unpadded


def test_bf16_autocast_training_matches_within_bf16_rounding():
    encoder = tiny_encoder(hidden=32, layers=2)
    batch = encoder.tokenize(TEXTS)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref, ref_grads = _outputs_and_grads(encoder, batch, unpad=False, train=True)
        out, grads = _outputs_and_grads(encoder, batch, unpad=True, train=True)
    mask = ref.mask[..., None]
    torch.testing.assert_close(out.embeddings * mask, ref.embeddings * mask, rtol=2e-2, atol=2e-2)
    scale = max(float(g.abs().max()) for g in ref_grads.values())
    for name, grad in grads.items():  # bf16 keeps 8 bits of mantissa: a relative 2^-8 per rounding
        torch.testing.assert_close(grad, ref_grads[name], rtol=2e-2, atol=1e-3 * scale, msg=name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_hugging_face_noise_is_the_dropout_modules_mask(dtype):
    """The mask drawn directly on a CPU is the one torch.nn.Dropout multiplies by, bit for bit, and the
    random stream is left where the module leaves it (the next draws agree too)."""
    module = torch.nn.Dropout(0.1)
    shape = (37, 24)
    torch.manual_seed(5)
    expected = module(torch.ones(shape, dtype=dtype))
    after = torch.rand(4)
    torch.manual_seed(5)
    noise = unpadded.hugging_face_noise(module, shape, torch.empty(0, dtype=dtype))
    assert noise.dtype == dtype and torch.equal(noise, expected)
    assert torch.equal(torch.rand(4), after)
    assert 0 < int((noise == 0).sum()) < noise.numel()  # something dropped, something kept


@pytest.mark.parametrize("train", [False, True], ids=["eval", "dropout"])
def test_forward_consumes_the_random_stream_as_hugging_face_does(train):
    """Whatever runs after a seeded forward (the next step's dropout, a sampler) draws what it would
    after BertModel.forward: the unpadded forward takes exactly Hugging Face's draws from the stream."""
    encoder = tiny_encoder(hidden=32, layers=2)
    batch = encoder.tokenize(TEXTS)
    following = []
    for unpad in (False, True):
        _outputs_and_grads(encoder, batch, unpad=unpad, train=train, seed=7)
        following.append(torch.rand(8))
    assert torch.equal(*following)


def test_query_key_value_gradients_reach_each_projection():
    """Query, key and value computed side by side and scattered together: each projection's own weight
    and bias get their gradient (Hugging Face's, to float rounding) and nothing else changes."""
    encoder = tiny_encoder(hidden=32, layers=1)
    batch = encoder.tokenize(TEXTS)
    _, ref = _outputs_and_grads(encoder, batch, unpad=False, train=True)
    _, grads = _outputs_and_grads(encoder, batch, unpad=True, train=True)
    names = [n for n in grads if any(f"attention.self.{p}." in n for p in ("query", "key", "value"))]
    assert len(names) == 6
    for name in names:
        assert grads[name].shape == dict(encoder.named_parameters())[name].shape
        torch.testing.assert_close(grads[name], ref[name], rtol=1e-4, atol=1e-6, msg=name)
    assert not torch.equal(grads[names[0]], grads[names[2]])  # not one gradient copied to all three
