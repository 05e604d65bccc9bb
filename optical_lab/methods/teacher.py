"""The frozen English teacher as the losses see it: pooled and token outputs, never a gradient.

The teacher never changes, so its outputs on the training English are computed **once** per
(language, fold) by :meth:`FrozenTeacher.precompute` and reused by every method and every step.
Each sentence is encoded **on its own** (no padding, no batch neighbours), so a cached value
depends on nothing but the sentence: a run is bit-for-bit reproducible whether it is resumed from
a checkpoint, run alone, or run after other methods or bitext sizes filled the cache (with
batched encoding, low-precision kernels give slightly different numbers for different batches).
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
from torch.nn.utils.rnn import pad_sequence

from ..models.encoder import Encoder, TokenBatch, mean_pool


@contextlib.contextmanager
def truncation(encoder: Encoder, max_length: int | None) -> Iterator[Encoder]:
    """Temporarily tokenise ``encoder``'s inputs to at most ``max_length`` tokens."""
    old = encoder.max_length
    if max_length:
        encoder.max_length = max_length
    try:
        yield encoder
    finally:
        encoder.max_length = old


@contextlib.contextmanager
def eval_mode(module: torch.nn.Module) -> Iterator[None]:
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


class FrozenTeacher:
    """No-grad view of a teacher :class:`Encoder` with a per-sentence token cache.

    ``max_length`` is the training-time truncation; evaluation uses the encoder itself.
    """

    def __init__(self, encoder: Encoder, max_length: int | None = None, cache: bool = True) -> None:
        self.encoder = encoder
        self.max_length = max_length
        self.cache_enabled = cache
        self._tokens: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self._encoded: dict[tuple, torch.Tensor] = {}

    @property
    def device(self) -> torch.device:
        return self.encoder.device

    def clear(self) -> None:
        self._tokens.clear()
        self._encoded.clear()

    @torch.no_grad()
    def _compute(self, texts: Sequence[str]) -> TokenBatch:
        with truncation(self.encoder, self.max_length), eval_mode(self.encoder):
            batch = self.encoder.tokens(list(texts))
        return TokenBatch(batch.embeddings.float(), batch.mask, batch.special, batch.input_ids)

    @torch.no_grad()
    def precompute(self, texts: Sequence[str]) -> None:
        """Cache the token outputs of ``texts``, one sentence at a time (see the module doc)."""
        if not self.cache_enabled:
            return
        for text in dict.fromkeys(texts):
            if text not in self._tokens:
                batch = self._compute([text])
                self._tokens[text] = (batch.embeddings[0].cpu(), batch.special[0].cpu(), batch.input_ids[0].cpu())

    def tokens(self, texts: Sequence[str]) -> TokenBatch:
        """Token embeddings (B, L, d), float32, detached; from the cache when every text is in it."""
        if not (self.cache_enabled and all(t in self._tokens for t in texts)):
            return self._compute(texts)
        rows = [self._tokens[t] for t in texts]
        embeddings = pad_sequence([r[0] for r in rows], batch_first=True)
        lengths = torch.tensor([len(r[0]) for r in rows])
        mask = torch.arange(embeddings.shape[1])[None, :] < lengths[:, None]
        special = pad_sequence([r[1] for r in rows], batch_first=True, padding_value=False)
        input_ids = pad_sequence([r[2] for r in rows], batch_first=True, padding_value=0)
        device = self.device
        return TokenBatch(embeddings.to(device), mask.to(device), special.to(device), input_ids.to(device))

    def pooled(self, texts: Sequence[str]) -> torch.Tensor:
        """Mean-pooled, L2-normalised sentence embeddings (B, d), as ``Encoder.forward`` computes them."""
        batch = self.tokens(texts)
        return mean_pool(batch.embeddings, batch.mask)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """Pooled embeddings of many texts at the encoder's own (evaluation) length, on CPU (memoised:
        the teacher never changes)."""
        key = (tuple(texts), batch_size, self.encoder.max_length, torch.is_autocast_enabled(self.device.type))
        if key not in self._encoded:
            self._encoded[key] = self.encoder.encode(list(texts), batch_size=batch_size)
        return self._encoded[key]
