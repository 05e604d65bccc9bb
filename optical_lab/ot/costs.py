r"""Pairwise cost matrices between two padded batches of token embeddings.

For a batch of ``B`` sentence pairs with teacher tokens :math:`x \in \mathbb{R}^{B\times n\times d}`
and student tokens :math:`y \in \mathbb{R}^{B\times m\times d}`, :func:`cost_matrix` returns
:math:`C \in \mathbb{R}^{B\times n\times m}` with :math:`C_{bij} = c(x_{bi}, y_{bj})`:

- ``"cosine"``      :math:`c(x, y) = 1 - \frac{\langle x, y\rangle}{\|x\|\,\|y\|}` (values in :math:`[0, 2]`;
  the cost used by OPTICAL, Huang, Yu & Allan, WSDM 2023, arXiv:2301.12566),
- ``"sqeuclidean"`` :math:`c(x, y) = \|x - y\|_2^2`,
- ``"dot"``         :math:`c(x, y) = -\langle x, y\rangle` (may be negative; the solver is shift invariant).

Entries that involve a padded token (``mask == False``) are set to ``0``: they are never given
transport mass (see :mod:`optical_lab.ot.marginals`), so their value only has to be finite.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .spec import COST_KINDS, CostKind  # noqa: F401  (declared with the OT problem; re-exported)


def cost_matrix(
    x: Tensor,
    y: Tensor,
    x_mask: Tensor | None = None,
    y_mask: Tensor | None = None,
    kind: CostKind = "cosine",
) -> Tensor:
    r"""Batched pairwise cost :math:`C_{bij} = c(x_{bi}, y_{bj})` between padded token sets.

    Parameters
    ----------
    x : Tensor, shape (B, n, d)
        First set of points (in OPTICAL: the frozen teacher's English token embeddings).
    y : Tensor, shape (B, m, d)
        Second set of points (the student's low-resource-language token embeddings).
    x_mask, y_mask : bool Tensor, shape (B, n) / (B, m), optional
        ``True`` marks a real token. Costs involving a padded token are set to ``0``.
    kind : {"cosine", "sqeuclidean", "dot"}
        Ground cost, see the module docstring.

    Returns
    -------
    Tensor, shape (B, n, m), same dtype and device as ``x``.
    Differentiable with respect to ``x`` and ``y``; padded entries get zero gradient.
    """
    if x.dim() != 3 or y.dim() != 3 or x.shape[0] != y.shape[0] or x.shape[2] != y.shape[2]:
        raise ValueError(f"expected x (B, n, d) and y (B, m, d), got {tuple(x.shape)} and {tuple(y.shape)}")
    if kind == "cosine":
        x_unit = torch.nn.functional.normalize(x, dim=-1)
        y_unit = torch.nn.functional.normalize(y, dim=-1)
        cost = 1.0 - torch.bmm(x_unit, y_unit.mT)
    elif kind == "sqeuclidean":
        sq_norms = x.square().sum(-1)[:, :, None] + y.square().sum(-1)[:, None, :]
        cost = torch.baddbmm(sq_norms, x, y.mT, alpha=-2.0).clamp_min(0.0)
    elif kind == "dot":
        cost = -torch.bmm(x, y.mT)
    else:
        raise ValueError(f"unknown cost kind {kind!r}; expected one of {COST_KINDS}")
    if x_mask is None and y_mask is None:
        return cost
    B, n, m = cost.shape
    rows = x_mask.bool() if x_mask is not None else cost.new_ones(B, n, dtype=torch.bool)
    cols = y_mask.bool() if y_mask is not None else cost.new_ones(B, m, dtype=torch.bool)
    return torch.where(rows[:, :, None] & cols[:, None, :], cost, 0.0)


def centre_tokens(x: Tensor, mask: Tensor) -> Tensor:
    r"""Each set's tokens minus the set's mean token: :math:`x_{bi} - \frac{1}{|K_b|}\sum_{k \in K_b} x_{bk}`.

    ``x`` (B, n, d); ``mask`` (B, n) bool, ``True`` for the tokens :math:`K_b` the mean is taken over
    (those that carry transport mass). Rows outside the mask are returned centred too (their cost is
    masked anyway); an all-False row keeps its values.
    """
    keep = mask.to(x.dtype)[..., None]
    mean = (x * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True).clamp_min(1.0)
    return x - mean
