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
Empty pairs (no real token left on one side) contribute 0 to the mean.
"""
from __future__ import annotations

import torch
from torch import Tensor

from optical_lab.ot.costs import CostKind, cost_matrix
from optical_lab.ot.marginals import masked_marginals
from optical_lab.ot.sinkhorn import Grad, Method, SinkhornOutput, sinkhorn


class OTDistillationLoss(torch.nn.Module):
    """Mean over the batch of the OT transport cost between teacher and student token sets.

    Parameters
    ----------
    epsilon : entropic regularisation, in cost units (cosine costs lie in [0, 2]).
    n_iters : Sinkhorn iterations.
    cost : ground cost, see :func:`optical_lab.ot.cost_matrix`.
    grad : ``"envelope"`` (plan constant, cheap backward) or ``"autodiff"`` (through the iterations).
    method : ``"auto"``, ``"kernel"`` or ``"log"``, see :func:`optical_lab.ot.sinkhorn`.
    exclude_special : drop tokens flagged by ``teacher_special`` / ``student_special`` from the marginals.

    The solver output of the last call is kept in ``self.last_output`` (for logging).
    """

    def __init__(self, epsilon: float = 0.05, n_iters: int = 50, cost: CostKind = "cosine",
                 grad: Grad = "envelope", method: Method = "auto", exclude_special: bool = True) -> None:
        super().__init__()
        self.epsilon = epsilon
        self.n_iters = n_iters
        self.cost = cost
        self.grad = grad
        self.method = method
        self.exclude_special = exclude_special
        self.last_output: SinkhornOutput | None = None

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
        teacher_keep, student_keep = teacher_mask.bool(), student_mask.bool()
        if self.exclude_special:
            if teacher_special is not None:
                teacher_keep = teacher_keep & ~teacher_special.bool()
            if student_special is not None:
                student_keep = student_keep & ~student_special.bool()
        C = cost_matrix(teacher_tokens.detach(), student_tokens, teacher_keep, student_keep, kind=self.cost)
        a = masked_marginals(teacher_keep, teacher_weights, dtype=C.dtype)
        b = masked_marginals(student_keep, student_weights, dtype=C.dtype)
        out = sinkhorn(C, a, b, epsilon=self.epsilon, n_iters=self.n_iters, method=self.method, grad=self.grad)
        self.last_output = out
        return out.transport_cost.mean()

    def extra_repr(self) -> str:
        return (f"epsilon={self.epsilon}, n_iters={self.n_iters}, cost={self.cost!r}, grad={self.grad!r}, "
                f"method={self.method!r}, exclude_special={self.exclude_special}")
