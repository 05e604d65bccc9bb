r"""Kernel-domain Sinkhorn: the multiplicative scaling iterations and their exact adjoint.

With potentials :math:`\hat f, \hat g` absorbed into the kernel
:math:`\tilde K_{ij} = \exp\big((\hat f_i + \hat g_j - C_{ij})/\varepsilon\big)` and
:math:`P = \mathrm{diag}(a \odot s)\,\tilde K\,\mathrm{diag}(b \odot t)`, one Sinkhorn iteration is

.. math::
    s \leftarrow 1 / \big(\tilde K (b \odot t)\big), \qquad t \leftarrow 1 / \big(\tilde K^\top (a \odot s)\big),

two batched mat-vec products and two reciprocals (Cuturi 2013; with absorbed potentials, Schmitzer 2019's
"stabilized sparse scaling"). From a cold start these are the iterates of
``ot.batch.solve_batch(method="sinkhorn")``. They are exact as long as the scalings stay within
:math:`e^{\pm\tau}`, :math:`\tau` = :func:`max_log_scaling` (the log domain,
:mod:`optical_lab.ot.log_domain`, takes over beyond it).

- :class:`_ScalingState`: the kernel built from the potentials, the scalings, the plan.
- :func:`_scaling_loop`: the loop, with convergence checks every ``check_every`` iterations
  (:class:`_ConvergenceLog`: :math:`\max_b \|P\mathbf{1} - a\|_1` from one mat-vec product; early exit).
- :class:`_ScalingIterations`: ``grad="autodiff"``'s hand-written backward of the loop, the exact adjoint
  (checked with ``torch.autograd.gradcheck``), one batched matmul over the stored iterates instead of
  autograd's ``2N`` rank-one (B, n, m) gradients.

References
----------
M. Cuturi. Sinkhorn Distances: Lightspeed Computation of Optimal Transport. NeurIPS 26, 2013.
B. Schmitzer. Stabilized Sparse Scaling Algorithms for Entropy Regularized Transport Problems. SIAM J. Sci.
Comput. 41(3), 2019.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


def max_log_scaling(dtype: torch.dtype) -> float:
    r""":math:`\tau = -\tfrac14 \log(\text{smallest normal number})`: 21.8 for float32, 177 for float64.

    Kernel entries and scalings within :math:`e^{\pm\tau}` keep every product of the iteration far from
    underflow/overflow, so the multiplicative updates are as accurate as the log-domain ones.
    """
    return -0.25 * math.log(torch.finfo(dtype).tiny)


@dataclass(frozen=True)
class _ScalingState:
    r"""Solver state, in units of :math:`\varepsilon`: absorbed potentials :math:`\hat\varphi = \hat f/\varepsilon`,
    :math:`\hat\gamma = \hat g/\varepsilon` with the kernel built from them, and scalings ``s``, ``t``.

    ``Ka`` = :math:`\mathrm{diag}(a)\tilde K` (B, n, m) and ``KbT`` = :math:`(\tilde K \mathrm{diag}(b))^\top` (B, m, n)
    are stored contiguous so both mat-vec products are fast row-vector ``bmm``; ``valid`` is the float 0/1 mask
    of (real, real) pairs, ``C_eps`` = C / epsilon (0 off ``valid``); ``s`` (B, 1, n) and
    ``t`` (B, 1, m) are row vectors. Plan: :math:`P = \mathrm{diag}(a s) \tilde K \mathrm{diag}(b t)`.
    """

    C_eps: Tensor
    a: Tensor
    b: Tensor
    valid: Tensor
    phi: Tensor
    gamma: Tensor
    Ka: Tensor
    KbT: Tensor
    s: Tensor
    t: Tensor

    @classmethod
    def from_potentials(
        cls, C_eps: Tensor, a: Tensor, b: Tensor, valid: Tensor, phi: Tensor, gamma: Tensor
    ) -> _ScalingState:
        """Absorb (phi, gamma) into the kernel; padded pairs (valid = 0) get kernel value 1: no denominator is 0.

        In-place steps wherever autograd allows: each (B, n, m) temporary avoided is one fresh allocation
        less, and on CPU (glibc) fresh allocations of this size page-fault (benchmarks/RESULTS_sinkhorn.md)."""
        K = torch.add(phi[:, :, None], gamma[:, None, :]).sub_(C_eps).mul_(valid).exp_()
        KbT = K.mT.clone(memory_format=torch.contiguous_format).mul_(b[:, :, None])  # a copy, always
        Ka = K * a[:, :, None] if K.requires_grad or a.requires_grad else K.mul_(a[:, :, None])
        B, n, m = K.shape
        return cls(C_eps, a, b, valid, phi, gamma, Ka=Ka, KbT=KbT, s=K.new_ones(B, 1, n), t=K.new_ones(B, 1, m))

    def iterate(
        self, n_iters: int, check_every: int | None = None, log: _ConvergenceLog | None = None
    ) -> tuple[_ScalingState, int]:
        """Up to ``n_iters`` updates ``s = 1/(K (b t))``, ``t = 1/(K^T (a s))``; with ``log``, check convergence
        every ``check_every`` iterations and stop early. Returns the new state and the iterations run."""
        check = None if log is None else (lambda s, t: log(self, s, t))
        check_every = check_every or n_iters
        if torch.is_grad_enabled() and (self.Ka.requires_grad or self.KbT.requires_grad or self.t.requires_grad):
            s, t, done = _ScalingIterations.apply(self.Ka, self.KbT, self.t, n_iters, check_every, check)
        else:
            s, t, done = _scaling_loop(self.Ka, self.KbT, self.t, n_iters, check_every, check)
        return dataclasses.replace(self, s=s, t=t), done

    def log_scaling(self) -> float:
        """max |log s|, |log t| (NaN if a scaling is not finite or zero): within tau, the block was as exact as
        the log-domain updates; beyond ABSORB_AT * tau, time to absorb."""
        with torch.no_grad():
            return float(torch.maximum(self.s.log().abs().amax(), self.t.log().abs().amax()))

    def potentials(self) -> tuple[Tensor, Tensor]:
        """Current potentials divided by epsilon: (phi + log s, gamma + log t)."""
        return self.phi + self.s.log()[:, 0], self.gamma + self.t.log()[:, 0]

    def absorb(self) -> _ScalingState:
        return _ScalingState.from_potentials(self.C_eps, self.a, self.b, self.valid, *self.potentials())

    def plan(self, kept: Tensor) -> Tensor:
        r""":math:`P = \mathrm{diag}(a s) \tilde K \mathrm{diag}(b t)`, zeroed for problems with ``kept`` = 0 (B, 1)."""
        return (self.s * kept[:, :, None]).mT.mul(self.Ka).mul_(self.b[:, None, :] * self.t)


class _ConvergenceLog:
    r"""Convergence checks: logs :math:`\max_b \|P\mathbf{1} - a\|_1` and says when it is within ``tol``.

    With :math:`P = \mathrm{diag}(a s) \tilde K \mathrm{diag}(b t)`,
    :math:`P\mathbf{1} = a \odot s \odot \tilde K (b t)` (one mat-vec product); the column marginals are exact
    after each ``t`` update.
    """

    def __init__(self, tol: float | None) -> None:
        self.tol = tol
        self.errors: list[float] = []

    def __call__(self, state: _ScalingState, s: Tensor, t: Tensor) -> bool:
        with torch.no_grad():
            deviation = (s * torch.bmm(t, state.KbT)).sub_(1.0).abs_()
            error = torch.linalg.vecdot(deviation[:, 0], state.a)
            self.errors.append(float(error.max()) if error.numel() else 0.0)
        return self.tol is not None and self.errors[-1] <= self.tol


Check = Callable[[Tensor, Tensor], bool]


def _scaling_loop(
    Ka: Tensor,
    KbT: Tensor,
    t: Tensor,
    n_iters: int,
    check_every: int,
    check: Check | None,
    history: tuple[Sequence[Tensor], Sequence[Tensor]] | None = None,
) -> tuple[Tensor, Tensor, int]:
    """The Sinkhorn scaling loop (row vectors): ``s = 1 / (t @ KbT)``, ``t = 1 / (s @ Ka)``.

    ``check(s, t)`` is called every ``check_every`` iterations and after the last one; the loop stops when it
    returns True. ``history`` = (s slots, t slots), views of shape (B, 1, n) / (B, 1, m) receiving iterate k.
    Returns the last ``s``, ``t`` and the number of iterations run.
    """
    for k in range(1, n_iters + 1):
        s = torch.bmm(t, KbT)
        s = s.reciprocal_() if history is None else torch.reciprocal(s, out=history[0][k - 1])
        t = torch.bmm(s, Ka)
        t = t.reciprocal_() if history is None else torch.reciprocal(t, out=history[1][k - 1])
        if check is not None and (k % check_every == 0 or k == n_iters) and check(s, t):
            return s, t, k
    return s, t, n_iters


class _ScalingIterations(torch.autograd.Function):
    r"""The unrolled scaling loop with its exact reverse-mode adjoint.

    Forward, for :math:`k = 1..N`: :math:`s_k = 1/(t_{k-1} K_b^\top)`, :math:`t_k = 1/(s_k K_a)` (row vectors,
    :math:`K_a` = ``Ka``, :math:`K_b^\top` = ``KbT``); :math:`N` is the number of iterations actually run (the
    convergence checks, which carry no gradient, may stop the loop early). Returns :math:`s_N, t_N, N`.
    Backward, with :math:`\rho_k = \bar t_k \odot t_k^2` and :math:`\sigma_k = \rho_k K_a^\top - \bar s_N [k = N]`:
    :math:`\bar q_{k-1} = \sigma_k \odot s_k^2`, :math:`\bar t_{k-1} = \bar q_{k-1} K_b`; then
    :math:`\bar K_a = -\sum_k s_k^\top \rho_k` and :math:`\bar K_b^\top = \sum_k t_{k-1}^\top \bar q_{k-1}`
    are each one batched matmul over the stored iterates. Autograd on the same loop would instead
    accumulate ``2N`` rank-one (B, n, m) gradients; this is the same gradient at a fraction of the cost.
    """

    @staticmethod
    def forward(
        ctx, Ka: Tensor, KbT: Tensor, t0: Tensor, n_iters: int, check_every: int, check: Check | None
    ) -> tuple[Tensor, Tensor, int]:
        B, n, m = Ka.shape
        s_hist = Ka.new_empty(B, n_iters, n)  # s_k in slot k-1
        t_hist = Ka.new_empty(B, n_iters + 1, m)  # t_k in slot k (t_0 in slot 0)
        t_hist[:, :1] = t0
        history = (s_hist.split(1, dim=1), t_hist[:, 1:].split(1, dim=1))
        s, t, done = _scaling_loop(Ka, KbT, t_hist[:, :1], n_iters, check_every, check, history)
        ctx.save_for_backward(Ka, KbT, s_hist[:, :done], t_hist[:, : done + 1])
        return s.clone(), t.clone(), done

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_s: Tensor, grad_t: Tensor, _: None) -> tuple[Tensor, Tensor, Tensor, None, None, None]:
        Ka, KbT, s_hist, t_hist = ctx.saved_tensors
        done = s_hist.shape[1]
        KaT, Kb = Ka.mT.contiguous(), KbT.mT.contiguous()
        rho_hist, qbar_hist = torch.empty_like(t_hist[:, 1:]), torch.empty_like(s_hist)
        s_k, t_k = s_hist.split(1, dim=1), t_hist.split(1, dim=1)  # s_k[k-1] = s_k, t_k[k] = t_k
        rho_k, qbar_k = rho_hist.split(1, dim=1), qbar_hist.split(1, dim=1)  # slot k-1: rho_k, qbar_{k-1}
        rho = torch.mul(grad_t, t_k[done], out=rho_k[done - 1]).mul_(t_k[done])
        for k in range(done, 0, -1):
            sigma = torch.bmm(rho, KaT)
            if k == done:
                sigma = sigma - grad_s
            qbar = torch.mul(sigma, s_k[k - 1], out=qbar_k[k - 1]).mul_(s_k[k - 1])
            tbar = torch.bmm(qbar, Kb)
            if k > 1:
                rho = torch.mul(tbar, t_k[k - 1], out=rho_k[k - 2]).mul_(t_k[k - 1])
        grad_Ka = torch.bmm(s_hist.mT, rho_hist).neg_()
        grad_KbT = torch.bmm(t_hist[:, :-1].mT, qbar_hist)
        return grad_Ka, grad_KbT, tbar, None, None, None
