"""OPTICAL: optimal-transport token distillation (Huang, Yu & Allan, WSDM 2023, arXiv:2301.12566).

The student's contextual token embeddings of a foreign sentence are aligned with the frozen
teacher's token embeddings of its English translation by entropic optimal transport: the loss is
the transport cost :math:`\\langle P^\\star, C\\rangle_F` under the Sinkhorn plan for a cosine ground
cost (:class:`optical_lab.ot.OTDistillationLoss`), so no word alignment is needed and tokens may
align one-to-many. Special tokens ([CLS]/[SEP]) are left out of the marginals.

With ``english_weight > 0`` the same loss is added between the student's and the teacher's tokens
of the English sentence, which keeps the student's English where the teacher's is (the analogue
of the English term of Reimers & Gurevych's sentence distillation).

Every step logs ``ot_not_converged``: how many of its OT problems Sinkhorn left above the
tolerance (see :class:`optical_lab.ot.SinkhornSpec`); non-zero counts say ``--n-iters`` is too low
for the chosen ``--epsilon``.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..models.encoder import Encoder
from ..ot import OTDistillationLoss
from .base import Objective
from .teacher import FrozenTeacher


class OpticalLoss(Objective):
    def __init__(self, ot_loss: OTDistillationLoss | None = None, english_weight: float = 1.0) -> None:
        super().__init__()
        self.ot = ot_loss or OTDistillationLoss()
        self.english_weight = english_weight

    def _ot(self, teacher_batch, student_batch) -> torch.Tensor:
        # Sinkhorn in float32 even under bf16 autocast: exp(-C/eps) with eps=0.05 needs the range
        with torch.autocast(device_type=student_batch.embeddings.device.type, enabled=False):
            return self.ot(teacher_batch.embeddings.float(), teacher_batch.mask,
                           student_batch.embeddings.float(), student_batch.mask,
                           teacher_batch.special, student_batch.special)

    def forward(self, student: Encoder, teacher: FrozenTeacher, english: Sequence[str],
                foreign: Sequence[str]) -> torch.Tensor:
        before = self.ot.not_converged
        target = teacher.tokens(english)
        foreign_term = self._ot(target, student.tokens(list(foreign)))
        loss = foreign_term
        english_term = torch.zeros(())
        if self.english_weight > 0:
            english_term = self._ot(target, student.tokens(list(english)))
            loss = loss + self.english_weight * english_term
        self.log(ot_foreign=foreign_term, ot_english=english_term, ot_not_converged=self.ot.not_converged - before)
        return loss
