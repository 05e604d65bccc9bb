"""Length buckets and the per-problem method choice of optical_lab.ot.sinkhorn: same results as one padded solve."""

from __future__ import annotations

import pytest
import torch

from optical_lab.ot import masked_marginals, sinkhorn
from optical_lab.ot.buckets import BMM_MIN_CELLS, _length_buckets

# the fixed-iteration solver of protocols v1/v2 (no early exit, no epsilon-scaling): same iterates as POT's
FIXED = {"early_exit": False, "eps_scaling": None}


def ragged_batch(seed: int, B: int = 12, n: int = 16, m: int = 20, dtype=torch.float64, scale: float = 1.0):
    """Problems of very different real sizes, real tokens scattered among padding, two empty problems."""
    g = torch.Generator().manual_seed(seed)
    C = scale * torch.rand(B, n, m, generator=g, dtype=dtype)
    mask_a = torch.rand(B, n, generator=g) < torch.linspace(0.1, 1.0, B)[:, None]
    mask_b = torch.rand(B, m, generator=g) < torch.linspace(1.0, 0.2, B)[:, None]
    mask_a[:, 0] |= torch.arange(B) % 2 == 0  # at least one real token in most problems
    mask_b[:, -1] = True
    mask_a[3 % B], mask_b[7 % B] = False, False  # empty problems
    a = masked_marginals(mask_a, 0.5 + torch.rand(B, n, generator=g, dtype=dtype))
    b = masked_marginals(mask_b, 0.5 + torch.rand(B, m, generator=g, dtype=dtype))
    return C, a, b


FIELDS = ("plan", "f", "g", "transport_cost", "entropic_cost", "marginal_error")


@pytest.mark.parametrize("buckets", [2, 3, 5, "auto"])
@pytest.mark.parametrize("method", ["auto", "kernel", "log"])
def test_bucketed_solve_equals_one_padded_solve(buckets, method):
    C, a, b = ragged_batch(0)
    whole = sinkhorn(C, a, b, epsilon=0.05, n_iters=60, method=method, buckets=1, **FIXED)
    split = sinkhorn(C, a, b, epsilon=0.05, n_iters=60, method=method, buckets=buckets, **FIXED)
    for name in FIELDS:
        torch.testing.assert_close(getattr(split, name), getattr(whole, name), atol=1e-12, rtol=0, msg=name)
    assert torch.equal(split.converged, whole.converged) and torch.equal(split.log_domain, whole.log_domain)
    assert split.n_iters == whole.n_iters == 60 and split.method == whole.method
    assert (split.plan[a == 0] == 0).all() and (split.plan.mT[b == 0] == 0).all()  # padding: no mass


def test_buckets_partition_the_batch_and_cover_every_real_token():
    C, a, b = ragged_batch(1, B=40, n=30, m=40)
    layouts = _length_buckets(a > 0, b > 0, 4, n_iters=50)
    assert len(layouts) == 4 and not any(layout.whole for layout in layouts)
    index = torch.cat([layout.index for layout in layouts])
    assert sorted(index.tolist()) == list(range(40))  # every problem exactly once
    for layout in layouts:
        assert layout.rows.shape[1] < 30 or layout.cols.shape[1] < 40 or layout is layouts[-1]
        for i, rows, cols in zip(layout.index, layout.rows, layout.cols):
            assert set((a[i] > 0).nonzero()[:, 0].tolist()) <= set(rows.tolist())
            assert set((b[i] > 0).nonzero()[:, 0].tolist()) <= set(cols.tolist())
    # 'auto' keeps a batch of equal lengths whole (nothing to gain), and splits a ragged one
    full = torch.ones(40, 30, dtype=torch.bool), torch.ones(40, 40, dtype=torch.bool)
    assert _length_buckets(*full, "auto", n_iters=50)[0].whole
    long_and_short = torch.arange(64)[None] < torch.tensor([4, 64] * 128)[:, None]  # 256 problems
    layouts = _length_buckets(long_and_short, long_and_short, "auto", 50)
    assert [(len(layout.index), layout.rows.shape[1]) for layout in layouts] == [(128, 7), (128, 64)]
    assert layouts[0].cols.shape[1] * 7 >= BMM_MIN_CELLS  # small buckets padded up to bmm's fast path


@pytest.mark.parametrize("grad", ["autodiff", "envelope"])
def test_gradients_through_buckets_equal_the_padded_solve(grad):
    C, a, b = ragged_batch(2, B=8, n=6, m=7)
    grads = []
    for buckets in (1, 3):
        Cg = C.clone().requires_grad_(True)
        out = sinkhorn(Cg, a, b, epsilon=0.1, n_iters=30, grad=grad, buckets=buckets, **FIXED)
        (out.transport_cost * torch.arange(1.0, 9.0, dtype=C.dtype)).sum().backward()
        grads.append(Cg.grad)
    torch.testing.assert_close(grads[1], grads[0], atol=1e-12, rtol=0)
    assert (grads[1][a == 0] == 0).all() and (grads[1][3] == 0).all()  # padding and the empty problem


def test_gradcheck_through_buckets():
    C, a, b = ragged_batch(3, B=5, n=4, m=5)
    mask_b = b > 0
    w_b = 0.5 + torch.rand(b.shape, generator=torch.Generator().manual_seed(0), dtype=b.dtype)

    def outputs(C, w_b):  # gradients w.r.t. the cost and the (positive) column weights, through 2 buckets
        out = sinkhorn(
            C, a, masked_marginals(mask_b, w_b), epsilon=0.2, n_iters=15, grad="autodiff", buckets=2, **FIXED
        )
        return out.transport_cost, out.entropic_cost, out.plan

    inputs = (C.clone().requires_grad_(True), w_b.requires_grad_(True))
    assert torch.autograd.gradcheck(outputs, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_mixed_batch_equals_each_problem_solved_alone():
    """Per-problem 'auto': a batch mixing kernel and log problems gives each problem its own solution."""
    C, a, b = ragged_batch(4, B=10, n=8, m=9, dtype=torch.float32, scale=2.0)
    out = sinkhorn(
        C, a, b, epsilon=0.08, n_iters=40, **FIXED
    )  # tau(float32) * 0.08 = 1.74: some spreads above, some below
    assert out.method == "mixed" and out.log_domain.any() and not out.log_domain.all()
    for i in range(10):
        alone = sinkhorn(C[i : i + 1], a[i : i + 1], b[i : i + 1], epsilon=0.08, n_iters=40, **FIXED)
        assert alone.method == ("log" if out.log_domain[i] else "kernel")
        torch.testing.assert_close(out.plan[i : i + 1], alone.plan, atol=1e-6, rtol=0)


def test_invalid_buckets_are_rejected():
    C, a, b = ragged_batch(5, B=3)
    for bad in (0, -1, 1.5, True, "many"):
        with pytest.raises(ValueError, match="buckets"):
            sinkhorn(C, a, b, buckets=bad)
