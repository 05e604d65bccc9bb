"""The solved Sinkhorn (issue #31): epsilon-scaling, early exit, warm starts, against POT at tight tolerance;
the one home of the OT defaults; the legacy (fixed-budget) solver still reachable with the old fingerprints."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import ot
import pytest
import torch

from optical_lab.methods import TrainConfig, preset
from optical_lab.methods.config import ADDED_FIELDS
from optical_lab.ot import OTDistillationLoss, SinkhornSpec, cost_matrix, sinkhorn
from optical_lab.ot.sinkhorn import CHECK_EVERY

LEGACY = {"n_iters": 50, "early_exit": False, "eps_scaling": None}  # protocols v1/v2's solver


def hard_problem(seed: int, B: int = 4, n: int = 16, dtype=torch.float64):
    """Token-like cosine costs with near-duplicate tokens (slow for plain Sinkhorn at epsilon 0.02)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, n, 32, generator=g, dtype=dtype)
    x[:, n // 2 :] = x[:, : n - n // 2] + 0.3 * torch.randn(B, n - n // 2, 32, generator=g, dtype=dtype)
    y = x + 0.15 * torch.randn(B, n, 32, generator=g, dtype=dtype)
    a = torch.full((B, n), 1.0 / n, dtype=dtype)
    return cost_matrix(x, y), a, a.clone()


def pot_plans(C, a, b, eps):
    """ot.sinkhorn in the log domain, to POT's marginal error 1e-10 (90-520 iterations on these problems)."""
    return [
        ot.sinkhorn(
            a[i].numpy(), b[i].numpy(), C[i].numpy(), eps, method="sinkhorn_log", stopThr=1e-10, numItermax=5000
        )
        for i in range(C.shape[0])
    ]


@pytest.mark.parametrize("method", ["kernel", "log"])
def test_eps_scaled_and_warm_started_solves_match_pot_at_tight_tolerance(method):
    eps = 0.02
    C, a, b = hard_problem(0)
    refs = pot_plans(C, a, b, eps)
    scaled = sinkhorn(C, a, b, epsilon=eps, n_iters=20000, tol=1e-9, method=method, eps_scaling=0.5)
    warm = sinkhorn(C, a, b, epsilon=eps, n_iters=20000, tol=1e-9, method=method, g_init=scaled.g + 0.01)
    for out in (scaled, warm):
        assert out.converged.all() and (out.marginal_error <= 1e-9).all() and out.method == method
        for i, ref in enumerate(refs):
            np.testing.assert_allclose(out.plan[i].numpy(), ref, atol=1e-9, rtol=0)
            assert abs(float(out.transport_cost[i]) - float(np.sum(ref * C[i].numpy()))) < 1e-9  # the loss
    # POT's own epsilon-scaling solver agrees as well
    i = 3
    ref = ot.bregman.sinkhorn_epsilon_scaling(
        a[i].numpy(), b[i].numpy(), C[i].numpy(), eps, stopThr=1e-12, numItermax=200, warn=False
    )
    np.testing.assert_allclose(scaled.plan[i].numpy(), ref, atol=1e-8, rtol=0)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-9), (torch.float32, None)])
def test_a_warm_start_from_the_solution_converges_at_the_first_check(dtype, tol):
    C, a, b = hard_problem(1, dtype=dtype)
    solved = sinkhorn(C, a, b, epsilon=0.02, n_iters=20000, tol=tol)
    again = sinkhorn(C, a, b, epsilon=0.02, n_iters=20000, tol=tol, g_init=solved.g)
    assert solved.converged.all() and again.converged.all()
    assert again.n_iters == CHECK_EVERY < solved.n_iters
    torch.testing.assert_close(again.plan, solved.plan, atol=1e-6 if dtype == torch.float32 else 1e-9, rtol=0)


def test_eps_scaling_reaches_tolerance_where_50_plain_iterations_do_not():
    C, a, b = hard_problem(0, dtype=torch.float32)  # the training dtype: tol = sqrt(float32 eps)
    legacy = sinkhorn(C, a, b, epsilon=0.02, **LEGACY)
    solved = sinkhorn(C, a, b, epsilon=0.02)  # SinkhornSpec's defaults
    cold = sinkhorn(C, a, b, epsilon=0.02, eps_scaling=None)
    assert legacy.n_iters == 50 and not legacy.converged.all()
    assert solved.converged.all() and solved.n_iters < 50
    assert cold.converged.all() and solved.n_iters < cold.n_iters


def test_early_exit_stops_at_tolerance_and_without_it_runs_the_budget():
    C = torch.rand(4, 12, 10, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    a, b = torch.full((4, 12), 1 / 12, dtype=C.dtype), torch.full((4, 10), 1 / 10, dtype=C.dtype)
    stopped = sinkhorn(C, a, b, epsilon=0.05, n_iters=5000, tol=1e-9, eps_scaling=None)
    full = sinkhorn(C, a, b, epsilon=0.05, n_iters=5000, tol=1e-9, eps_scaling=None, early_exit=False)
    assert stopped.n_iters % CHECK_EVERY == 0 and stopped.n_iters < 5000 and full.n_iters == 5000
    assert stopped.errors[-1] <= 1e-9 < stopped.errors[-2]  # the first check within tolerance stops it
    assert stopped.converged.all() and full.converged.all()


def test_sinkhorn_takes_its_defaults_from_sinkhorn_spec():
    spec, params = SinkhornSpec(), inspect.signature(sinkhorn).parameters
    for name, value in spec.solver_options().items():
        assert params[name].default == value, name
    assert spec.grad == "envelope" and spec.early_exit and spec.eps_scaling is not None


def test_bad_solver_settings_are_refused():
    C, a, b = hard_problem(0)
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="eps_scaling"):
            sinkhorn(C, a, b, eps_scaling=bad)
        with pytest.raises(ValueError, match="eps_scaling"):
            SinkhornSpec(eps_scaling=bad)
    with pytest.raises(ValueError, match="g_init"):
        sinkhorn(C, a, b, g_init=torch.zeros(4, 3, dtype=C.dtype))
    with pytest.raises(ValueError, match="tol"):
        SinkhornSpec(tol=0.0)


def test_the_loss_warm_starts_only_when_asked_and_the_shapes_agree():
    g = torch.Generator().manual_seed(0)
    teacher, student = torch.randn(3, 6, 8, generator=g), torch.randn(3, 5, 8, generator=g)
    t_mask, s_mask = torch.ones(3, 6, dtype=torch.bool), torch.ones(3, 5, dtype=torch.bool)
    cold = OTDistillationLoss(epsilon=0.05)
    warm = OTDistillationLoss(epsilon=0.05, warm_start=True)
    cold(teacher, t_mask, student, s_mask)
    first = cold.last_output.n_iters
    cold(teacher, t_mask, student, s_mask)
    assert cold.last_output.n_iters == first  # never warm-started
    warm(teacher, t_mask, student, s_mask)
    assert warm.last_output.n_iters == first  # nothing to start from yet
    warm(teacher, t_mask, student, s_mask)  # the same problem again: from its solution
    assert warm.last_output.n_iters == CHECK_EVERY < first
    # another shape (B, n, m): a cold start, not an error
    warm(teacher[:, :4], t_mask[:, :4], student, s_mask)
    cold(teacher[:, :4], t_mask[:, :4], student, s_mask)
    assert warm.last_output.n_iters == cold.last_output.n_iters
    torch.testing.assert_close(warm.last_output.plan, cold.last_output.plan, atol=0, rtol=0)


def test_new_ot_fields_keep_old_fingerprints_and_read_old_configs_as_legacy():
    legacy = TrainConfig().replace(**{"n_iters": 50, "ot_early_exit": False, "ot_eps_scaling": None})
    fields = legacy.fingerprint_fields()
    assert not any(key in fields for key in ("ot_early_exit", "ot_eps_scaling", "ot_warm_start"))
    assert all(
        ADDED_FIELDS[f"ot_{k}"] == v for k, v in (("early_exit", False), ("eps_scaling", None), ("warm_start", False))
    )
    # a config saved before the fields existed (nested layout without them) reads as the legacy solver
    saved = legacy.to_dict()
    for name in ("early_exit", "eps_scaling", "warm_start"):
        del saved["sinkhorn"][name]
    assert TrainConfig.from_dict(saved) == legacy and TrainConfig.from_dict(saved).fingerprint() == legacy.fingerprint()
    # ... and one saved with them reads back as it was
    solved = TrainConfig()
    assert TrainConfig.from_dict(solved.to_dict()) == solved
    assert solved.fingerprint_fields()["ot_early_exit"] is True and solved.fingerprint() != legacy.fingerprint()
    assert legacy.replace(ot_warm_start=True).fingerprint() != legacy.fingerprint()
    # protocol v2's preset is the fixed-budget solver it ran
    assert dataclasses.asdict(preset("v2").sinkhorn) == {**dataclasses.asdict(SinkhornSpec()), **LEGACY}


def test_a_tiny_epsilon_never_anneals_forever():
    """ε = 1e-300 overflowed the cost spread to inf and the annealing schedule grew without end (out of
    memory); now there is no schedule and the solve stops within its iteration budget."""
    torch.manual_seed(0)
    C = torch.rand(2, 4, 5)
    a, b = torch.full((2, 4), 0.25), torch.full((2, 5), 0.2)
    out = sinkhorn(C, a, b, epsilon=1e-300, n_iters=30)
    assert int(out.n_iters) <= 30
