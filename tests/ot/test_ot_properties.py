"""Hypothesis property tests: padding invariance and permutation equivariance of the OT pipeline."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from optical_lab.ot import cost_matrix, masked_marginals, sinkhorn

SETTINGS = settings(max_examples=25, deadline=None)


@st.composite
def problems(draw):
    n, m = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, n, 4, generator=g, dtype=torch.float64)
    y = torch.randn(1, m, 4, generator=g, dtype=torch.float64)
    w_x = 0.2 + torch.rand(1, n, generator=g, dtype=torch.float64)
    w_y = 0.2 + torch.rand(1, m, generator=g, dtype=torch.float64)
    kind = draw(st.sampled_from(["cosine", "sqeuclidean", "dot"]))
    method = draw(st.sampled_from(["kernel", "log"]))
    eps = draw(st.sampled_from([0.05, 0.2, 1.0]))
    return x, y, w_x, w_y, kind, method, eps, g


def absolute_epsilon(x, y, kind, eps):
    """Epsilon relative to the problem's cost scale, so that every drawn problem is well conditioned."""
    scale = float(cost_matrix(x, y, kind=kind).abs().max()) if kind != "cosine" else 1.0
    return eps * max(scale, 1e-3)


def solve(x, y, x_mask, y_mask, w_x, w_y, kind, method, eps):
    C = cost_matrix(x, y, x_mask, y_mask, kind=kind)
    a, b = masked_marginals(x_mask, w_x), masked_marginals(y_mask, w_y)
    return sinkhorn(C, a, b, epsilon=eps, n_iters=40, method=method, early_exit=False, eps_scaling=None)


@SETTINGS
@given(problems(), st.integers(0, 4), st.integers(0, 4), st.data())
def test_adding_padding_does_not_change_results(problem, pad_x, pad_y, data):
    x, y, w_x, w_y, kind, method, eps, g = problem
    n, m = x.shape[1], y.shape[1]
    eps = absolute_epsilon(x, y, kind, eps)
    base = solve(
        x, y, torch.ones(1, n, dtype=torch.bool), torch.ones(1, m, dtype=torch.bool), w_x, w_y, kind, method, eps
    )
    # insert garbage padding tokens at random positions, next to another, unrelated problem in the batch
    perm_x = torch.tensor(data.draw(st.permutations(range(n + pad_x))))
    perm_y = torch.tensor(data.draw(st.permutations(range(m + pad_y))))
    x_pad = torch.cat([x, 100 * torch.randn(1, pad_x, 4, generator=g, dtype=x.dtype)], 1)[:, perm_x]
    y_pad = torch.cat([y, 100 * torch.randn(1, pad_y, 4, generator=g, dtype=y.dtype)], 1)[:, perm_y]
    x_mask = (perm_x < n)[None]
    y_mask = (perm_y < m)[None]
    wx_pad = torch.cat([w_x, torch.rand(1, pad_x, generator=g, dtype=x.dtype)], 1)[:, perm_x]
    wy_pad = torch.cat([w_y, torch.rand(1, pad_y, generator=g, dtype=y.dtype)], 1)[:, perm_y]
    other = [torch.randn_like(t) for t in (x_pad, y_pad)]
    batch = solve(
        torch.cat([x_pad, other[0]]),
        torch.cat([y_pad, other[1]]),
        torch.cat([x_mask, torch.ones_like(x_mask)]),
        torch.cat([y_mask, torch.ones_like(y_mask)]),
        torch.cat([wx_pad, torch.ones_like(wx_pad)]),
        torch.cat([wy_pad, torch.ones_like(wy_pad)]),
        kind,
        method,
        eps,
    )
    plan = batch.plan[0]
    assert (plan[~x_mask[0]] == 0).all() and (plan[:, ~y_mask[0]] == 0).all()
    # position of original token k in the padded, shuffled sequence
    pos_x, pos_y = torch.argsort(perm_x)[:n], torch.argsort(perm_y)[:m]
    torch.testing.assert_close(plan[pos_x][:, pos_y], base.plan[0], atol=1e-10, rtol=1e-7)
    torch.testing.assert_close(batch.transport_cost[0], base.transport_cost[0], atol=1e-10, rtol=1e-7)
    torch.testing.assert_close(batch.entropic_cost[0], base.entropic_cost[0], atol=1e-10, rtol=1e-7)
    torch.testing.assert_close(batch.f[0][pos_x], base.f[0], atol=1e-8, rtol=1e-7)


@SETTINGS
@given(problems(), st.data())
def test_permutation_equivariance(problem, data):
    x, y, w_x, w_y, kind, method, eps, _ = problem
    n, m = x.shape[1], y.shape[1]
    eps = absolute_epsilon(x, y, kind, eps)
    ones_x, ones_y = torch.ones(1, n, dtype=torch.bool), torch.ones(1, m, dtype=torch.bool)
    base = solve(x, y, ones_x, ones_y, w_x, w_y, kind, method, eps)
    p = torch.tensor(data.draw(st.permutations(range(n))))
    q = torch.tensor(data.draw(st.permutations(range(m))))
    out = solve(x[:, p], y[:, q], ones_x, ones_y, w_x[:, p], w_y[:, q], kind, method, eps)
    # permuting the tokens permutes rows/columns of the plan and potentials; costs are unchanged
    torch.testing.assert_close(out.plan[0], base.plan[0][p][:, q], atol=1e-10, rtol=1e-7)
    torch.testing.assert_close(out.f[0], base.f[0][p], atol=1e-8, rtol=1e-7)
    torch.testing.assert_close(out.g[0], base.g[0][q], atol=1e-8, rtol=1e-7)
    torch.testing.assert_close(out.transport_cost, base.transport_cost, atol=1e-10, rtol=1e-7)
