"""Cost matrices and marginals on padded batches (optical_lab.ot.costs / .marginals)."""

from __future__ import annotations

import pytest
import torch

from optical_lab.ot import cost_matrix, masked_marginals


def _points(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 4, 6, generator=g, dtype=torch.float64)
    y = torch.randn(3, 5, 6, generator=g, dtype=torch.float64)
    return x, y


@pytest.mark.parametrize("kind", ["cosine", "sqeuclidean", "dot"])
def test_cost_matrix_matches_pairwise_definition(kind):
    x, y = _points()
    C = cost_matrix(x, y, kind=kind)
    assert C.shape == (3, 4, 5)
    for b in range(3):
        for i in range(4):
            for j in range(5):
                u, v = x[b, i], y[b, j]
                expected = {
                    "cosine": 1 - torch.dot(u, v) / (u.norm() * v.norm()),
                    "sqeuclidean": (u - v).square().sum(),
                    "dot": -torch.dot(u, v),
                }[kind]
                torch.testing.assert_close(C[b, i, j], expected)


def test_cosine_cost_range_and_masking():
    x, y = _points(1)
    x_mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=torch.bool)
    y_mask = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    x = x.clone()
    x[0, 2:] = 0.0  # zero-vector padding must not create NaN
    x.requires_grad_(True)
    C = cost_matrix(x, y, x_mask, y_mask)
    pair = x_mask[:, :, None] & y_mask[:, None, :]
    assert (C[~pair] == 0).all()
    assert (C[pair] >= 0).all() and (C[pair] <= 2).all()
    C.sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad[0, 2:] == 0).all()


def test_cost_matrix_rejects_bad_input():
    x, y = _points()
    with pytest.raises(ValueError):
        cost_matrix(x, y, kind="manhattan")
    with pytest.raises(ValueError):
        cost_matrix(x, y[..., :3])


def test_uniform_and_weighted_marginals():
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    a = masked_marginals(mask, dtype=torch.float64)
    torch.testing.assert_close(a, torch.tensor([[1 / 3] * 3 + [0.0], [1.0, 0, 0, 0], [0.0] * 4], dtype=torch.float64))
    w = torch.tensor([[1.0, 2.0, 1.0, 9.0], [5.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]], requires_grad=True)
    aw = masked_marginals(mask, w)
    torch.testing.assert_close(aw, torch.tensor([[0.25, 0.5, 0.25, 0.0], [1.0, 0, 0, 0], [0.0] * 4]))
    aw[0, 1].backward()
    assert torch.isfinite(w.grad).all() and w.grad[0, 3] == 0
    with pytest.raises(ValueError):
        masked_marginals(mask, -w.detach())
