r"""The OT problem between two token sets, owned in one place.

:class:`SinkhornSpec` is the whole entropic-OT setting (ε, iterations, tolerance, ground cost,
gradient mode, solver method): frozen, saved inside :class:`optical_lab.methods.TrainConfig`, and
the only source of these defaults. :func:`token_plan` turns padded token embeddings into the
problem (which tokens carry mass, the marginals, the cost matrix) and solves it — the training
loss (:class:`optical_lab.ot.OTDistillationLoss`) and the transport-plan figures and widgets
(:mod:`optical_lab.reports.alignment`) both call it, so what a figure shows is what the loss
optimised.

Rows are the frozen teacher's (English) tokens, columns the student's; the teacher's embeddings
are treated as constants (detached). Padding never carries mass; special tokens ([CLS], [SEP],
<s>, </s>) are left out when ``exclude_special``.

**Convergence.** Like POT's ``ot.sinkhorn(..., warn=True)``, a problem whose marginal error is
still above ``tol`` after ``n_iters`` iterations raises a :class:`SinkhornConvergenceWarning`
(shown once per setting by Python's default warning filter); the loss also counts such problems
(``OTDistillationLoss.not_converged``), which the trainer logs every step.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from .costs import COST_KINDS, CostKind, centre_tokens, cost_matrix
from .marginals import masked_marginals
from .sinkhorn import Grad, Method, SinkhornOutput, sinkhorn


class SinkhornConvergenceWarning(UserWarning):
    """Sinkhorn stopped at ``n_iters`` with a marginal error above ``tol``."""


@dataclass(frozen=True)
class SinkhornSpec:
    r"""Everything that defines an entropic OT plan between token sets (see :func:`optical_lab.ot.sinkhorn`).

    >>> from optical_lab import SinkhornSpec
    >>> spec = SinkhornSpec().replace(epsilon=0.1)
    >>> spec.epsilon, spec.n_iters, spec.cost
    (0.1, 50, 'cosine')

    ``epsilon`` is in cost units (cosine costs lie in [0, 2]): OPTICAL's key setting, small = sharp,
    near one-to-one alignments, large = diffuse. ``n_iters`` is the iteration budget (training
    default 50: see ``benchmarks/RESULTS_train_step.md``); ``tol`` (None: sqrt of the dtype's
    machine epsilon) decides convergence; ``grad="envelope"`` treats the plan as a constant in the
    backward pass (exact at convergence, Danskin), ``"autodiff"`` differentiates the iterations.

    ``centre=True`` subtracts each sentence's mean token embedding (over the tokens that carry mass)
    from its tokens before the cost (:func:`optical_lab.ot.costs.centre_tokens`). With the plain
    cosine cost a student can lower :math:`\langle P, C\rangle` by moving *every* foreign token
    towards the teacher sentence's mean direction (tokens collapse, the plan flattens: sentence-level
    KD in disguise, issue #13); on centred tokens that direction is removed, so only the
    token-to-token structure around the mean is matched.
    """

    epsilon: float = 0.05
    n_iters: int = 50
    tol: float | None = None
    cost: CostKind = "cosine"
    grad: Grad = "envelope"
    method: Method = "auto"
    centre: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.epsilon, (int, float)) and 0 < self.epsilon < math.inf):
            raise ValueError(f"epsilon must be a finite number > 0, got {self.epsilon}")
        if self.tol is not None and not (isinstance(self.tol, (int, float)) and 0 <= self.tol < math.inf):
            raise ValueError(f"tol must be a finite number >= 0, got {self.tol}")
        if int(self.n_iters) < 1:
            raise ValueError(f"n_iters must be >= 1, got {self.n_iters}")
        if self.cost not in COST_KINDS:
            raise ValueError(f"cost must be one of {COST_KINDS}, got {self.cost!r}")
        if self.grad not in ("autodiff", "envelope"):
            raise ValueError(f"grad must be 'autodiff' or 'envelope', got {self.grad!r}")
        if self.method not in ("auto", "kernel", "log"):
            raise ValueError(f"method must be 'auto', 'kernel' or 'log', got {self.method!r}")

    def replace(self, **changes: Any) -> "SinkhornSpec":
        return dataclasses.replace(self, **changes)

    def solve(self, C: Tensor, a: Tensor, b: Tensor) -> SinkhornOutput:
        return sinkhorn(C, a, b, epsilon=float(self.epsilon), n_iters=int(self.n_iters), tol=self.tol,
                        method=self.method, grad=self.grad)


@dataclass
class TokenPlan:
    """A solved batch of token-set OT problems, with the pieces it was built from."""

    cost: Tensor  # (B, n, m), 0 where a padded/excluded token is involved
    a: Tensor  # (B, n) teacher marginals
    b: Tensor  # (B, m) student marginals
    rows: Tensor  # (B, n) bool, teacher tokens that carry mass
    cols: Tensor  # (B, m) bool, student tokens that carry mass
    output: SinkhornOutput
    spec: SinkhornSpec

    @property
    def not_converged(self) -> int:
        """Problems of the batch whose marginal error is still above the tolerance."""
        return int((~self.output.converged).sum())


def token_plan(
    teacher_tokens: Tensor,
    teacher_mask: Tensor,
    student_tokens: Tensor,
    student_mask: Tensor,
    spec: SinkhornSpec | None = None,
    *,
    teacher_special: Tensor | None = None,
    student_special: Tensor | None = None,
    teacher_weights: Tensor | None = None,
    student_weights: Tensor | None = None,
    exclude_special: bool = True,
    warn: bool = True,
) -> TokenPlan:
    """Masks, marginals and cost for ``teacher_tokens`` (B, n, d) x ``student_tokens`` (B, m, d), solved.

    Masks are bool, ``True`` = real token; ``*_special`` flag special tokens (dropped from the
    marginals when ``exclude_special``); ``*_weights`` are optional non-negative token weights
    (uniform over the kept tokens by default). Gradients reach ``student_tokens`` only.

    >>> import torch
    >>> from optical_lab import SinkhornSpec, token_plan
    >>> x, y = torch.randn(1, 3, 8, generator=torch.Generator().manual_seed(0)), torch.randn(1, 4, 8)
    >>> solved = token_plan(x, torch.ones(1, 3, dtype=torch.bool), y, torch.ones(1, 4, dtype=torch.bool),
    ...                     SinkhornSpec(epsilon=0.1, n_iters=500))
    >>> plan = solved.output.plan[0]
    >>> plan.shape, round(float(plan.sum()), 4), torch.allclose(plan.sum(1), solved.a[0], atol=1e-4)
    (torch.Size([3, 4]), 1.0, True)
    """
    spec = spec or SinkhornSpec()
    rows, cols = teacher_mask.bool(), student_mask.bool()
    if exclude_special:
        if teacher_special is not None:
            rows = rows & ~teacher_special.bool()
        if student_special is not None:
            cols = cols & ~student_special.bool()
    teacher_tokens = teacher_tokens.detach()
    if spec.centre:
        teacher_tokens, student_tokens = centre_tokens(teacher_tokens, rows), centre_tokens(student_tokens, cols)
    C = cost_matrix(teacher_tokens, student_tokens, rows, cols, kind=spec.cost)
    a = masked_marginals(rows, teacher_weights, dtype=C.dtype)
    b = masked_marginals(cols, student_weights, dtype=C.dtype)
    plan = TokenPlan(C, a, b, rows, cols, spec.solve(C, a, b), spec)
    if warn and plan.not_converged:
        warnings.warn(f"Sinkhorn did not converge for some problems (epsilon={spec.epsilon:g}, n_iters={spec.n_iters}, "
                      f"tol={spec.tol}): their marginals are off by more than the tolerance. Raise n_iters "
                      "(--n-iters) or epsilon (--epsilon); the trainer logs the count per step (ot_not_converged).",
                      SinkhornConvergenceWarning, stacklevel=2)
    return plan
