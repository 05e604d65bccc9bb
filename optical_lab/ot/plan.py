r"""The OT problem between two token sets, owned in one place.

:class:`SinkhornSpec` (:mod:`optical_lab.ot.spec`) is the whole entropic-OT setting (ε, iterations,
tolerance, early exit, ε-scaling, warm starts, ground cost, gradient mode, solver method): frozen, saved
inside :class:`optical_lab.methods.TrainConfig`, and the only source of these defaults. :func:`token_plan`
turns padded token embeddings into the
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
(``OTDistillationLoss.not_converged`` of ``OTDistillationLoss.problems``), and OPTICAL logs their
count and share every step (``ot_not_converged``, ``ot_unconverged_share``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from torch import Tensor

from .costs import centre_tokens, cost_matrix
from .marginals import masked_marginals
from .sinkhorn import SinkhornOutput, sinkhorn
from .spec import SinkhornSpec

__all__ = ["SinkhornConvergenceWarning", "SinkhornSpec", "TokenPlan", "token_plan"]


class SinkhornConvergenceWarning(UserWarning):
    """Sinkhorn stopped at ``n_iters`` with a marginal error above ``tol``."""


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
    g_init: Tensor | None = None,
) -> TokenPlan:
    """Masks, marginals and cost for ``teacher_tokens`` (B, n, d) x ``student_tokens`` (B, m, d), solved.

    Masks are bool, ``True`` = real token; ``*_special`` flag special tokens (dropped from the
    marginals when ``exclude_special``); ``*_weights`` are optional non-negative token weights
    (uniform over the kept tokens by default). Gradients reach ``student_tokens`` only. ``g_init``
    (B, m): column potentials to start the solve from (a warm start, see :func:`optical_lab.ot.sinkhorn`).


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
    plan = TokenPlan(C, a, b, rows, cols, sinkhorn(C, a, b, g_init=g_init, **spec.solver_options()), spec)
    if warn and plan.not_converged:
        warnings.warn(
            f"Sinkhorn did not converge for some problems (epsilon={spec.epsilon:g}, n_iters={spec.n_iters}, "
            f"tol={spec.tol}): their marginals are off by more than the tolerance. Raise n_iters "
            "(--n-iters) or epsilon (--epsilon); OPTICAL logs the count and share per step "
            "(ot_not_converged, ot_unconverged_share).",
            SinkhornConvergenceWarning,
            stacklevel=2,
        )
    return plan
