"""Parallel text (English <-> another language), the only training signal OPTICAL uses."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Bitext:
    """Line-aligned English and foreign sentences, with an optional document id per pair.

    >>> from optical_lab import Bitext
    >>> pairs = Bitext(["Good morning.", "Thank you.", "Where is the market?"],
    ...                ["Habari ya asubuhi.", "Asante.", "Soko liko wapi?"], "swa")
    >>> len(pairs), pairs.subsample(2, seed=0).english
    (3, ['Good morning.', 'Where is the market?'])
    """

    english: list[str]
    foreign: list[str]
    lang: str
    doc_ids: list[str] = field(default_factory=list)
    source: str = ""

    def __post_init__(self) -> None:
        if len(self.english) != len(self.foreign):
            raise ValueError(f"ragged bitext: {len(self.english)} English vs {len(self.foreign)} {self.lang} lines")
        if self.doc_ids and len(self.doc_ids) != len(self.english):
            raise ValueError("doc_ids must have one entry per sentence pair")

    def __len__(self) -> int:
        return len(self.english)

    def pairs(self) -> list[tuple[str, str]]:
        return list(zip(self.english, self.foreign))

    def select(self, indices: list[int]) -> "Bitext":
        return Bitext(
            [self.english[i] for i in indices],
            [self.foreign[i] for i in indices],
            self.lang,
            [self.doc_ids[i] for i in indices] if self.doc_ids else [],
            self.source,
        )

    def sample(self, n: int | None, seed: int = 0) -> "Bitext":
        """At most ``n`` pairs drawn without replacement (all of them when ``n`` is None)."""
        if n is None or n >= len(self):
            return self
        return self.select(sorted(random.Random(seed).sample(range(len(self)), n)))

    def subsample(self, n: int | None, seed: int) -> "Bitext":
        """The first ``n`` pairs of a seeded permutation, in their original order (all of them when
        ``n`` is None or not smaller than the bitext). Nested: for one seed, the 100-pair subsample
        is inside the 300-pair one — what the bitext-size curve needs. Every training-pair cap
        (comparison cells, the size curve, rebuilt students in notebooks and figures) uses this."""
        if n is None or n >= len(self):
            return self
        import torch  # the permutation the committed results were drawn with

        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed)).tolist()
        return self.select(sorted(order[:n]))
