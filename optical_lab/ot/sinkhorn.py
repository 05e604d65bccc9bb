r"""Batched, padding-aware Sinkhorn solver for entropic optimal transport.

Problem
-------
For each of the ``B`` problems of a batch, with cost :math:`C \in \mathbb{R}^{n\times m}` and marginals
:math:`a \in \Delta_n`, :math:`b \in \Delta_m` (zero on padded tokens), :func:`sinkhorn` solves the
entropic OT problem of Cuturi (2013)

.. math::
    \mathrm{OT}_\varepsilon(a, b) = \min_{P \ge 0,\; P\mathbf{1} = a,\; P^\top\mathbf{1} = b}
        \langle P, C\rangle_F + \varepsilon\,\mathrm{KL}(P \,\|\, a \otimes b),

whose solution is :math:`P_{ij} = a_i b_j \exp\big((f_i + g_j - C_{ij})/\varepsilon\big)` for dual potentials
:math:`f, g`, and at the optimum :math:`\mathrm{OT}_\varepsilon = \langle f, a\rangle + \langle g, b\rangle`.
(The plan is the same as for the :math:`-\varepsilon H(P)` regulariser used by ``ot.sinkhorn``.)

Updates
-------
Sinkhorn's alternating projections, written in the log domain (numerically safe for any :math:`\varepsilon`)

.. math::
    f_i \leftarrow -\varepsilon \log \sum_j b_j\, e^{(g_j - C_{ij})/\varepsilon}, \qquad
    g_j \leftarrow -\varepsilon \log \sum_i a_i\, e^{(f_i - C_{ij})/\varepsilon},

are run as multiplicative *scaling* updates on a kernel with absorbed potentials
(Schmitzer 2019, "stabilized sparse scaling"): with
:math:`\tilde K_{ij} = \exp\big((\hat f_i + \hat g_j - C_{ij})/\varepsilon\big)` and
:math:`P = \mathrm{diag}(a \odot s)\,\tilde K\,\mathrm{diag}(b \odot t)`, one iteration is

.. math::
    s \leftarrow 1 / \big(\tilde K (b \odot t)\big), \qquad t \leftarrow 1 / \big(\tilde K^\top (a \odot s)\big),

i.e. two batched mat-vec products and two reciprocals. The current potentials are
:math:`f = \hat f + \varepsilon \log s`, :math:`g = \hat g + \varepsilon \log t`.

- ``method="kernel"``: :math:`\hat f_i = \min_j C_{ij}`, :math:`\hat g = 0` and never re-absorbed: this is
  Cuturi's multiplicative Sinkhorn (same iterates as ``ot.batch.solve_batch(method="sinkhorn")``, same limit as
  ``ot.sinkhorn``). It is safe when
  :math:`\max_{ij}(C_{ij} - \min_k C_{ik})/\varepsilon` is small enough that :math:`\tilde K` cannot underflow.
- ``method="log"``: every ``check_every`` iterations the scalings are absorbed into the potentials
  (:math:`\hat f \leftarrow f`, :math:`\hat g \leftarrow g`, :math:`s = t = 1`) and :math:`\tilde K` is rebuilt
  (one ``exp`` per block instead of two ``logsumexp`` per iteration). If a block's scalings left the
  safe range :math:`|\log s|, |\log t| \le \tau = -\tfrac14 \log(\text{dtype tiny})` (or became non-finite),
  the block is recomputed with the exact log-domain updates above. The iterates are those of
  ``ot.batch.solve_batch(method="log_sinkhorn")`` (same limit as ``ot.bregman.sinkhorn_log``); no NaN/Inf for
  any :math:`\varepsilon > 0`.
- ``method="auto"``: ``"kernel"`` when :math:`\max_{ij}(C_{ij} - \min_k C_{ik}) / \varepsilon \le \tau`, else ``"log"``.

Each iteration ends with the :math:`g`-update, so :math:`P^\top \mathbf{1} = b` holds to rounding; the
convergence criterion, checked every ``check_every`` iterations, is :math:`\|P\mathbf{1} - a\|_1 \le` ``tol``.

Gradients
---------
- ``grad="autodiff"``: reverse-mode differentiation of the unrolled iterations. The scaling loop has a
  hand-written backward (:class:`_ScalingIterations`, the exact adjoint of the loop, checked with
  ``torch.autograd.gradcheck``); everything else is plain autograd.
- ``grad="envelope"``: the iterations run under :func:`torch.no_grad`, the plan is treated as a constant and
  gradients flow only through :math:`C` in :math:`\langle P, C\rangle`, i.e. :math:`\partial/\partial C = P`.
  By Danskin's (envelope) theorem this is the exact gradient of :math:`\mathrm{OT}_\varepsilon` (``entropic_cost``)
  at convergence, and the usual "fixed plan" gradient of ``transport_cost``.

Padding and empty problems
--------------------------
Entries with :math:`a_i = 0` or :math:`b_j = 0` (padding) never receive mass. A problem whose ``a`` or ``b``
has zero total mass (e.g. a sentence made only of padding) is *empty*: it returns a zero plan, zero
potentials, zero costs, ``marginal_error = 0`` and ``converged = True``, without NaN in values or gradients.

References
----------
M. Cuturi. Sinkhorn Distances: Lightspeed Computation of Optimal Transport. NeurIPS 26, 2013.
B. Schmitzer. Stabilized Sparse Scaling Algorithms for Entropy Regularized Transport Problems. SIAM J. Sci.
Comput. 41(3), 2019.
Z. Huang, P. Yu, J. Allan. Improving Cross-lingual Information Retrieval on Low-Resource Languages via
Optimal Transport Distillation (OPTICAL). WSDM 2023, arXiv:2301.12566.
M. Cuturi et al. Optimal Transport Tools (OTT): A JAX Toolbox for all things Wasserstein. 2022
(the layout of :class:`SinkhornOutput`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

Method = Literal["auto", "kernel", "log"]
Grad = Literal["autodiff", "envelope"]


@dataclass
class SinkhornOutput:
    """Result of :func:`sinkhorn` for a batch of ``B`` problems of size ``n x m``.

    Attributes
    ----------
    plan : (B, n, m) transport plans :math:`P`.
    f, g : (B, n), (B, m) dual potentials, :math:`P_{ij} = a_i b_j e^{(f_i + g_j - C_{ij})/\\varepsilon}`; 0 on padding.
    transport_cost : (B,) :math:`\\langle P, C\\rangle_F`.
    entropic_cost : (B,) :math:`\\langle P, C\\rangle_F + \\varepsilon\\,\\mathrm{KL}(P \\| a\\otimes b)`
        (:math:`= \\langle f, a\\rangle + \\langle g, b\\rangle` at convergence).
    marginal_error : (B,) :math:`\\|P\\mathbf{1} - a\\|_1 + \\|P^\\top\\mathbf{1} - b\\|_1`.
    n_iters : number of Sinkhorn iterations run (one iteration = one f- and one g-update).
    converged : (B,) bool, ``marginal_error <= tol`` (``tol=None``: ``sqrt(finfo(dtype).eps)``).
    errors : max over the batch of :math:`\\|P\\mathbf{1} - a\\|_1`, logged at every check.
    method : the method actually used (``"kernel"`` or ``"log"``).
    """

    plan: Tensor
    f: Tensor
    g: Tensor
    transport_cost: Tensor
    entropic_cost: Tensor
    marginal_error: Tensor
    n_iters: int
    converged: Tensor
    errors: list[float] = field(default_factory=list)
    method: str = "kernel"


def max_log_scaling(dtype: torch.dtype) -> float:
    r""":math:`\tau = -\tfrac14 \log(\text{smallest normal number})`: 21.8 for float32, 177 for float64.

    Kernel entries and scalings within :math:`e^{\pm\tau}` keep every product of the iteration far from
    underflow/overflow, so the multiplicative updates are as accurate as the log-domain ones.
    """
    return -0.25 * math.log(torch.finfo(dtype).tiny)


def sinkhorn(
    C: Tensor,
    a: Tensor,
    b: Tensor,
    epsilon: float = 0.05,
    n_iters: int = 100,
    tol: float | None = None,
    method: Method = "auto",
    check_every: int = 10,
    grad: Grad = "autodiff",
) -> SinkhornOutput:
    r"""Solve ``B`` entropic OT problems of different lengths (padded to ``n x m``) with Sinkhorn.

    Parameters
    ----------
    C : Tensor, shape (B, n, m)
        Cost matrices (float32 or float64, any device). Values at padded entries are ignored (but must be finite).
    a, b : Tensor, shapes (B, n) and (B, m)
        Marginals: non-negative, each row summing to 1 (or all zero for an empty problem). Zero entries are
        padding. Cast to ``C.dtype``.
    epsilon : float
        Entropic regularisation :math:`\varepsilon > 0`, in the units of ``C``.
    n_iters : int
        Maximum number of iterations (exactly this many when ``tol`` is None).
    tol : float, optional
        Stop once :math:`\max_b \|P\mathbf{1} - a\|_1 \le` ``tol`` (checked every ``check_every`` iterations).
    method : {"auto", "kernel", "log"}
        Multiplicative kernel updates or stabilised log-domain updates (see the module docstring).
    check_every : int
        Iterations between convergence checks (and, for ``"log"``, between absorptions).
    grad : {"autodiff", "envelope"}
        Differentiate the unrolled iterations, or treat the plan as a constant (``dC = P``).

    Returns
    -------
    SinkhornOutput
    """
    _check_inputs(C, a, b, epsilon, n_iters, check_every, method, grad)
    B, n, m = C.shape
    a, b = a.to(C.dtype), b.to(C.dtype)
    keep = ((a.sum(-1) > 0) & (b.sum(-1) > 0))[:, None]  # (B, 1); False for empty problems
    a_solve = torch.where(keep, a, 1.0 / n)  # empty problems are solved with dummy uniform marginals,
    b_solve = torch.where(keep, b, 1.0 / m)  # then zeroed out: no 0/0 anywhere
    # float 0/1 mask of the (real, real) pairs (float products are much faster than bool ops on CPU)
    valid = (a_solve > 0).to(C.dtype)[:, :, None] * (b_solve > 0).to(C.dtype)[:, None, :]
    C = C * valid
    tau = max_log_scaling(C.dtype)
    with torch.no_grad():  # per-row shift (leaves the plan unchanged) and the auto method choice
        row_min = (C + (1.0 - valid) * torch.finfo(C.dtype).max).amin(-1)
        row_min = torch.where(row_min < torch.finfo(C.dtype).max / 2, row_min, 0.0)  # rows without real pairs
        spread = float(((C - row_min[:, :, None]) * valid).amax()) / epsilon if C.numel() else 0.0
    if method == "auto":
        method = "kernel" if spread <= tau else "log"
    elif method == "kernel" and spread > tau:
        warnings.warn(f"method='kernel' with cost spread / epsilon = {spread:.3g} > {tau:.3g}: exp(-C/eps) may "
                      "underflow and give inf/NaN; use method='log' or 'auto'", RuntimeWarning, stacklevel=2)

    context = torch.no_grad() if grad == "envelope" else contextlib.nullcontext()
    with context:
        state = _ScalingState.initial(C / epsilon, row_min / epsilon, a_solve, b_solve, valid)
        log = _ConvergenceLog(tol)
        if method == "kernel":
            state, done = state.iterate(n_iters, check_every, log)
        else:
            done = 0
            while done < n_iters:
                block = min(check_every, n_iters - done)
                trial, _ = state.iterate(block)
                state = trial if trial.in_safe_range(tau) else state.log_domain_iterate(block)
                done += block
                if log(state, state.s, state.t):
                    break
                if done < n_iters:
                    state = state.absorb()

        f, g = state.potentials()
        kept = keep.to(C.dtype)
        plan = state.plan() * kept[:, :, None]
        a_kept, b_kept = a * kept, b * kept
        f = epsilon * torch.where(a_kept > 0, f, 0.0)
        g = epsilon * torch.where(b_kept > 0, g, 0.0)
        row_mass, col_mass = plan.sum(2), plan.sum(1)
        transport_cost = torch.linalg.vecdot(plan.flatten(1), C.flatten(1))
        # epsilon * KL(P || a x b) for P = diag(a) exp((f + g - C) / eps) diag(b):
        #   <f, P1> + <g, P^T 1> - <P, C> - eps * sum(P) + eps * sum(a) sum(b)
        entropy_term = (torch.linalg.vecdot(f, row_mass) + torch.linalg.vecdot(g, col_mass) - transport_cost
                        - epsilon * row_mass.sum(-1) + epsilon * a_kept.sum(-1) * b_kept.sum(-1))
    if grad == "envelope":  # the plan is a constant: d transport_cost / dC = plan (entropy_term is constant too)
        transport_cost = torch.linalg.vecdot(plan.flatten(1), C.flatten(1))
    with torch.no_grad():
        marginal_error = (row_mass - a_kept).abs().sum(-1) + (col_mass - b_kept).abs().sum(-1)
        threshold = tol if tol is not None else math.sqrt(torch.finfo(C.dtype).eps)
        converged = marginal_error <= threshold
    return SinkhornOutput(plan=plan, f=f, g=g, transport_cost=transport_cost,
                          entropic_cost=transport_cost + entropy_term, marginal_error=marginal_error,
                          n_iters=done, converged=converged, errors=log.errors, method=method)


def _check_inputs(C: Tensor, a: Tensor, b: Tensor, epsilon: float, n_iters: int, check_every: int,
                  method: str, grad: str) -> None:
    if C.dim() != 3:
        raise ValueError(f"C must have shape (B, n, m), got {tuple(C.shape)}")
    B, n, m = C.shape
    if tuple(a.shape) != (B, n) or tuple(b.shape) != (B, m):
        raise ValueError(f"a, b must have shapes {(B, n)}, {(B, m)}; got {tuple(a.shape)}, {tuple(b.shape)}")
    if not C.is_floating_point():
        raise TypeError("C must be a floating-point tensor")
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    if n_iters < 1 or check_every < 1:
        raise ValueError("n_iters and check_every must be >= 1")
    if method not in ("auto", "kernel", "log"):
        raise ValueError(f"method must be 'auto', 'kernel' or 'log', got {method!r}")
    if grad not in ("autodiff", "envelope"):
        raise ValueError(f"grad must be 'autodiff' or 'envelope', got {grad!r}")


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
    def initial(cls, C_eps: Tensor, phi: Tensor, a: Tensor, b: Tensor, valid: Tensor) -> _ScalingState:
        return cls.from_potentials(C_eps, a, b, valid, phi, torch.zeros_like(b))

    @classmethod
    def from_potentials(cls, C_eps: Tensor, a: Tensor, b: Tensor, valid: Tensor, phi: Tensor,
                        gamma: Tensor) -> _ScalingState:
        """Absorb (phi, gamma) into the kernel; padded pairs (valid = 0) get kernel value 1: no denominator is 0."""
        K = torch.exp((phi[:, :, None] + gamma[:, None, :] - C_eps) * valid)
        B, n, m = K.shape
        return cls(C_eps, a, b, valid, phi, gamma, Ka=K * a[:, :, None], KbT=(K * b[:, None, :]).mT.contiguous(),
                   s=K.new_ones(B, 1, n), t=K.new_ones(B, 1, m))

    def iterate(self, n_iters: int, check_every: int | None = None,
                log: _ConvergenceLog | None = None) -> tuple[_ScalingState, int]:
        """Up to ``n_iters`` updates ``s = 1/(K (b t))``, ``t = 1/(K^T (a s))``; with ``log``, check convergence
        every ``check_every`` iterations and stop early. Returns the new state and the iterations run."""
        check = None if log is None else (lambda s, t: log(self, s, t))
        check_every = check_every or n_iters
        if torch.is_grad_enabled() and (self.Ka.requires_grad or self.KbT.requires_grad or self.t.requires_grad):
            s, t, done = _ScalingIterations.apply(self.Ka, self.KbT, self.t, n_iters, check_every, check)
        else:
            s, t, done = _scaling_loop(self.Ka, self.KbT, self.t, n_iters, check_every, check)
        return dataclasses.replace(self, s=s, t=t), done

    def in_safe_range(self, tau: float) -> bool:
        """Whether all scalings are finite and within exp(+-tau) (so the block was as exact as log-domain)."""
        with torch.no_grad():
            return bool(torch.maximum(self.s.log().abs().amax(), self.t.log().abs().amax()) <= tau)

    def potentials(self) -> tuple[Tensor, Tensor]:
        """Current potentials divided by epsilon: (phi + log s, gamma + log t)."""
        return self.phi + self.s.log()[:, 0], self.gamma + self.t.log()[:, 0]

    def absorb(self) -> _ScalingState:
        return _ScalingState.from_potentials(self.C_eps, self.a, self.b, self.valid, *self.potentials())

    def log_domain_iterate(self, n_iters: int) -> _ScalingState:
        """Exact log-domain Sinkhorn from the absorbed potentials (the fallback of ``method='log'``)."""
        log_a, log_b = _safe_log(self.a), _safe_log(self.b)
        phi, gamma = self.potentials()
        for _ in range(n_iters):
            phi = -torch.logsumexp(log_b[:, None, :] + gamma[:, None, :] - self.C_eps, dim=2)
            gamma = -torch.logsumexp(log_a[:, :, None] + phi[:, :, None] - self.C_eps, dim=1)
        return _ScalingState.from_potentials(self.C_eps, self.a, self.b, self.valid, phi, gamma)

    def plan(self) -> Tensor:
        return self.s.mT * self.Ka * (self.b[:, None, :] * self.t)



class _ConvergenceLog:
    r"""Convergence checks: logs :math:`\max_b \|P\mathbf{1} - a\|_1` and says when it is within ``tol``.

    With :math:`P = \mathrm{diag}(a s) \tilde K \mathrm{diag}(b t)`, :math:`P\mathbf{1} = a \odot s \odot \tilde K (b t)`
    (one mat-vec product); the column marginals are exact after each ``t`` update.
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


def _safe_log(x: Tensor) -> Tensor:
    """log(x) with log(0) = -inf and a zero (not NaN) gradient at 0."""
    positive = x > 0
    return torch.where(positive, torch.log(torch.where(positive, x, 1.0)), -math.inf)


Check = Callable[[Tensor, Tensor], bool]


def _scaling_loop(Ka: Tensor, KbT: Tensor, t: Tensor, n_iters: int, check_every: int, check: Check | None,
                  history: tuple[Sequence[Tensor], Sequence[Tensor]] | None = None) -> tuple[Tensor, Tensor, int]:
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
    def forward(ctx, Ka: Tensor, KbT: Tensor, t0: Tensor, n_iters: int, check_every: int,
                check: Check | None) -> tuple[Tensor, Tensor, int]:
        B, n, m = Ka.shape
        s_hist = Ka.new_empty(B, n_iters, n)  # s_k in slot k-1
        t_hist = Ka.new_empty(B, n_iters + 1, m)  # t_k in slot k (t_0 in slot 0)
        t_hist[:, :1] = t0
        history = (s_hist.split(1, dim=1), t_hist[:, 1:].split(1, dim=1))
        s, t, done = _scaling_loop(Ka, KbT, t_hist[:, :1], n_iters, check_every, check, history)
        ctx.save_for_backward(Ka, KbT, s_hist[:, :done], t_hist[:, :done + 1])
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
