r"""Marginals (token weights) for padded token sets.

A sentence with token mask :math:`\mathbb{1}[\text{real}]` and optional non-negative token weights
:math:`w` (IDF, attention, anything) gets the probability vector

.. math::
    a_i = \frac{w_i\,\mathbb{1}[\text{real}_i]}{\sum_k w_k\,\mathbb{1}[\text{real}_k]},
    \qquad w \equiv 1 \text{ by default (uniform over the real tokens).}

Padded tokens get exactly zero mass, so the optimal transport plan never touches them.
A row with no real token (or zero total weight) gets the all-zero vector: the solver treats such a
problem as *empty* (zero plan, zero cost; see :func:`optical_lab.ot.sinkhorn`).
"""

from __future__ import annotations

import torch
from torch import Tensor


def masked_marginals(mask: Tensor, weights: Tensor | None = None, *, dtype: torch.dtype | None = None) -> Tensor:
    r"""Probability vectors over the real tokens of each row, zero on padding.

    Parameters
    ----------
    mask : bool Tensor, shape (B, n)
        ``True`` for tokens that may carry mass.
    weights : Tensor, shape (B, n), optional
        Non-negative token weights; uniform when ``None``. Gradients flow into ``weights``.
    dtype : torch.dtype, optional
        Output dtype; defaults to ``weights.dtype`` or :func:`torch.get_default_dtype`.

    Returns
    -------
    Tensor, shape (B, n): rows sum to 1, or are all zero when a row has no mass at all.
    """
    mask = mask.bool()
    if weights is None:
        w = mask.to(dtype or torch.get_default_dtype())
    else:
        if weights.shape != mask.shape:
            raise ValueError(f"weights {tuple(weights.shape)} must have the mask's shape {tuple(mask.shape)}")
        if bool((weights < 0).any()):
            raise ValueError("token weights must be non-negative")
        w = torch.where(mask, weights, 0.0).to(dtype or weights.dtype)
    total = w.sum(-1, keepdim=True)
    return w / torch.where(total > 0, total, 1.0)
