r"""Length buckets: a padded batch of OT problems solved as groups of similar size.

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

The groups' outputs are scattered back by :func:`optical_lab.ot.sinkhorn._assemble`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

Buckets = Literal["auto"] | int
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
