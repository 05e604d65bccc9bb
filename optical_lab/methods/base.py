"""The one interface every training objective implements (in the style of sentence-transformers losses).

An objective is an ``nn.Module`` called as ``loss(student, teacher, english, foreign)`` on a batch
of parallel sentences and returning a scalar tensor. ``student`` is the trainable
:class:`~optical_lab.models.Encoder`; ``teacher`` the frozen English encoder seen through
:class:`~optical_lab.methods.teacher.FrozenTeacher` (no gradient, cached outputs). The trainer
never needs to know which objective it runs. Objectives put the terms they add up in
``last_logs`` (floats) so the trainer can log them.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..models.encoder import Encoder
from .teacher import FrozenTeacher


class Objective(torch.nn.Module):
    """Base class: subclasses implement :meth:`forward`."""

    def __init__(self) -> None:
        super().__init__()
        self.last_logs: dict[str, float] = {}

    def forward(
        self, student: Encoder, teacher: FrozenTeacher, english: Sequence[str], foreign: Sequence[str]
    ) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def log(self, **terms: torch.Tensor | float) -> None:
        self.last_logs = {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for k, v in terms.items()}
