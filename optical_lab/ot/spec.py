r"""The entropic-OT setting, and the one home of its defaults.

Two objects, as OTT-JAX separates a ``LinearProblem`` from its ``Sinkhorn`` solver: :class:`OTProblem` is
*what* is solved (ε, ground cost, centring; the marginals are uniform over the tokens that carry mass,
:mod:`optical_lab.ot.marginals`) and :class:`SinkhornSolver` *how* (iteration cap, tolerance, early exit,
ε-scaling, warm starts, gradient, method). :class:`SinkhornSpec` is the whole setting of an OPTICAL
transport problem, both at once (``spec.problem``, ``spec.solver``; flat fields for the code and saved
results that read ``spec.epsilon``). Each field is declared once, with its range, help and command-line
flag (:func:`optical_lab.data.params.param`). :func:`optical_lab.ot.sinkhorn` takes its keyword defaults
from ``SinkhornSpec()``, the loss and the figures build their problems from a spec
(:func:`optical_lab.ot.token_plan`), and :class:`optical_lab.methods.TrainConfig` saves one; nothing else
holds an OT default.

**Solved vs fixed-budget.** The defaults solve the problem: iterate until the marginal error is within
``tol`` (checked every ``check_every`` iterations, :data:`optical_lab.ot.sinkhorn.CHECK_EVERY`), at most
``n_iters`` iterations, with ε annealed from the cost scale (``eps_scaling``). Protocol v2's OPTICAL ran
the old behaviour — exactly 50 iterations from a cold start — which stays reachable as
``SinkhornSpec(n_iters=50, early_exit=False, eps_scaling=None)`` (what a saved config without these
fields reads as: ``optical_lab.methods.config.ADDED_FIELDS``). At ε 0.02 on real MAFAND / NTREX token
batches, that budget left most problems above tolerance (issue #26; ``benchmarks/RESULTS_train_step.md``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, get_args

from ..data.params import param, validate

Method = Literal["auto", "kernel", "log"]
Grad = Literal["autodiff", "envelope"]
CostKind = Literal["cosine", "sqeuclidean", "dot"]
COST_KINDS: tuple[str, ...] = get_args(CostKind)  # optical_lab.ot.costs.cost_matrix's kinds

PROBLEM, SOLVER = "OPTICAL: OT problem", "OPTICAL: Sinkhorn solver"  # their command-line groups


@dataclass(frozen=True)
class OTProblem:
    """What an entropic OT problem between token sets is: regularisation, ground cost, centring."""

    epsilon: float = param(
        0.05,
        "entropic regularisation of the OT plan, in cost units (small = sharp alignments)",
        low=0.0,
        positive=True,
        group=PROBLEM,
        flag=True,
    )
    cost: CostKind = param("cosine", "ground cost between token embeddings", group=PROBLEM)
    centre: bool = param(False, "subtract each sentence's mean token before the cost", group=PROBLEM)

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class SinkhornSolver:
    """How a problem is solved: the one home of the solver's defaults (:func:`optical_lab.ot.sinkhorn`'s)."""

    n_iters: int = param(1000, "most Sinkhorn iterations", low=1, group=SOLVER, flag=True)
    tol: float | None = param(
        None,
        "marginal error counted as converged",
        low=0.0,
        positive=True,
        group=SOLVER,
        none_means="sqrt of the dtype's machine epsilon",
        example=1e-6,
    )
    grad: Grad = param(
        "envelope", "gradient through the plan (envelope: plan held constant)", group=SOLVER, flag="--ot-grad"
    )
    method: Method = param("auto", "kernel or log-domain updates (auto: per problem)", group=SOLVER)
    early_exit: bool = param(
        True,
        "stop Sinkhorn once every problem is within tolerance; --no-early-exit runs exactly --n-iters "
        "(with --n-iters 50 --eps-scaling 0: the solver of protocols v1/v2)",
        group=SOLVER,
        flag=True,
    )
    eps_scaling: float | None = param(
        0.5,
        "anneal epsilon by this ratio per stage from the cost spread",
        low=0.0,
        high=1.0,
        positive=True,
        below=True,
        group=SOLVER,
        flag=True,
        none_word="0",
        none_means="no annealing",
    )
    warm_start: bool = param(False, "start each solve from the previous call's potentials", group=SOLVER)

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class SinkhornSpec(SinkhornSolver, OTProblem):
    r"""Everything that defines an entropic OT plan between token sets (see :func:`optical_lab.ot.sinkhorn`):
    an :class:`OTProblem` and a :class:`SinkhornSolver` in one (``.problem``, ``.solver``).

    >>> from optical_lab import SinkhornSpec
    >>> spec = SinkhornSpec().replace(epsilon=0.1)
    >>> spec.epsilon, spec.n_iters, spec.early_exit, spec.cost
    (0.1, 1000, True, 'cosine')

    ``epsilon`` is in cost units (cosine costs lie in [0, 2]): OPTICAL's key setting, small = sharp,
    near one-to-one alignments, large = diffuse. ``n_iters`` is the iteration cap; ``tol`` (None: sqrt of
    the dtype's machine epsilon) is the marginal error :math:`\|P\mathbf{1} - a\|_1 + \|P^\top\mathbf{1} - b\|_1`
    below which a problem counts as converged, and with ``early_exit`` the solver stops there (otherwise
    it runs exactly ``n_iters`` iterations). ``eps_scaling`` = :math:`r \in (0, 1)` anneals ε
    geometrically from the batch's cost spread down to ``epsilon`` (:math:`\varepsilon_{k+1} = r\,\varepsilon_k`;
    None: start at ``epsilon``); ``warm_start`` lets :class:`optical_lab.ot.OTDistillationLoss` start
    each solve from the previous call's potentials when the shapes agree (module docstring of
    :mod:`optical_lab.ot.loss`). ``grad="envelope"`` treats the plan as a constant in the backward
    pass (exact at convergence, Danskin), ``"autodiff"`` differentiates the iterations at the target ε.
    ``method`` chooses the multiplicative kernel updates or the stabilised log-domain ones, ``"auto"``
    per problem by the cost spread relative to ε (:mod:`optical_lab.ot.sinkhorn`).

    ``centre=True`` subtracts each sentence's mean token embedding (over the tokens that carry mass)
    from its tokens before the cost (:func:`optical_lab.ot.costs.centre_tokens`). With the plain
    cosine cost a student can lower :math:`\langle P, C\rangle` by moving *every* foreign token
    towards the teacher sentence's mean direction (tokens collapse, the plan flattens: sentence-level
    KD in disguise, issue #13); on centred tokens that direction is removed, so only the
    token-to-token structure around the mean is matched.
    """

    @classmethod
    def of(cls, problem: OTProblem, solver: SinkhornSolver) -> "SinkhornSpec":
        """The spec of a problem and a solver."""
        return cls(**_values(problem, OTProblem), **_values(solver, SinkhornSolver))

    @property
    def problem(self) -> OTProblem:
        return OTProblem(**_values(self, OTProblem))

    @property
    def solver(self) -> SinkhornSolver:
        return SinkhornSolver(**_values(self, SinkhornSolver))

    def replace(self, **changes: Any) -> "SinkhornSpec":
        return dataclasses.replace(self, **changes)

    def solver_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`optical_lab.ot.sinkhorn` this spec sets (``cost``, ``centre``
        and ``warm_start`` are the problem builder's and the loss's)."""
        return {
            "epsilon": float(self.epsilon),
            "n_iters": int(self.n_iters),
            "tol": self.tol,
            "early_exit": self.early_exit,
            "eps_scaling": self.eps_scaling,
            "method": self.method,
            "grad": self.grad,
        }


def _values(obj: Any, cls: type) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(cls)}
