"""Batched Sinkhorn (optical_lab.ot.sinkhorn) against POT, limits, padding, stability."""

from __future__ import annotations

import numpy as np
import ot
import ot.batch
import pytest
import torch

from optical_lab.ot import SinkhornOutput, masked_marginals, sinkhorn

# the fixed-iteration solver of protocols v1/v2 (no early exit, no epsilon-scaling): same iterates as POT's
FIXED = {"early_exit": False, "eps_scaling": None}


def ragged_problem(seed: int, B: int = 5, n: int = 7, m: int = 6, dtype=torch.float64, scale: float = 1.0):
    """Random costs in [0, scale] with random lengths, random (non-uniform) weights and padding."""
    g = torch.Generator().manual_seed(seed)
    C = scale * torch.rand(B, n, m, generator=g, dtype=dtype)
    n_len = torch.randint(1, n + 1, (B,), generator=g)
    m_len = torch.randint(1, m + 1, (B,), generator=g)
    mask_a = torch.arange(n)[None] < n_len[:, None]
    mask_b = torch.arange(m)[None] < m_len[:, None]
    a = masked_marginals(mask_a, 0.5 + torch.rand(B, n, generator=g, dtype=dtype))
    b = masked_marginals(mask_b, 0.5 + torch.rand(B, m, generator=g, dtype=dtype))
    return C, a, b, mask_a, mask_b


def unpadded(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor | None = None) -> np.ndarray:
    x = x[rows]
    return (x if cols is None else x[:, cols]).detach().numpy()


@pytest.mark.parametrize("method", ["kernel", "log"])
def test_plans_match_pot_on_ragged_problems(method):
    eps = 0.1
    C, a, b, mask_a, mask_b = ragged_problem(0)
    out = sinkhorn(C, a, b, epsilon=eps, n_iters=5000, tol=1e-13, method=method)
    assert out.converged.all() and out.method == method
    for i in range(C.shape[0]):
        ai, bi = unpadded(a[i], mask_a[i]), unpadded(b[i], mask_b[i])
        Ci = unpadded(C[i], mask_a[i], mask_b[i])
        plan = unpadded(out.plan[i], mask_a[i], mask_b[i])
        for reference in (
            ot.sinkhorn(ai, bi, Ci, eps, stopThr=1e-15, numItermax=20000),
            ot.bregman.sinkhorn_log(ai, bi, Ci, eps, stopThr=1e-15, numItermax=20000),
        ):
            np.testing.assert_allclose(plan, reference, atol=1e-6, rtol=0)
        # padding never receives mass
        assert out.plan[i][~mask_a[i]].abs().sum() == 0 and out.plan[i][:, ~mask_b[i]].abs().sum() == 0


@pytest.mark.parametrize("method, pot_method", [("kernel", "sinkhorn"), ("log", "log_sinkhorn")])
@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_fixed_iteration_iterates_equal_pot_batch_solver(method, pot_method, dtype, atol):
    """Same update order as ot.batch.solve_batch: equal plans after the same (unconverged) iteration count."""
    g = torch.Generator().manual_seed(1)
    C = torch.rand(4, 8, 9, generator=g, dtype=torch.float64)
    a, b = torch.full((4, 8), 1 / 8, dtype=torch.float64), torch.full((4, 9), 1 / 9, dtype=torch.float64)
    ours = sinkhorn(C.to(dtype), a.to(dtype), b.to(dtype), epsilon=0.05, n_iters=7, method=method, **FIXED)
    ref = ot.batch.solve_batch(C, 0.05, a, b, max_iter=7, tol=0.0, method=pot_method, grad="detach")
    assert ours.n_iters == 7
    torch.testing.assert_close(ours.plan.double(), ref.plan, atol=atol, rtol=0)


def test_transport_cost_tends_to_emd_as_epsilon_vanishes():
    C, a, b, mask_a, mask_b = ragged_problem(2, B=3, n=6, m=5)
    emd = torch.tensor(
        [
            ot.emd2(unpadded(a[i], mask_a[i]), unpadded(b[i], mask_b[i]), unpadded(C[i], mask_a[i], mask_b[i]))
            for i in range(3)
        ],
        dtype=torch.float64,
    )
    gaps = []
    for eps in (0.1, 0.03, 0.01, 0.003, 0.001):
        out = sinkhorn(C, a, b, epsilon=eps, n_iters=3000, tol=1e-10, method="auto")
        gaps.append(float((out.transport_cost - emd).abs().max()))
        assert (out.transport_cost >= emd - 1e-6).all()  # OT is the minimum over feasible plans
    assert all(later <= earlier + 1e-9 for earlier, later in zip(gaps, gaps[1:])), gaps
    assert gaps[-1] < 5e-3, gaps


@pytest.mark.parametrize("method", ["kernel", "log"])
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_plan_marginals_match_a_and_b(method, dtype, tol):
    C, a, b, _, _ = ragged_problem(3, dtype=dtype)
    out = sinkhorn(C, a, b, epsilon=0.05, n_iters=2000, tol=tol, method=method, eps_scaling=None)
    assert out.converged.all()
    assert (out.marginal_error <= tol).all()
    torch.testing.assert_close(out.plan.sum(2), a, atol=tol, rtol=0)
    torch.testing.assert_close(out.plan.sum(1), b, atol=tol, rtol=0)
    assert out.errors[-1] <= tol and out.n_iters < 2000 and len(out.errors) == out.n_iters // 10


def test_output_fields_and_dual_identities():
    C, a, b, mask_a, mask_b = ragged_problem(4)
    eps = 0.05
    out = sinkhorn(C, a, b, epsilon=eps, n_iters=3000, tol=1e-12)
    assert isinstance(out, SinkhornOutput)
    B, n, m = C.shape
    assert out.plan.shape == (B, n, m) and out.f.shape == (B, n) and out.g.shape == (B, m)
    for field in (out.transport_cost, out.entropic_cost, out.marginal_error, out.converged):
        assert field.shape == (B,)
    assert out.converged.dtype == torch.bool and isinstance(out.n_iters, int)
    assert all(isinstance(e, float) for e in out.errors)
    # P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps); OT_eps = <f, a> + <g, b> at convergence
    expected = a[:, :, None] * b[:, None, :] * torch.exp((out.f[:, :, None] + out.g[:, None, :] - C) / eps)
    torch.testing.assert_close(out.plan, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(out.entropic_cost, (out.f * a).sum(-1) + (out.g * b).sum(-1))
    torch.testing.assert_close(out.transport_cost, (out.plan * C).sum((1, 2)))
    assert (out.f[~mask_a] == 0).all() and (out.g[~mask_b] == 0).all()
    # POT's entropic value uses -H(P); ours uses KL(P || a x b): same plan, costs differ by eps * (H(a) + H(b))
    for i in range(B):
        ai, bi = unpadded(a[i], mask_a[i]), unpadded(b[i], mask_b[i])
        loss = ot.sinkhorn2(ai, bi, unpadded(C[i], mask_a[i], mask_b[i]), eps, stopThr=1e-14, numItermax=20000)
        entropy = -(ai * np.log(ai)).sum() - (bi * np.log(bi)).sum()
        assert abs(float(out.transport_cost[i]) - float(loss)) < 1e-8
        plan = unpadded(out.plan[i], mask_a[i], mask_b[i])
        pot_reg = float(out.transport_cost[i]) + eps * (plan * np.log(plan)).sum()
        assert abs(float(out.entropic_cost[i]) - (pot_reg + eps * entropy)) < 1e-8


@pytest.mark.parametrize("method", ["auto", "log"])
@pytest.mark.parametrize("grad", ["autodiff", "envelope"])
def test_no_nan_float32_epsilon_1e_3(method, grad):
    torch.manual_seed(5)
    C, a, b, _, _ = ragged_problem(5, B=6, n=12, m=10, dtype=torch.float32, scale=2.0)
    a[2] = 0.0  # an all-padding row on one side
    C.requires_grad_(True)
    out = sinkhorn(C, a, b, epsilon=1e-3, n_iters=60, method=method, grad=grad)
    # 'auto' chooses per problem: problem 5 has a single real column (cost spread 0) and runs the kernel;
    # the empty problem 2 uses neither
    assert out.method == ("log" if method == "log" else "mixed")
    assert out.log_domain.tolist() == [True, True, False, True, True, method == "log"]
    for t in (out.plan, out.f, out.g, out.transport_cost, out.entropic_cost, out.marginal_error):
        assert torch.isfinite(t).all()
    (out.transport_cost.sum() + out.entropic_cost.sum()).backward()
    assert torch.isfinite(C.grad).all()


@pytest.mark.parametrize("method", ["kernel", "log"])
@pytest.mark.parametrize("grad", ["autodiff", "envelope"])
def test_all_padding_rows_return_zero_plan_and_cost(method, grad):
    """Documented behaviour: a problem with no mass on either side is empty -> zeros, converged, no NaN."""
    C, a, b, _, _ = ragged_problem(6, B=4)
    a[1] = 0.0
    b[3] = 0.0
    a[0], b[0] = 0.0, 0.0
    C = C.clone().requires_grad_(True)
    out = sinkhorn(C, a, b, epsilon=0.05, n_iters=20, method=method, grad=grad)
    for i in (0, 1, 3):
        assert (out.plan[i] == 0).all() and (out.f[i] == 0).all() and (out.g[i] == 0).all()
        assert out.transport_cost[i] == 0 and out.entropic_cost[i] == 0 and out.marginal_error[i] == 0
        assert out.converged[i]
    assert out.transport_cost[2] > 0
    out.entropic_cost.sum().backward()
    assert torch.isfinite(C.grad).all() and (C.grad[[0, 1, 3]] == 0).all()
    all_empty = sinkhorn(C.detach()[:1], a[:1], b[:1], method=method, grad=grad)
    assert (all_empty.plan == 0).all() and all_empty.transport_cost.item() == 0


def cost_spread(C, mask_a, mask_b):
    """max_ij (C_ij - min_k C_ik) over the real pairs of each problem, computed the slow, obvious way."""
    return torch.tensor(
        [float((Ci[ra][:, rb] - Ci[ra][:, rb].amin(1, keepdim=True)).max()) for Ci, ra, rb in zip(C, mask_a, mask_b)]
    )


def test_auto_method_choice_and_kernel_warning():
    C, a, b, mask_a, mask_b = ragged_problem(7, dtype=torch.float32)
    spread = cost_spread(C, mask_a, mask_b)
    assert (spread <= 1).all() and (spread > 0.01 * 21.8).sum() == 3 and (spread < 0.01 * 21.8).sum() == 2
    out = sinkhorn(C, a, b, epsilon=0.05, n_iters=10)  # spread <= 1 -> 20 < 21.8 = tau(float32)
    assert out.method == "kernel" and not out.log_domain.any()
    # per problem: the log domain exactly where spread / epsilon > tau, the kernel elsewhere
    out = sinkhorn(C, a, b, epsilon=0.01, n_iters=10)
    assert out.method == "mixed" and out.log_domain.tolist() == (spread / 0.01 > 21.8).tolist()
    assert sinkhorn(C[out.log_domain], a[out.log_domain], b[out.log_domain], epsilon=0.01).method == "log"
    assert sinkhorn(C.double(), a.double(), b.double(), epsilon=0.01, n_iters=10).method == "kernel"  # tau = 177
    with pytest.warns(RuntimeWarning, match="underflow"):
        sinkhorn(C, a, b, epsilon=0.001, n_iters=10, method="kernel")


def test_shift_invariance_and_negative_costs():
    """Adding a constant to C (e.g. the negative 'dot' cost) shifts the costs, not the plan."""
    C, a, b, _, _ = ragged_problem(8)
    out = sinkhorn(C, a, b, epsilon=0.05, n_iters=200)
    shifted = sinkhorn(C - 50.0, a, b, epsilon=0.05, n_iters=200)
    torch.testing.assert_close(shifted.plan, out.plan, atol=1e-12, rtol=0)
    torch.testing.assert_close(shifted.transport_cost, out.transport_cost - 50.0)


def test_fixed_iteration_count_and_input_validation():
    C, a, b, _, _ = ragged_problem(9)
    out = sinkhorn(C, a, b, n_iters=25, check_every=10, **FIXED)
    assert out.n_iters == 25 and len(out.errors) == 3
    with pytest.raises(ValueError):
        sinkhorn(C, a, b, epsilon=0.0)
    with pytest.raises(ValueError):
        sinkhorn(C, a[:, :-1], b)
    with pytest.raises(ValueError):
        sinkhorn(C, a, b, method="exact")
    with pytest.raises(ValueError):
        sinkhorn(C, a, b, grad="implicit")
