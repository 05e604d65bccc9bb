"""Which pairs each training step trains on: seeded, resumable batches, reshuffled every epoch.

The batch of step ``s`` is a pure function of ``(n, batch_size, seed, s)`` (and the lengths): a resumed run
draws exactly the batches an uninterrupted one would, without any sampler state. By default batches are
grouped by length (less padding).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch


@functools.lru_cache(maxsize=4)
def _epoch_batches(
    n: int, batch_size: int, seed: int, epoch: int, lengths: tuple[int, ...] | None
) -> tuple[tuple[int, ...], ...]:
    """The batches of one epoch: a seeded shuffle, optionally grouped by length.

    With ``lengths``, the shuffled pairs are cut into pools of 8 batches, each pool is sorted by
    length and cut into batches, and the batches are shuffled again: batches hold sentences of
    similar length, so little compute goes to padding (about a third of a step otherwise).
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=generator).tolist()
    if lengths is None:
        return tuple(tuple(order[i : i + batch_size]) for i in range(0, n, batch_size))
    pool = 8 * batch_size
    batches = []
    for start in range(0, n, pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches.extend(tuple(chunk[i : i + batch_size]) for i in range(0, len(chunk), batch_size))
    shuffle = torch.randperm(len(batches), generator=generator).tolist()
    return tuple(batches[i] for i in shuffle)


def batch_indices(step: int, n: int, batch_size: int, seed: int, lengths: Sequence[int] | None = None) -> list[int]:
    """Pair indices of batch ``step`` (1-based): a pure function of its arguments, so a resumed run
    draws exactly the batches an uninterrupted one would, without any sampler state."""
    per_epoch = math.ceil(n / batch_size)
    epoch, j = divmod(step - 1, per_epoch)
    return list(_epoch_batches(n, batch_size, seed, epoch, tuple(lengths) if lengths is not None else None)[j])
