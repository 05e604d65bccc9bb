"""Multilingual sentence-embedding distillation (Reimers & Gurevych, EMNLP 2020,
"Making Monolingual Sentence Embeddings Multilingual using Knowledge Distillation").

For a parallel pair (English s, translation t), the student is trained so that
``student(t) ~ teacher(s)`` and ``student(s) ~ teacher(s)`` under mean squared error:

    L = MSE(student(t), teacher(s)) + english_weight * MSE(student(s), teacher(s))

on the pooled, L2-normalised embeddings retrieval uses. The second term keeps the student's
English where the teacher's is, as in the paper.

Settings: :class:`optical_lab.methods.settings.DistillConfig` (``english_weight``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..models.encoder import Encoder
from .base import Objective
from .teacher import FrozenTeacher


class SentenceKDLoss(Objective):
    def __init__(self, english_weight: float = 1.0) -> None:
        super().__init__()
        self.english_weight = english_weight

    def forward(
        self, student: Encoder, teacher: FrozenTeacher, english: Sequence[str], foreign: Sequence[str]
    ) -> torch.Tensor:
        target = teacher.pooled(english)
        foreign_term = F.mse_loss(student(list(foreign)).float(), target)
        loss = foreign_term
        english_term = torch.zeros(())
        if self.english_weight > 0:
            english_term = F.mse_loss(student(list(english)).float(), target)
            loss = loss + self.english_weight * english_term
        self.log(mse_foreign=foreign_term, mse_english=english_term)
        return loss
