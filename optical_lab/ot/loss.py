r"""OPTICAL's optimal-transport distillation loss.

OPTICAL (Huang, Yu & Allan, WSDM 2023, arXiv:2301.12566) aligns the token embeddings of a student encoder
on a low-resource-language sentence, :math:`y \in \mathbb{R}^{m\times d}`, with those of a frozen teacher
on the parallel English sentence, :math:`x \in \mathbb{R}^{n\times d}`. With the ground cost
:math:`C_{ij} = c(x_i, y_j)` (cosine distance by default), token marginals :math:`a, b` (uniform over
real tokens, optionally IDF-weighted, special tokens optionally removed) and the entropic OT plan
:math:`P^\star` computed by Sinkhorn (Cuturi 2013), the loss for a batch of ``B`` pairs is

.. math::
    \mathcal{L} = \frac{1}{B} \sum_{b=1}^{B} \langle P^\star_b, C_b \rangle_F .

The teacher is frozen (its tokens are detached), so gradients reach the student only. With the default
``grad="envelope"`` the plan is treated as a constant: :math:`\partial \mathcal{L} / \partial C_b = P^\star_b / B`.
Empty pairs (no real token left on one side) contribute 0 to the mean. The problem itself (masks,
marginals, cost, solve) is built by :func:`optical_lab.ot.token_plan`.

**Warm starts** (``SinkhornSpec.warm_start``). The loss keeps the column potentials :math:`g` of its last
solve and starts the next one from them (``g_init`` of :func:`optical_lab.ot.sinkhorn`; the row potentials
start as their c-transform) when the padded problem has the same shape (B, n, m); otherwise, or after a
call with another shape, it starts cold. A warm start is always *valid* — Sinkhorn converges to the same
plan from any finite potentials, and the tolerance decides when it stops — but it only *helps* when the
problem barely changed: the same pairs solved again after a small update (measured on real MAFAND batches:
from the exact solution, the first check passes; after a 0.01 cost perturbation 20-70 iterations instead of
70-380 cold). Position ``i`` of the next batch is another sentence pair in ordinary training, whose
potentials are no better than a cold start (measured: often worse than ε-scaling from cold), so it is off
by default. When on, ε-scaling is skipped for warm-started solves (annealing from a large ε would discard
the start).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .plan import SinkhornSpec, TokenPlan, token_plan


class OTDistillationLoss(torch.nn.Module):
    """Mean over the batch of the OT transport cost between teacher and student token sets.

    Parameters
    ----------
    spec : the OT setting (:class:`optical_lab.ot.SinkhornSpec`); keyword overrides of its fields
        (``epsilon=``, ``n_iters=``, ``grad=``, ...) are applied on top.
    exclude_special : drop tokens flagged by ``teacher_special`` / ``student_special`` from the marginals.

    The plan of the last call is kept in ``self.last_plan`` (``self.last_output`` is its solver
    output); ``self.not_converged`` / ``self.problems`` count, over all calls, the problems that
    did not reach the tolerance and all problems solved. With ``spec.warm_start`` the next call
    starts from the last call's potentials when the shapes agree (module docstring).


    >>> import torch
    >>> from optical_lab import OTDistillationLoss
    >>> loss_fn = OTDistillationLoss(epsilon=0.1, n_iters=100)
    >>> teacher = torch.randn(2, 5, 16)
    >>> student = teacher.clone().requires_grad_()  # the student starts as the teacher
    >>> mask = torch.ones(2, 5, dtype=torch.bool)
    >>> loss = loss_fn(teacher, mask, student + 0.1 * torch.randn(2, 5, 16), mask)
    >>> loss.backward()
    >>> bool(loss > 0), student.grad.shape
    (True, torch.Size([2, 5, 16]))
    """

    def __init__(self, spec: SinkhornSpec | None = None, exclude_special: bool = True, **overrides: Any) -> None:
        super().__init__()
        self.spec = (spec or SinkhornSpec()).replace(**overrides)
        self.exclude_special = exclude_special
        self.last_plan: TokenPlan | None = None
        self.not_converged = 0
        self.problems = 0

    @property
    def last_output(self):
        return None if self.last_plan is None else self.last_plan.output

    def forward(
        self,
        teacher_tokens: Tensor,
        teacher_mask: Tensor,
        student_tokens: Tensor,
        student_mask: Tensor,
        teacher_special: Tensor | None = None,
        student_special: Tensor | None = None,
        teacher_weights: Tensor | None = None,
        student_weights: Tensor | None = None,
    ) -> Tensor:
        """Scalar loss: mean over the batch of :math:`<P, C>_F`.

        ``teacher_tokens`` (B, n, d) and ``student_tokens`` (B, m, d); masks are bool, ``True`` = real token;
        ``*_special`` are bool masks of special tokens; ``*_weights`` optional non-negative token weights.
        """
        plan = token_plan(
            teacher_tokens,
            teacher_mask,
            student_tokens,
            student_mask,
            self.spec,
            teacher_special=teacher_special,
            student_special=student_special,
            teacher_weights=teacher_weights,
            student_weights=student_weights,
            exclude_special=self.exclude_special,
            g_init=self._warm_start(teacher_tokens, student_tokens),
        )
        self.last_plan = plan
        self.not_converged += plan.not_converged
        self.problems += len(plan.output.converged)
        return plan.output.transport_cost.mean()

    def _warm_start(self, teacher_tokens: Tensor, student_tokens: Tensor) -> Tensor | None:
        """The last solve's column potentials when warm starts are on and the shape (B, n, m) is the same."""
        last = self.last_output
        if not self.spec.warm_start or last is None:
            return None
        shape = (teacher_tokens.shape[0], teacher_tokens.shape[1], student_tokens.shape[1])
        return last.g.detach() if tuple(last.plan.shape) == shape else None

    def extra_repr(self) -> str:
        return f"spec={self.spec}, exclude_special={self.exclude_special}"
