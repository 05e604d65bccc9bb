"""The tiny randomly initialised BERT the training tests share (imported as ``tiny_bert``: pytest puts
``tests/methods`` on the path; a test's subprocess script puts :data:`HERE` there itself).

MiniLM's tokenizer (so the real data tokenizes as in a comparison) on a 1-2 layer body of width 16-32:
a training step takes milliseconds, so a test trains, checkpoints and resumes in seconds. Seeded: the
same call gives the same weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from optical_lab.data import Bitext, document_folds, fold_bitext, load_ntrex
from optical_lab.models import Encoder
from optical_lab.models.registry import minilm_path

HERE = Path(__file__).resolve().parent


def tiny_encoder(hidden: int = 32, layers: int = 1, max_length: int = 32, seed: int = 0) -> Encoder:
    """A ``hidden``-wide, ``layers``-deep BERT (2 heads, feed-forward 2 x hidden) with MiniLM's tokenizer,
    initialised from ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
    )
    return Encoder(BertModel(config, add_pooling_layer=False), tokenizer, name="tiny", max_length=max_length)


def hau_pairs(n_train: int) -> tuple[Bitext, Bitext]:
    """NTREX Hausa, fold 0 of 2 (seed 0): its first ``n_train`` training pairs and all its dev pairs."""
    corpus = load_ntrex("hau")
    fold = document_folds(corpus.doc_ids, k=2, seed=0)[0]
    return fold_bitext(corpus, fold.train).select(list(range(n_train))), fold_bitext(corpus, fold.dev)
