"""Code-switching augmentation (CoSDA-ML, Qin, Ni, Zhang & Che, IJCAI 2020).

Each English training sentence is rewritten by replacing every word that the dictionary knows,
with probability ``ratio``, by one of its translations (chosen uniformly). The dictionary is the
IBM Model 1 dictionary induced from the fold's training bitext (:mod:`.dictionary`). The student
embeds the code-switched sentence and is trained contrastively (InfoNCE, in-batch negatives)
against the teacher's embedding of the original English sentence, so that mixed-language input
lands where its English meaning is. Only English sentences and the dictionary are used, as in
CoSDA-ML; the foreign side of the batch is ignored.

Randomness comes from torch's global generator, which the trainer seeds and checkpoints, so a
resumed run switches exactly the same words.

Settings: :class:`optical_lab.methods.settings.CodeSwitchConfig` (``code_switch_ratio``, ``dict_*``) and
:class:`~optical_lab.methods.settings.ContrastiveConfig`.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..models.encoder import Encoder
from .base import Objective
from .dictionary import BilingualDictionary, is_word, tokenize
from .teacher import FrozenTeacher
from .translate_train import info_nce


def code_switch(
    sentence: str, dictionary: BilingualDictionary, ratio: float, generator: torch.Generator | None = None
) -> tuple[str, int]:
    """(code-switched sentence, number of replaced words)."""
    tokens = tokenize(sentence)
    draws = torch.rand(len(tokens), generator=generator).tolist()  # one draw per token: fixed RNG use
    out, replaced = [], 0
    for token, draw in zip(tokens, draws):
        options = dictionary.translations(token) if is_word(token) else []
        if options and draw < ratio:
            # reuse the draw to pick the translation: uniform over options given draw < ratio
            choice = options[min(int(draw / ratio * len(options)), len(options) - 1)]
            out.append(choice.capitalize() if token[:1].isupper() else choice)
            replaced += 1
        else:
            out.append(token)
    return " ".join(out), replaced


class CodeSwitchLoss(Objective):
    def __init__(
        self, dictionary: BilingualDictionary, ratio: float = 0.5, temperature: float = 0.05, symmetric: bool = True
    ) -> None:
        super().__init__()
        self.dictionary = dictionary
        self.ratio = ratio
        self.temperature = temperature
        self.symmetric = symmetric

    def forward(
        self, student: Encoder, teacher: FrozenTeacher, english: Sequence[str], foreign: Sequence[str]
    ) -> torch.Tensor:
        switched = [code_switch(s, self.dictionary, self.ratio) for s in english]
        n_words = sum(len(tokenize(s)) for s in english)
        loss = info_nce(teacher.pooled(english), student([s for s, _ in switched]), self.temperature, self.symmetric)
        self.log(info_nce=loss, switched_fraction=sum(r for _, r in switched) / max(1, n_words))
        return loss
