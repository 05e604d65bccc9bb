r"""The problems one Sinkhorn solve works on, and the settings it runs with.

:class:`_Problems` is a padded batch of entropic OT problems made ready for the iterations of
:func:`optical_lab.ot.sinkhorn`: the (real, real) token-pair mask, the masked cost, dummy marginals for
*empty* problems (a side with zero mass: zero plan, zero cost, no NaN), the starting potentials (cold:
:math:`\hat f_i = \min_j C_{ij}`, :math:`\hat g = 0`; or the c-transform of a warm start's :math:`g`) and
each problem's kernel dynamic range :math:`\max_{ij}(C_{ij} - \min_k C_{ik})/\varepsilon`, by which
``method="auto"`` sends it to the kernel or the log domain. :class:`_Options` are one call's resolved
solver settings. The math and the references: :mod:`optical_lab.ot.sinkhorn`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .spec import Grad


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
