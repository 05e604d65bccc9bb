"""OPTICAL plus an augmentation objective: ``L = L_optical + weight * L_aug``.

Which augmentation joins is fixed by ``TrainConfig.aug_method`` (default translate-train), a rule
set before any result is seen, never chosen on evaluation documents.

Settings: :class:`optical_lab.methods.registry.AugConfig` (``aug_method``, one of the registry's augmentations;
``aug_weight``).
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..models.encoder import Encoder, TokenBatch
from .base import Objective
from .teacher import FrozenTeacher


class SharedForward:
    """The student as both objectives see it during one step: a text list is encoded once.

    OPTICAL needs the student's tokens of the foreign batch and translate-train its pooled
    embedding of the same batch; pooling is a function of the tokens (:meth:`Encoder.pool`,
    exactly what :meth:`Encoder.forward` does), so one forward pass serves both and the step costs
    little more than OPTICAL alone.
    """

    def __init__(self, student: Encoder) -> None:
        self.student = student
        self._memo: dict[tuple, TokenBatch] = {}

    def tokens(self, texts: Sequence[str], role=None) -> TokenBatch:
        key = (tuple(texts), role)
        if key not in self._memo:
            self._memo[key] = self.student.tokens(list(texts), role)
        return self._memo[key]

    def __call__(self, texts: Sequence[str], role=None) -> torch.Tensor:
        return self.student.pool(self.tokens(texts, role))


class CombinedLoss(Objective):
    def __init__(self, main: Objective, auxiliary: Objective, weight: float = 1.0) -> None:
        super().__init__()
        self.main = main
        self.auxiliary = auxiliary
        self.weight = weight

    def forward(
        self, student: Encoder, teacher: FrozenTeacher, english: Sequence[str], foreign: Sequence[str]
    ) -> torch.Tensor:
        shared = SharedForward(student)
        main = self.main(shared, teacher, english, foreign)
        aux = self.auxiliary(shared, teacher, english, foreign)
        self.last_logs = {
            **self.main.last_logs,
            **{f"aux_{k}": v for k, v in self.auxiliary.last_logs.items()},
            "main": float(main.detach()),
            "aux": float(aux.detach()),
        }
        return main + self.weight * aux
