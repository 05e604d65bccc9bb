r"""Batched, padding-aware Sinkhorn solver for entropic optimal transport.

Every keyword default of :func:`sinkhorn` is :class:`optical_lab.ot.SinkhornSpec`'s (the one home of the OT
defaults): it solves to tolerance. ``sinkhorn(..., n_iters=50, early_exit=False, eps_scaling=None)`` is the
fixed-budget solver protocols v1/v2 ran.

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

- ``method="kernel"``: :math:`\hat f, \hat g` are the start's (cold: :math:`\hat f_i = \min_j C_{ij}`,
  :math:`\hat g = 0`; else the annealed or warm-start potentials) and never re-absorbed: from a cold start this
  is Cuturi's multiplicative Sinkhorn (same iterates as ``ot.batch.solve_batch(method="sinkhorn")``, same limit
  as ``ot.sinkhorn``). It is safe when
  :math:`\max_{ij}(C_{ij} - \min_k C_{ik})/\varepsilon` is small enough that :math:`\tilde K` cannot underflow.
- ``method="log"``: every ``check_every`` iterations the block's scalings are checked; a block whose scalings
  left the safe range :math:`|\log s|, |\log t| \le \tau = -\tfrac14 \log(\text{dtype tiny})` is recomputed
  with the exact log-domain updates above, and the scalings are absorbed into the potentials when they grow
  (Schmitzer 2019; :mod:`optical_lab.ot.log_domain`). The iterates are those of
  ``ot.batch.solve_batch(method="log_sinkhorn")``; no NaN/Inf for any :math:`\varepsilon > 0`.
- ``method="auto"``, *per problem*: ``"kernel"`` for the problems whose spread
  :math:`\max_{ij}(C_{ij} - \min_k C_{ik}) / \varepsilon \le \tau` (ε large relative to the cost scale: the
  kernel cannot underflow), ``"log"`` for the others (solved as a separate batch; ``SinkhornOutput.log_domain``
  says which). One wide-range pair no longer sends the whole batch to the slower log path, and every problem
  gets the iterates it would get alone.

Each iteration ends with the :math:`g`-update, so :math:`P^\top \mathbf{1} = b` holds to rounding.

Reaching the tolerance cheaply
------------------------------
A problem is *converged* when its marginal error :math:`\|P\mathbf{1} - a\|_1 + \|P^\top\mathbf{1} - b\|_1`
is within ``tol`` (default :math:`\sqrt{\text{machine epsilon}}`: 3.5e-4 in float32), as POT's ``stopThr``.
At small ε (OPTICAL's 0.02 on cosine costs in [0, 2]) plain Sinkhorn needs hundreds of iterations on real
token batches (a near one-to-one plan with near-duplicate tokens converges slowly), and 50 fixed iterations
left most problems above tolerance (issue #26). Three devices, after POT's ``ot/bregman`` and geomloss:

- **Early exit** (``early_exit``): every ``check_every`` iterations one batched mat-vec product gives
  :math:`\max_b \|P\mathbf{1} - a\|_1` (:class:`optical_lab.ot.kernel_domain._ConvergenceLog`); a group of
  problems stops at the first check within ``tol`` (with length buckets each group stops on its own). Without
  it exactly ``n_iters`` run.
- **ε-scaling** (``eps_scaling`` = :math:`r`): the solve starts at :math:`\varepsilon_0` = the batch's largest
  cost spread and runs ``STAGE_ITERS`` = 3 stabilised iterations at each :math:`\varepsilon_k = r^k\varepsilon_0 >
  \varepsilon`, carrying the potentials over, before iterating at the target ε (Kosowsky & Yuille 1994;
  Schmitzer 2019; geomloss). The stages count towards ``n_iters`` and run without gradient. Schedule, rationale
  and measurements: :mod:`optical_lab.ot.epsilon_scaling`.
- **Warm starts** (``g_init``): the solve may start from given column potentials, e.g. the previous solve's
  :math:`g`; the row potentials start as the c-transform :math:`f_i = \min_j (C_{ij} - g_j)`, so every kernel
  entry is :math:`\le 1` whatever :math:`g` (a safe start), and the limit does not depend on the start. From
  the exact solution the first check passes; it helps only when the problem barely changed (when it is
  valid and when it is used in training: :mod:`optical_lab.ot.loss`). A warm-started solve is not annealed.

Batches of different lengths (``buckets``)
------------------------------------------
A padded batch costs :math:`B \cdot n \cdot m` cells per mat-vec product however short most problems are.
With ``buckets`` the problems are sorted by real size and split into equal-count groups, each compacted to
its own longest problem and solved as its own batch; the results are scattered back (exact, differentiable:
only float rounding changes). ``buckets="auto"`` picks the number of groups by a cost model on CPU and keeps
the padded batch elsewhere. With ``tol``, each group stops on its own. Details: :mod:`optical_lab.ot.buckets`.

Gradients
---------
- ``grad="autodiff"``: reverse-mode differentiation of the unrolled iterations. The scaling loop has a
  hand-written backward (:class:`optical_lab.ot.kernel_domain._ScalingIterations`, the exact adjoint of the
  loop, checked with ``torch.autograd.gradcheck``); everything else is plain autograd.
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
J. Kosowsky, A. Yuille. The invisible hand algorithm: solving the assignment problem with statistical physics.
Neural Networks 7(3), 1994 (ε-scaling).
J. Feydy, T. Séjourné, F.-X. Vialard, S. Amari, A. Trouvé, G. Peyré. Interpolating between Optimal Transport and
MMD using Sinkhorn Divergences. AISTATS 2019 (geomloss: ε-scaling with one symmetric update per stage).
R. Flamary et al. POT: Python Optimal Transport. JMLR 22(78), 2021 (``ot/bregman/_sinkhorn.py``: ``stopThr``,
``sinkhorn_stabilized``, ``sinkhorn_epsilon_scaling``, the convergence warning).

Modules
-------
This module is the solver's front end: :func:`sinkhorn` (checks, length buckets, the per-problem method
choice, one solve per group, the scatter back) and :class:`SinkhornOutput`. The iterations live in
:mod:`optical_lab.ot.kernel_domain` (the scaling loop and its adjoint), :mod:`optical_lab.ot.log_domain`
(stabilised blocks, absorption) and :mod:`optical_lab.ot.epsilon_scaling` (the annealing schedule); the
prepared batch in :mod:`optical_lab.ot.problems`, the groups in :mod:`optical_lab.ot.buckets`.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .buckets import Buckets, _Layout, _length_buckets
from .epsilon_scaling import _anneal
from .kernel_domain import _ConvergenceLog, _ScalingState, max_log_scaling
from .log_domain import _stabilised_iterations
from .problems import _Options, _Problems
from .spec import Grad, Method, SinkhornSpec

DEFAULT = SinkhornSpec()  # sinkhorn()'s keyword defaults: the one home of the OT defaults is SinkhornSpec
CHECK_EVERY = 10  # iterations between convergence checks (and chances to absorb, in the log domain)


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
    n_iters : number of Sinkhorn iterations run, ε-scaling stages included (one iteration = one f- and one
        g-update; the most of any group).
    converged : (B,) bool, ``marginal_error <= tol`` (``tol=None``: ``sqrt(finfo(dtype).eps)``).
    errors : max over the batch of :math:`\\|P\\mathbf{1} - a\\|_1`, logged at every check.
    method : the method actually used (``"kernel"``, ``"log"``, or ``"mixed"`` when ``method="auto"`` chose both).
    log_domain : (B,) bool, the problems solved in the log domain (False for empty problems).
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
    log_domain: Tensor | None = None


def sinkhorn(
    C: Tensor,
    a: Tensor,
    b: Tensor,
    epsilon: float = DEFAULT.epsilon,
    n_iters: int = DEFAULT.n_iters,
    tol: float | None = DEFAULT.tol,
    method: Method = DEFAULT.method,
    check_every: int = CHECK_EVERY,
    grad: Grad = DEFAULT.grad,
    buckets: Buckets = "auto",
    *,
    early_exit: bool = DEFAULT.early_exit,
    eps_scaling: float | None = DEFAULT.eps_scaling,
    g_init: Tensor | None = None,
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
        Maximum number of iterations, annealing stages included (exactly this many without ``early_exit``).
    tol : float, optional
        Marginal error :math:`\|P\mathbf{1} - a\|_1 + \|P^\top\mathbf{1} - b\|_1` within which a problem is
        ``converged`` (None: :math:`\sqrt{\text{machine epsilon}}` of ``C.dtype``).
    method : {"auto", "kernel", "log"}
        Multiplicative kernel updates or stabilised log-domain updates (see the module docstring); ``"auto"``
        chooses per problem.
    check_every : int
        Iterations between convergence checks (and, for ``"log"``, between chances to absorb).
    grad : {"autodiff", "envelope"}
        Differentiate the unrolled iterations, or treat the plan as a constant (``dC = P``).
    buckets : "auto" or int
        Length buckets (module docstring): ``1`` solves the padded batch as given; ``k > 1`` solves ``k``
        equal-count buckets of problems sorted by their real size, each compacted to its own longest
        problem; ``"auto"`` picks the cheapest of the two by a cost model (CPU; one padded batch elsewhere).
        Results are the same up to float rounding.
    early_exit : bool
        Stop a group of problems once every one of them is within ``tol`` (checked every ``check_every``
        iterations, batched: one mat-vec product per check).
    eps_scaling : float in (0, 1), optional
        Anneal epsilon geometrically, :math:`\varepsilon_k = r^k \varepsilon_0` from the cost spread
        :math:`\varepsilon_0` down to ``epsilon``, :data:`~optical_lab.ot.epsilon_scaling.STAGE_ITERS`
        iterations per stage, before iterating at ``epsilon`` (not from ``g_init``; module
        docstring). None: no annealing.
    g_init : Tensor, shape (B, m), optional
        Column potentials :math:`g` (cost units) to start from, e.g. a previous solve's ``g`` (a *warm start*);
        the row potentials start as their c-transform :math:`f_i = \min_j (C_{ij} - g_j)`. Any finite values are
        a valid start (the limit does not depend on it); a start near the solution saves iterations.

    Returns
    -------
    SinkhornOutput
    """
    _check_inputs(C, a, b, epsilon, n_iters, check_every, method, grad, buckets, eps_scaling, g_init)
    a, b = a.to(C.dtype), b.to(C.dtype)
    tau = max_log_scaling(C.dtype)
    threshold = tol if tol is not None else math.sqrt(torch.finfo(C.dtype).eps)
    options = _Options(epsilon, n_iters, threshold, early_exit, eps_scaling, check_every, grad, tau)
    parts: list[tuple[_Layout, SinkhornOutput]] = []
    for layout in _length_buckets(a > 0, b > 0, buckets, n_iters):
        g0 = None if g_init is None else layout.gather_cols(g_init.detach().to(C.dtype))
        problems = _Problems.build(*layout.gather(C, a, b), epsilon, g0)
        if method == "kernel" and problems.spread.numel() and float(problems.spread.max()) > tau:
            warnings.warn(
                f"method='kernel' with cost spread / epsilon = {float(problems.spread.max()):.3g} > "
                f"{tau:.3g}: exp(-C/eps) may underflow and give inf/NaN; use method='log' or 'auto'",
                RuntimeWarning,
                stacklevel=2,
            )
        use_log = problems.needs_log(tau) if method == "auto" else torch.full_like(problems.keep, method == "log")
        for log_domain in (False, True):
            chosen = use_log == log_domain
            if bool(chosen.all()):  # the common case: one method for the whole bucket, no copies
                parts.append((layout, _solve(problems, log_domain, options)))
            elif bool(chosen.any()):
                index = chosen.nonzero()[:, 0]
                parts.append((layout.select(index), _solve(problems.select(index), log_domain, options)))
    if len(parts) == 1 and parts[0][0].whole:
        return parts[0][1]
    return _assemble(parts, C.shape, (a.sum(-1) > 0) & (b.sum(-1) > 0))


def _check_inputs(
    C: Tensor,
    a: Tensor,
    b: Tensor,
    epsilon: float,
    n_iters: int,
    check_every: int,
    method: str,
    grad: str,
    buckets: Buckets,
    eps_scaling: float | None,
    g_init: Tensor | None,
) -> None:
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
    if buckets != "auto" and (isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 1):
        raise ValueError(f"buckets must be 'auto' or an int >= 1, got {buckets!r}")
    if eps_scaling is not None and not 0 < eps_scaling < 1:
        raise ValueError(f"eps_scaling must be in (0, 1) or None, got {eps_scaling!r}")
    if g_init is not None and (tuple(g_init.shape) != (B, m) or not bool(torch.isfinite(g_init).all())):
        raise ValueError(f"g_init must be finite with shape {(B, m)}, got {tuple(g_init.shape)}")


def _solve(problems: _Problems, log_domain: bool, options: _Options) -> SinkhornOutput:
    """Sinkhorn on one padded batch with one method (``log_domain``: annealing, absorptions, log-domain fallback)."""
    C, a, b, keep, epsilon = problems.C, problems.a, problems.b, problems.keep, options.epsilon
    log = _ConvergenceLog(options.tol if options.early_exit else None)
    with torch.no_grad():  # annealing: a better start for the iterations at epsilon, no gradient through it
        f, g, done = _anneal(problems, options)
    context = torch.no_grad() if options.grad == "envelope" else contextlib.nullcontext()
    with context:
        state = _ScalingState.from_potentials(
            C / epsilon, problems.a_solve, problems.b_solve, problems.valid, f / epsilon, g / epsilon
        )
        if not log_domain:
            state, ran = state.iterate(options.n_iters - done, options.check_every, log)
            done += ran
        else:
            state, done = _stabilised_iterations(state, done, options, log)
        f, g = state.potentials()
        kept = keep.to(C.dtype)[:, None]
        plan = state.plan(kept)
        a_kept, b_kept = a * kept, b * kept
        f = epsilon * torch.where(a_kept > 0, f, 0.0)
        g = epsilon * torch.where(b_kept > 0, g, 0.0)
        row_mass, col_mass = plan.sum(2), plan.sum(1)
        transport_cost = torch.linalg.vecdot(plan.flatten(1), C.flatten(1))
        # epsilon * KL(P || a x b) for P = diag(a) exp((f + g - C) / eps) diag(b):
        #   <f, P1> + <g, P^T 1> - <P, C> - eps * sum(P) + eps * sum(a) sum(b)
        entropy_term = (
            torch.linalg.vecdot(f, row_mass)
            + torch.linalg.vecdot(g, col_mass)
            - transport_cost
            - epsilon * row_mass.sum(-1)
            + epsilon * a_kept.sum(-1) * b_kept.sum(-1)
        )
    if options.grad == "envelope":  # the plan is a constant: d transport_cost / dC = plan (entropy_term too)
        transport_cost = torch.linalg.vecdot(plan.flatten(1), C.flatten(1))
    with torch.no_grad():
        marginal_error = (row_mass - a_kept).abs().sum(-1) + (col_mass - b_kept).abs().sum(-1)
        converged = marginal_error <= options.tol
    method = "log" if log_domain else "kernel"
    return SinkhornOutput(
        plan=plan,
        f=f,
        g=g,
        transport_cost=transport_cost,
        entropic_cost=transport_cost + entropy_term,
        marginal_error=marginal_error,
        n_iters=done,
        converged=converged,
        errors=log.errors,
        method=method,
        log_domain=torch.full_like(keep, log_domain) & keep,
    )


def _assemble(parts: list[tuple[_Layout, SinkhornOutput]], shape: torch.Size, keep: Tensor) -> SinkhornOutput:
    """Scatter the groups' outputs back into the padded (B, n, m) layout (differentiable: the adjoint of the
    gather). ``keep`` (B,): the non-empty problems, which name the method used (``"mixed"`` if both)."""
    B, n, m = shape
    layouts, outputs = [layout for layout, _ in parts], [output for _, output in parts]

    def scatter(size: int, cells: list[Tensor], values: list[Tensor]) -> Tensor:
        flat = torch.cat([v.flatten() for v in values])
        return flat.new_zeros(size).scatter(0, torch.cat([c.flatten() for c in cells]), flat)

    index = [layout.index for layout in layouts]
    per_problem = {
        name: scatter(B, index, [getattr(o, name) for o in outputs])
        for name in ("transport_cost", "entropic_cost", "marginal_error")
    }
    converged, log_domain = (
        torch.zeros_like(keep).index_put_((torch.cat(index),), torch.cat([getattr(o, name) for o in outputs]))
        for name in ("converged", "log_domain")
    )
    errors = [
        max(o.errors[k] for o in outputs if k < len(o.errors)) for k in range(max(len(o.errors) for o in outputs))
    ]
    used = log_domain[keep]
    method = "log" if used.numel() and bool(used.all()) else "mixed" if bool(used.any()) else outputs[0].method
    return SinkhornOutput(
        plan=scatter(B * n * m, [layout.cells() for layout in layouts], [o.plan for o in outputs]).view(B, n, m),
        f=scatter(B * n, [layout.row_cells() for layout in layouts], [o.f for o in outputs]).view(B, n),
        g=scatter(B * m, [layout.col_cells() for layout in layouts], [o.g for o in outputs]).view(B, m),
        converged=converged,
        n_iters=max(o.n_iters for o in outputs),
        errors=errors,
        method=method,
        log_domain=log_domain,
        **per_problem,
    )
