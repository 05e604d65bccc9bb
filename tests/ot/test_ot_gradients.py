"""Gradients of the Sinkhorn solver: gradcheck (autodiff), envelope = plan, envelope vs autodiff."""

from __future__ import annotations

import pytest
import torch

from optical_lab.ot import kernel_domain, masked_marginals, sinkhorn

# the fixed-iteration solver of protocols v1/v2 (no early exit, no epsilon-scaling): same iterates as POT's
FIXED = {"early_exit": False, "eps_scaling": None}


def small_problem(seed: int = 0, B: int = 2, n: int = 3, m: int = 4):
    g = torch.Generator().manual_seed(seed)
    C = torch.rand(B, n, m, generator=g, dtype=torch.float64)
    mask_a = torch.ones(B, n, dtype=torch.bool)
    mask_a[1, -1] = False
    mask_b = torch.ones(B, m, dtype=torch.bool)
    mask_b[0, -1] = False
    w_a = 0.5 + torch.rand(B, n, generator=g, dtype=torch.float64)
    w_b = 0.5 + torch.rand(B, m, generator=g, dtype=torch.float64)
    return C, w_a, w_b, mask_a, mask_b


@pytest.mark.parametrize("method", ["kernel", "log"])
def test_gradcheck_autodiff_cost_and_weights(method):
    C, w_a, w_b, mask_a, mask_b = small_problem()

    def outputs(C, w_a, w_b):
        a, b = masked_marginals(mask_a, w_a), masked_marginals(mask_b, w_b)
        out = sinkhorn(C, a, b, epsilon=0.1, n_iters=12, check_every=5, method=method, grad="autodiff", **FIXED)
        return out.plan, out.transport_cost, out.entropic_cost, out.f, out.g

    inputs = tuple(t.clone().requires_grad_(True) for t in (C, w_a, w_b))
    assert torch.autograd.gradcheck(outputs, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_log_fallback_path_gradcheck():
    """Small epsilon: blocks leave the safe scaling range and are redone in the log domain."""
    C, w_a, w_b, mask_a, mask_b = small_problem(1)
    a, b = masked_marginals(mask_a, w_a), masked_marginals(mask_b, w_b)

    def cost(C):
        return sinkhorn(
            C, a, b, epsilon=0.002, n_iters=6, check_every=3, method="log", grad="autodiff", **FIXED
        ).transport_cost

    assert torch.autograd.gradcheck(cost, (C.clone().requires_grad_(True),), eps=1e-7, atol=1e-5, rtol=1e-4)


def test_custom_scaling_backward_equals_plain_autograd():
    g = torch.Generator().manual_seed(2)
    B, n, m = 3, 5, 4
    Ka = torch.rand(B, n, m, generator=g, dtype=torch.float64, requires_grad=True)
    KbT = torch.rand(B, m, n, generator=g, dtype=torch.float64, requires_grad=True)
    t0 = torch.rand(B, 1, m, generator=g, dtype=torch.float64, requires_grad=True)
    weights = [torch.randn(B, 1, k, generator=g, dtype=torch.float64) for k in (n, m)]

    s, t, _ = kernel_domain._ScalingIterations.apply(Ka, KbT, t0, 7, 7, None)
    custom = torch.autograd.grad((s * weights[0]).sum() + (t * weights[1]).sum(), (Ka, KbT, t0))
    s, t, _ = kernel_domain._scaling_loop(Ka, KbT, t0, 7, 7, None)  # same loop, recorded by autograd
    plain = torch.autograd.grad((s * weights[0]).sum() + (t * weights[1]).sum(), (Ka, KbT, t0))
    for c, p in zip(custom, plain):
        torch.testing.assert_close(c, p)


@pytest.mark.parametrize("method", ["kernel", "log"])
def test_envelope_gradient_is_the_plan(method):
    C, w_a, w_b, mask_a, mask_b = small_problem(3, B=3, n=6, m=5)
    a, b = masked_marginals(mask_a, w_a), masked_marginals(mask_b, w_b)
    C.requires_grad_(True)
    out = sinkhorn(C, a, b, epsilon=0.05, n_iters=30, method=method, grad="envelope")
    assert not out.plan.requires_grad and not out.f.requires_grad
    upstream = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    (grad_transport,) = torch.autograd.grad((out.transport_cost * upstream).sum(), C, retain_graph=True)
    torch.testing.assert_close(grad_transport, upstream[:, None, None] * out.plan)
    (grad_entropic,) = torch.autograd.grad(out.entropic_cost.sum(), C)
    torch.testing.assert_close(grad_entropic, out.plan)


@pytest.mark.parametrize("method", ["kernel", "log"])
def test_envelope_matches_autodiff_at_convergence(method):
    """Danskin: d OT_eps / dC = P*, so autodiff through converged iterations must agree with the envelope."""
    C, w_a, w_b, mask_a, mask_b = small_problem(4, B=3, n=7, m=6)
    a, b = masked_marginals(mask_a, w_a), masked_marginals(mask_b, w_b)
    grads = {}
    for grad in ("autodiff", "envelope"):
        Cg = C.clone().requires_grad_(True)
        out = sinkhorn(Cg, a, b, epsilon=0.1, n_iters=300, method=method, grad=grad, **FIXED)
        assert out.converged.all()
        out.entropic_cost.sum().backward()
        grads[grad] = Cg.grad
    torch.testing.assert_close(grads["autodiff"], grads["envelope"], atol=1e-9, rtol=0)


def test_autodiff_gradient_float32_is_finite_and_close_to_float64():
    C, w_a, w_b, mask_a, mask_b = small_problem(5, B=4, n=8, m=8)
    a, b = masked_marginals(mask_a, w_a), masked_marginals(mask_b, w_b)
    grads = []
    for dtype in (torch.float32, torch.float64):
        Cg = C.to(dtype).requires_grad_(True)
        sinkhorn(
            Cg, a.to(dtype), b.to(dtype), epsilon=0.05, n_iters=50, grad="autodiff", **FIXED
        ).transport_cost.sum().backward()
        grads.append(Cg.grad.double())
    torch.testing.assert_close(grads[0], grads[1], atol=1e-4, rtol=1e-3)


def test_autodiff_with_early_stopping_equals_fixed_iteration_count():
    C, w_a, w_b, mask_a, mask_b = small_problem(6, B=3, n=6, m=5)
    a, b = masked_marginals(mask_a, w_a), masked_marginals(mask_b, w_b)
    grads, iters = [], []
    for tol, n_iters in ((1e-9, 500), (None, None)):
        Cg = C.clone().requires_grad_(True)
        out = sinkhorn(
            Cg,
            a,
            b,
            epsilon=0.05,
            n_iters=n_iters or iters[0],
            tol=tol,
            check_every=5,
            method="kernel",
            grad="autodiff",
            early_exit=tol is not None,
        )
        out.transport_cost.sum().backward()
        grads.append(Cg.grad)
        iters.append(out.n_iters)
    assert iters[0] == iters[1] < 500
    torch.testing.assert_close(grads[0], grads[1], atol=0, rtol=0)
