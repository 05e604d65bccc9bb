"""Notebook helpers: quiet reproducible set-up, legible sentence pairs, a before/after table.

Training a student for a notebook: :mod:`optical_lab.experiments.students` (``distilled_student``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import torch

from ..experiments.students import small_mode
from ..models.encoder import Encoder

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def short_pairs(
    corpus,
    doc_ids: set[str] | None,
    tokenizer,
    min_tokens: int = 6,
    max_tokens: int = 14,
    max_foreign_tokens: int = 22,
    min_word_share: float = 0.8,
) -> list[int]:
    """NTREX line numbers (in ``doc_ids`` when given) whose English side has ``min_tokens``..``max_tokens``
    word pieces, whose foreign side has at most ``max_foreign_tokens``, and where at least
    ``min_word_share`` of the pieces on each side are words (not punctuation / [UNK]): pairs whose
    heatmap stays legible and says something about words."""

    def word_share(pieces: list[str]) -> float:
        words = [p for p in pieces if any(ch.isalnum() for ch in p) and p != tokenizer.unk_token]
        return len(words) / max(1, len(pieces))

    out = []
    for i, doc in enumerate(corpus.doc_ids):
        if doc_ids is not None and doc not in doc_ids:
            continue
        en, fo = tokenizer.tokenize(corpus.english[i]), tokenizer.tokenize(corpus.target[i])
        if (
            min_tokens <= len(en) <= max_tokens
            and len(fo) <= max_foreign_tokens
            and word_share(en) >= min_word_share
            and word_share(fo) >= min_word_share
        ):
            out.append(i)
    return out


def notebook_setup(dpi: int = 80) -> bool:
    """Quiet, small, reproducible notebook outputs; returns :func:`small_mode`.

    Offline Hugging Face, no weight-loading progress bars, torch threads chosen for the machine's
    current load, and a modest figure dpi so executed notebooks stay well under 1 MB.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    from ..methods.runtime import set_threads

    set_threads(0)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": dpi, "savefig.dpi": dpi})
    torch.manual_seed(0)
    return small_mode()


def before_after_table(
    corpus,
    teacher: Encoder,
    students: "dict[str, Encoder]",
    eval_docs: set[str] | None,
) -> "pd.DataFrame":
    """Known-item CLIR (MRR@10, R@10) and sentence retrieval (acc@1, MRR) on ``eval_docs`` for each
    named document encoder (queries always by the teacher): one row per encoder."""
    import pandas as pd

    from ..tasks.ntrex import evaluate_ntrex

    rows = {}
    for name, encoder in students.items():
        results = evaluate_ntrex(corpus, teacher, encoder, eval_docs=eval_docs)
        clir, sent = results["clir"].summary, results["sentence"].summary
        rows[name] = {
            "CLIR MRR@10": clir["MRR@10"],
            "CLIR R@10": clir["R@10"],
            "sentence acc@1": sent["acc@1"],
            "sentence MRR": sent["MRR"],
            "queries": len(results["clir"].per_query),
            "sentences": len(results["sentence"].per_query),
        }
    table = pd.DataFrame(rows).T
    table[["queries", "sentences"]] = table[["queries", "sentences"]].astype(int)
    return table
