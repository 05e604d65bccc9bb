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
- ``method="log"``: every ``check_every`` iterations the block's scalings are checked: if they left the safe
  range :math:`|\log s|, |\log t| \le \tau = -\tfrac14 \log(\text{dtype tiny})` (or became non-finite), the block
  is recomputed with the exact log-domain updates above; once they exceed :math:`e^{\pm\tau/2}`
  (``ABSORB_AT``) they are absorbed into the potentials (:math:`\hat f \leftarrow f`, :math:`\hat g \leftarrow g`,
  :math:`s = t = 1`) and :math:`\tilde K` is rebuilt — Schmitzer's (2019) absorption, done only when needed
  (one ``exp`` per absorption instead of two ``logsumexp`` per iteration; absorbing after every block, as
  before issue #31, rebuilt the kernel 104 times in a 1,040-iteration solve of a real MAFAND batch, 44 % of
  its time under cProfile). Within
  :math:`e^{\pm\tau}` no kernel entry that carries mass can underflow, so the iterates are those of
  ``ot.batch.solve_batch(method="log_sinkhorn")`` (same limit as ``ot.bregman.sinkhorn_log``); no NaN/Inf for
  any :math:`\varepsilon > 0`.
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
  :math:`\max_b \|P\mathbf{1} - a\|_1` (:class:`_ConvergenceLog`); a group of problems stops at the first check
  within ``tol`` (with length buckets each group stops on its own). Without it exactly ``n_iters`` run.
- **ε-scaling** (``eps_scaling`` = :math:`r`): Sinkhorn's iterations converge fast when ε is large relative to
  the costs and slowly when it is small, while the dual potentials :math:`f, g` (in cost units) change little
  with ε. So the solve starts at :math:`\varepsilon_0` = the batch's largest spread
  :math:`\max_{ij}(C_{ij} - \min_k C_{ik})` (every kernel entry in :math:`[e^{-1}, 1]`), runs
  ``STAGE_ITERS`` = 3 stabilised iterations at each :math:`\varepsilon_k = r^k\varepsilon_0 > \varepsilon`,
  carrying the potentials over (the kernel rebuilt for each ε), and only then iterates at the target ε until
  tolerance (Kosowsky & Yuille 1994; Schmitzer 2019, sec. 3.2; Feydy et al. 2019, geomloss's
  ``scaling``). The stages count towards ``n_iters`` and run without gradient (``grad="autodiff"``
  differentiates the iterations at the target ε from the annealed start). The setting, :math:`r` = 0.5 with
  3 iterations per stage, solved all 320 real MAFAND hau problems at ε 0.02 in the least time of those tried,
  3.7x the time of 50 fixed iterations (which left 60 % above tolerance); without annealing 1.2 % stayed above
  it at 1000 iterations (``benchmarks/bench_sinkhorn_settings.py``, ``benchmarks/RESULTS_sinkhorn_settings.md``).
- **Warm starts** (``g_init``): the solve may start from given column potentials, e.g. the previous solve's
  :math:`g`; the row potentials start as the c-transform :math:`f_i = \min_j (C_{ij} - g_j)`, so every kernel
  entry is :math:`\le 1` whatever :math:`g` (a safe start), and the limit does not depend on the start. From
  the exact solution the first check passes; it helps only when the problem barely changed (when it is
  valid and when it is used in training: :mod:`optical_lab.ot.loss`). A warm-started solve is not annealed.

Batches of different lengths (``buckets``)
------------------------------------------
A padded batch costs :math:`B \cdot n \cdot m` cells per mat-vec product however short most problems are
(real NTREX pairs use about a third of a 64 x 64 batch). With ``buckets`` the problems are sorted by real size
:math:`n_b m_b` and split into equal-count groups; each group is *compacted* (its real tokens moved first,
padded only to its own longest problem) and solved as its own batch, and the results are scattered back
(``take`` / ``scatter``: exact, and differentiable). Padding never interacts with real tokens, so this
changes nothing but float rounding. Each group costs a fixed overhead per iteration (about four eager
ops), so ``buckets="auto"`` picks the number of groups :math:`k \le 8` minimising
``cells + (k + 1) * BUCKET_COST_CELLS`` (the ``+ 1`` charges the compaction), against the padded batch
as it is; ``BUCKET_COST_CELLS`` = :math:`2^{16}` was measured on the benchmark machine (a group's fixed
cost per iteration is about that many cells of mat-vec work; ``benchmarks/RESULTS_sinkhorn.md``). On CPU
groups are padded to at least ``BMM_MIN_CELLS`` = 400 cells: torch's CPU ``bmm`` runs a slow per-problem
loop below :math:`n \cdot m = 400` for a mat-vec (measured 2-3x slower). Other devices are launch-bound:
``"auto"`` keeps the padded batch there. With ``tol``, each group stops on its own.

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
J. Kosowsky, A. Yuille. The invisible hand algorithm: solving the assignment problem with statistical physics.
Neural Networks 7(3), 1994 (ε-scaling).
J. Feydy, T. Séjourné, F.-X. Vialard, S. Amari, A. Trouvé, G. Peyré. Interpolating between Optimal Transport and
MMD using Sinkhorn Divergences. AISTATS 2019 (geomloss: ε-scaling with one symmetric update per stage).
R. Flamary et al. POT: Python Optimal Transport. JMLR 22(78), 2021 (``ot/bregman/_sinkhorn.py``: ``stopThr``,
``sinkhorn_stabilized``, ``sinkhorn_epsilon_scaling``, the convergence warning).
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

from .spec import Grad, Method, SinkhornSpec

Buckets = Literal["auto"] | int
DEFAULT = SinkhornSpec()  # sinkhorn()'s keyword defaults: the one home of the OT defaults is SinkhornSpec
CHECK_EVERY = 10  # iterations between convergence checks (and chances to absorb, in the log domain)
STAGE_ITERS = 3  # iterations per epsilon-scaling stage above the target epsilon
ABSORB_AT = 0.5  # log domain: absorb the scalings once max |log s|, |log t| exceeds this fraction of tau


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
        :math:`\varepsilon_0` down to ``epsilon``, :data:`STAGE_ITERS` iterations per stage, before iterating at
        ``epsilon`` (not from ``g_init``; module docstring). None: no annealing.
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


class _Problems:
    r"""A padded batch of problems ready to solve: the masks, the masked cost and its starting potentials.

    ``keep`` (B,) is False for empty problems, which are solved with dummy uniform marginals
    ``a_solve``, ``b_solve`` and zero cost (no 0/0 anywhere) and zeroed at the end. ``valid`` is the float 0/1
    mask of the (real, real) pairs (float products are much faster than bool ops on CPU), ``C`` is 0 off ``valid``.
    ``g0`` (B, m) are the starting column potentials (0, or a warm start's; 0 on padding, ``warm`` says which)
    and ``f0`` (B, n) their c-transform :math:`\min_j (C_{ij} - g_{0,j})` over real pairs (for ``g0 = 0`` the
    per-row minimum, the kernel's shift, which leaves the plan unchanged): with it every kernel entry is
    :math:`\le 1` at the start, whatever ``g0``. ``spread`` (B,) =
    :math:`\max_{ij}(C_{ij} - \min_k C_{ik})/\varepsilon`, the kernel's dynamic range.
    """

    def __init__(
        self,
        C: Tensor,
        a: Tensor,
        b: Tensor,
        keep: Tensor,
        a_solve: Tensor,
        b_solve: Tensor,
        valid: Tensor,
        f0: Tensor,
        g0: Tensor,
        spread: Tensor,
        warm: bool,
    ) -> None:
        self.C, self.a, self.b, self.keep = C, a, b, keep
        self.a_solve, self.b_solve, self.valid, self.f0, self.g0, self.spread = a_solve, b_solve, valid, f0, g0, spread
        self.warm = warm

    @classmethod
    def build(cls, C: Tensor, a: Tensor, b: Tensor, epsilon: float, g0: Tensor | None = None) -> _Problems:
        B, n, m = C.shape
        keep = (a.sum(-1) > 0) & (b.sum(-1) > 0)
        a_solve = torch.where(keep[:, None], a, 1.0 / n)
        b_solve = torch.where(keep[:, None], b, 1.0 / m)
        # from a, b (not a_solve, b_solve): an empty problem has no valid pair, so its dummy problem has zero
        # cost and an all-ones kernel whatever its C (no underflow, and no gradient reaches its C)
        valid = (a > 0).to(C.dtype)[:, :, None] * (b > 0).to(C.dtype)[:, None, :]
        C = C * valid
        with torch.no_grad():
            warm = g0 is not None
            g0 = torch.where(b > 0, g0, 0.0) if warm else C.new_zeros(B, m)
            row_min = _row_min(C, valid)
            f0 = _row_min(C - g0[:, None, :], valid) if warm else row_min
            spread = (
                torch.sub(C, row_min[:, :, None]).mul_(valid).amax((1, 2)).div_(epsilon)
                if C.numel()
                else C.new_zeros(B)
            )
        return cls(C, a, b, keep, a_solve, b_solve, valid, f0, g0, spread, warm)

    def needs_log(self, tau: float) -> Tensor:
        """``method='auto'``, per problem: the log domain where the spread exceeds ``tau``. Empty problems join
        the kernel problems (or the log ones if there are no others): they never add a solve of their own."""
        use_log = self.spread > tau
        if not bool(self.keep.all()):
            use_log = torch.where(self.keep, use_log, bool(self.keep.any() and use_log[self.keep].all()))
        return use_log

    def select(self, index: Tensor) -> _Problems:
        return _Problems(
            *(
                t.index_select(0, index)
                for t in (
                    self.C,
                    self.a,
                    self.b,
                    self.keep,
                    self.a_solve,
                    self.b_solve,
                    self.valid,
                    self.f0,
                    self.g0,
                    self.spread,
                )
            ),
            self.warm,
        )

    def schedule(self, epsilon: float, ratio: float | None, max_stages: int) -> list[float]:
        r"""The annealing stages above ``epsilon``: :math:`\varepsilon_0 r^k > \varepsilon` for :math:`k \ge 0`, with
        :math:`\varepsilon_0` = the largest spread :math:`\max_{ij}(C_{ij} - \min_k C_{ik})` of the batch (at
        :math:`\varepsilon_0` every kernel entry is within :math:`[e^{-1}, 1]`: the problem is easy); at most
        ``max_stages`` of them (the iteration budget's share), none when the spread overflowed (ε so small that
        :math:`C/\varepsilon` is not finite: the solve then fails visibly instead of annealing forever)."""
        if ratio is None or self.warm or not self.spread.numel():
            return []
        stages, eps = [], float(self.spread.max()) * epsilon
        if not math.isfinite(eps):
            return []
        while eps > epsilon and len(stages) < max_stages:
            stages.append(eps)
            eps *= ratio
        return stages


def _row_min(C: Tensor, valid: Tensor) -> Tensor:
    """Per-row minimum of ``C`` over the valid pairs (B, n); 0 for rows without one."""
    B, n, m = C.shape
    if not C.numel():
        return C.new_zeros(B, n)
    big = torch.finfo(C.dtype).max
    row_min = torch.mul(valid, -big).add_(big).add_(C).amin(-1)  # C on valid pairs, +big elsewhere
    return torch.where(row_min < big / 2, row_min, 0.0)


@dataclass(frozen=True)
class _Options:
    """The solver settings of one :func:`sinkhorn` call (``tol``: the resolved threshold)."""

    epsilon: float
    n_iters: int
    tol: float
    early_exit: bool
    eps_scaling: float | None
    check_every: int
    grad: Grad
    tau: float


def _solve(problems: _Problems, log_domain: bool, options: _Options) -> SinkhornOutput:
    """Sinkhorn on one padded batch with one method (``log_domain``: annealing, absorptions, log-domain fallback)."""
    C, a, b, keep, epsilon = problems.C, problems.a, problems.b, problems.keep, options.epsilon
    log = _ConvergenceLog(options.tol if options.early_exit else None)
    with torch.no_grad():  # annealing: a better start for the iterations at epsilon, no gradient through it
        stages = problems.schedule(epsilon, options.eps_scaling, max_stages=options.n_iters // STAGE_ITERS)
        f, g, done = _anneal(problems, stages, options)
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


def _anneal(problems: _Problems, stages: list[float], options: _Options) -> tuple[Tensor, Tensor, int]:
    """Starting potentials (cost units) for the iterations at the target epsilon, and the iterations spent:
    :data:`STAGE_ITERS` stabilised iterations at each annealing epsilon (within the ``n_iters`` budget; the
    potentials carry over from stage to stage, the kernel is rebuilt for each epsilon)."""
    f, g, done = problems.f0, problems.g0, 0
    for eps in stages:
        iters = min(STAGE_ITERS, options.n_iters - 1 - done)  # keep one iteration for the target epsilon
        if iters < 1:
            break
        state = _ScalingState.from_potentials(
            problems.C / eps, problems.a_solve, problems.b_solve, problems.valid, f / eps, g / eps
        )
        trial, _ = state.iterate(iters)
        state = trial if trial.log_scaling() <= options.tau else state.log_domain_iterate(iters)
        phi, gamma = state.potentials()
        f, g, done = eps * phi, eps * gamma, done + iters
    return f, g, done


def _stabilised_iterations(
    state: _ScalingState, done: int, options: _Options, log: _ConvergenceLog
) -> tuple[_ScalingState, int]:
    r"""Log-domain Sinkhorn by blocks of ``check_every`` scaling iterations (Schmitzer 2019): a block whose
    scalings left :math:`e^{\pm\tau}` (or became non-finite) is redone with the exact log-domain updates; the
    scalings are absorbed into the potentials (and the kernel rebuilt) only once they exceed
    :math:`e^{\pm \mathrm{ABSORB\_AT}\,\tau}`, so most blocks cost their mat-vec products alone."""
    while done < options.n_iters:
        block = min(options.check_every, options.n_iters - done)
        trial, _ = state.iterate(block)
        size = trial.log_scaling()
        if not size <= options.tau:
            trial, size = state.log_domain_iterate(block), 0.0  # returned absorbed
        state, done = trial, done + block
        if log(state, state.s, state.t):
            break
        if done < options.n_iters and size > ABSORB_AT * options.tau:
            state = state.absorb()
    return state, done


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

    def log_domain_iterate(self, n_iters: int) -> _ScalingState:
        """Exact log-domain Sinkhorn from the absorbed potentials (the fallback of ``method='log'``)."""
        log_a, log_b = _safe_log(self.a), _safe_log(self.b)
        phi, gamma = self.potentials()
        for _ in range(n_iters):
            phi = -torch.logsumexp(log_b[:, None, :] + gamma[:, None, :] - self.C_eps, dim=2)
            gamma = -torch.logsumexp(log_a[:, :, None] + phi[:, :, None] - self.C_eps, dim=1)
        return _ScalingState.from_potentials(self.C_eps, self.a, self.b, self.valid, phi, gamma)

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


def _safe_log(x: Tensor) -> Tensor:
    """log(x) with log(0) = -inf and a zero (not NaN) gradient at 0."""
    positive = x > 0
    return torch.where(positive, torch.log(torch.where(positive, x, 1.0)), -math.inf)


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


# ----------------------------------------------------------------------------------------- length buckets
MAX_BUCKETS = 8  # most groups ``buckets="auto"`` considers
BUCKET_COST_CELLS = 2**16  # one group's fixed cost per iteration, in cells of mat-vec work (module docstring)
BMM_MIN_CELLS = 400  # torch's CPU bmm uses its batched BLAS path from rows * cols * inner >= 400 on


@dataclass(frozen=True)
class _Layout:
    """Where a group of problems sits in the padded batch: problems ``index`` (k,), their real tokens first in
    ``rows`` (k, n_k) and ``cols`` (k, m_k) (``n_k``, ``m_k`` = the group's own padded size). ``whole``: the
    batch as given (identity indices, nothing to gather or scatter)."""

    index: Tensor
    rows: Tensor
    cols: Tensor
    shape: tuple[int, int, int]  # (B, n, m) of the whole padded batch
    whole: bool = False

    @classmethod
    def identity(cls, shape: tuple[int, int, int], device: torch.device) -> _Layout:
        B, n, m = shape
        return cls(
            torch.arange(B, device=device),
            torch.arange(n, device=device).expand(B, n),
            torch.arange(m, device=device).expand(B, m),
            shape,
            whole=True,
        )

    def select(self, index: Tensor) -> _Layout:
        return _Layout(self.index[index], self.rows[index], self.cols[index], self.shape)

    def row_cells(self) -> Tensor:
        """Flat indices into (B * n) of this group's (k, n_k) rows."""
        return self.index[:, None] * self.shape[1] + self.rows

    def col_cells(self) -> Tensor:
        return self.index[:, None] * self.shape[2] + self.cols

    def cells(self) -> Tensor:
        """Flat indices into (B * n * m) of this group's (k, n_k, m_k) cost entries."""
        return self.row_cells()[:, :, None] * self.shape[2] + self.cols[:, None, :]

    def gather(self, C: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if self.whole:
            return C, a, b
        return C.take(self.cells()), a.take(self.row_cells()), self.gather_cols(b)

    def gather_cols(self, b: Tensor) -> Tensor:
        """This group's (k, m_k) entries of a (B, m) tensor."""
        return b if self.whole else b.take(self.col_cells())


def _length_buckets(real_a: Tensor, real_b: Tensor, buckets: Buckets, n_iters: int) -> list[_Layout]:
    """Split the batch into length buckets (module docstring), or keep it whole."""
    (B, n), m = real_a.shape, real_b.shape[1]
    whole = [_Layout.identity((B, n, m), real_a.device)]
    on_cpu = real_a.device.type == "cpu"
    if buckets == 1 or B == 0 or n == 0 or m == 0 or (buckets == "auto" and not on_cpu):
        return whole
    n_real, m_real = real_a.sum(1), real_b.sum(1)
    order = torch.argsort(n_real * m_real, stable=True)
    ns, ms = n_real[order].tolist(), m_real[order].tolist()

    def split(k: int) -> list[tuple[int, int, int, int]]:
        """``k`` equal-count buckets of the sorted problems: (start, stop, n_k, m_k)."""
        bounds = [B * i // k for i in range(k + 1)]
        groups = []
        for lo, hi in zip(bounds, bounds[1:]):
            n_k, m_k = max(1, max(ns[lo:hi])), max(1, max(ms[lo:hi]))
            if on_cpu and n_k * m_k < BMM_MIN_CELLS:  # below it torch's CPU bmm loops problem by problem
                m_k = min(m, max(m_k, -(-BMM_MIN_CELLS // n_k)))
                n_k = min(n, max(n_k, -(-BMM_MIN_CELLS // m_k)))
            groups.append((lo, hi, n_k, m_k))
        return groups

    def cost(groups: list[tuple[int, int, int, int]]) -> int:
        return sum((hi - lo) * n_k * m_k for lo, hi, n_k, m_k in groups) + BUCKET_COST_CELLS * len(groups)

    if buckets == "auto":  # the compaction itself (gather, scatter back) is charged as one more bucket
        chosen = min((split(k) for k in range(1, min(MAX_BUCKETS, B) + 1)), key=cost)
        if cost(chosen) + BUCKET_COST_CELLS >= B * n * m + BUCKET_COST_CELLS:
            return whole
    else:
        chosen = split(min(int(buckets), B))
    rows = torch.argsort((~real_a).to(torch.uint8), dim=1, stable=True)  # real tokens first, in order
    cols = torch.argsort((~real_b).to(torch.uint8), dim=1, stable=True)
    layouts = []
    for lo, hi, n_k, m_k in chosen:
        index = order[lo:hi]
        layouts.append(_Layout(index, rows[index, :n_k], cols[index, :m_k], (B, n, m)))
    return layouts


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
