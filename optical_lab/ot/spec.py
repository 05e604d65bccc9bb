r"""The entropic-OT setting, and the one home of its defaults.

:class:`SinkhornSpec` is the whole setting of an OPTICAL transport problem: the problem (ε, ground cost,
centring) and how it is solved (iteration cap, tolerance, early exit, ε-scaling, warm starts, gradient,
method). :func:`optical_lab.ot.sinkhorn` takes its keyword defaults from ``SinkhornSpec()``, the loss and
the figures build their problems from a spec (:func:`optical_lab.ot.token_plan`), and
:class:`optical_lab.methods.TrainConfig` saves one; nothing else holds an OT default.

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
import math
from dataclasses import dataclass
from typing import Any, Literal

from .costs import COST_KINDS, CostKind

Method = Literal["auto", "kernel", "log"]
Grad = Literal["autodiff", "envelope"]


@dataclass(frozen=True)
class SinkhornSpec:
    r"""Everything that defines an entropic OT plan between token sets (see :func:`optical_lab.ot.sinkhorn`).

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

    epsilon: float = 0.05
    n_iters: int = 1000
    tol: float | None = None
    cost: CostKind = "cosine"
    grad: Grad = "envelope"
    method: Method = "auto"
    centre: bool = False
    early_exit: bool = True
    eps_scaling: float | None = 0.5
    warm_start: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.epsilon, (int, float)) and 0 < self.epsilon < math.inf):
            raise ValueError(f"epsilon must be a finite number > 0, got {self.epsilon}")
        if int(self.n_iters) < 1:
            raise ValueError(f"n_iters must be >= 1, got {self.n_iters}")
        if self.tol is not None and not (isinstance(self.tol, (int, float)) and 0 < self.tol < math.inf):
            raise ValueError(f"tol must be a finite number > 0 (or None: sqrt of the machine epsilon), got {self.tol}")
        if self.cost not in COST_KINDS:
            raise ValueError(f"cost must be one of {COST_KINDS}, got {self.cost!r}")
        if self.grad not in ("autodiff", "envelope"):
            raise ValueError(f"grad must be 'autodiff' or 'envelope', got {self.grad!r}")
        if self.method not in ("auto", "kernel", "log"):
            raise ValueError(f"method must be 'auto', 'kernel' or 'log', got {self.method!r}")
        if self.eps_scaling is not None and not 0 < self.eps_scaling < 1:
            raise ValueError(f"eps_scaling must be in (0, 1) (or None: no annealing), got {self.eps_scaling}")

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
