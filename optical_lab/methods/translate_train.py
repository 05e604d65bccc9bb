"""Translate-train as a contrastive objective: InfoNCE with in-batch negatives.

In translate-train CLIR the retriever is trained on (English query, translated document) pairs.
Here the translations are the bitext's: the teacher embeds the English sentence (the query side,
frozen, as at retrieval time) and the student embeds its translation (the document side); the
other translations of the batch are the negatives (InfoNCE, van den Oord et al. 2018; the
in-batch-negative retrieval loss of Karpukhin et al., EMNLP 2020):

    L = CE(teacher(en) @ student(fo)^T / temperature, diag)

With ``symmetric`` the foreign -> English direction is added and the two are averaged.

Settings: :class:`optical_lab.methods.settings.ContrastiveConfig` (``temperature``, ``symmetric``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..models.encoder import Encoder
from .base import Objective
from .teacher import FrozenTeacher


def info_nce(
    queries: torch.Tensor, documents: torch.Tensor, temperature: float = 0.05, symmetric: bool = True
) -> torch.Tensor:
    """InfoNCE over a batch whose i-th query matches the i-th document (normalised inputs)."""
    logits = queries.float() @ documents.float().T / temperature
    labels = torch.arange(len(logits), device=logits.device)
    loss = F.cross_entropy(logits, labels)
    if symmetric:
        loss = 0.5 * (loss + F.cross_entropy(logits.T, labels))
    return loss


class TranslateTrainLoss(Objective):
    def __init__(self, temperature: float = 0.05, symmetric: bool = True) -> None:
        super().__init__()
        self.temperature = temperature
        self.symmetric = symmetric

    def forward(
        self, student: Encoder, teacher: FrozenTeacher, english: Sequence[str], foreign: Sequence[str]
    ) -> torch.Tensor:
        loss = info_nce(teacher.pooled(english), student(list(foreign)), self.temperature, self.symmetric)
        self.log(info_nce=loss)
        return loss
