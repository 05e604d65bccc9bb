"""Bitext-mining precision / recall / F1 exactly as MTEB's ``BitextMining`` tasks compute them.

MTEB (Muennighoff et al., EACL 2023; github.com/embeddings-benchmark/mteb) scores a parallel
corpus of n line-aligned sentence pairs (s1_i, s2_i) like this (``BitextMiningEvaluator`` in
``mteb/evaluation/evaluators/BitextMiningEvaluator.py`` at tags 1.12.75 and 1.38.3, the versions
that produced the published NTREX scores; ``mteb/_evaluators/text/bitext_mining_evaluator.py`` +
``mteb/abstasks/text/bitext_mining.py`` in 2.x, same metric):

1. **Query side.** For a subset ``"A-B"`` (NTREX: ``eng_Latn-hau_Latn``) the pair is split on
   ``-``: the A sentences are the *queries*, the B sentences the *corpus*. ``B-A`` is a separate
   subset with its own score.
2. **Nearest neighbour.** Every query's prediction is the corpus index with the highest **cosine**
   similarity (top-1; ``torch.topk(k=1)`` over chunks of 100 queries; :func:`nearest_neighbours`).
3. **Gold.** Query i's gold label is corpus index i (``gold = zip(range(n), range(n))``).
4. **Scores.** With labels y = gold indices and predictions ŷ, scikit-learn's
   ``precision_score / recall_score / f1_score(y, ŷ, zero_division=0, average="weighted")`` and
   ``accuracy_score``; the task's ``main_score`` is ``f1``. Per label l (every index that occurs as
   gold or prediction), with support s_l = #{i: y_i = l}, p_l = #{i: ŷ_i = l}, tp_l = #{i: y_i = ŷ_i = l}::

       precision_l = tp_l / p_l,   recall_l = tp_l / s_l,   F1_l = 2·tp_l / (p_l + s_l)   (0 when 0/0)
       weighted X  = Σ_l s_l · X_l / Σ_l s_l

   With one gold sentence per label (s_l = 1) this is the plain mean over the n queries of
   F1_{y_i}: a query scores 2 / (1 + p_{y_i}) when it is answered correctly (p = how many queries
   picked its sentence, itself included) and 0 otherwise. So F1 ≤ accuracy, and the two differ by
   how often the corpus has "hub" sentences that several queries pick.

:func:`mining_scores` implements step 4 with numpy alone (``tests/tasks/test_bitext_mining.py`` checks it
against scikit-learn on random and hand-made cases); :func:`query_f1` splits the F1 into per-query
values (for a confidence interval over queries, or a paired test).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

QUERY_CHUNK = 100  # MTEB's query_chunk_size


def nearest_neighbours(
    queries: torch.Tensor | np.ndarray, corpus: torch.Tensor | np.ndarray, chunk: int = QUERY_CHUNK
) -> tuple[np.ndarray, np.ndarray]:
    """(index, cosine) of each query's most similar corpus row: MTEB's top-1 cosine search."""
    queries = F.normalize(torch.as_tensor(queries, dtype=torch.float32), dim=-1)
    corpus = F.normalize(torch.as_tensor(corpus, dtype=torch.float32), dim=-1)
    index, score = [], []
    for start in range(0, len(queries), chunk):
        values, indices = torch.topk(queries[start : start + chunk] @ corpus.T, 1, dim=1, largest=True)
        index.append(indices[:, 0])
        score.append(values[:, 0])
    return torch.cat(index).numpy(), torch.cat(score).numpy()


def mining_scores(gold: Sequence[int] | np.ndarray, predicted: Sequence[int] | np.ndarray) -> dict[str, float]:
    """MTEB's bitext-mining ``precision``, ``recall``, ``f1`` (support-weighted, zero_division=0) and
    ``accuracy`` of ``predicted`` corpus indices against ``gold`` ones (module doc, step 4)."""
    gold, predicted = np.asarray(gold, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    if gold.shape != predicted.shape or gold.ndim != 1 or not len(gold):
        raise ValueError(
            f"gold and predicted must be equal-length 1-d label lists, got {gold.shape} and {predicted.shape}"
        )
    if min(gold.min(), predicted.min()) < 0:
        raise ValueError("labels are corpus indices and must be >= 0")
    size = int(max(gold.max(), predicted.max())) + 1
    support = np.bincount(gold, minlength=size).astype(float)
    picked = np.bincount(predicted, minlength=size).astype(float)
    hits = np.bincount(gold[gold == predicted], minlength=size).astype(float)
    precision = np.divide(hits, picked, out=np.zeros(size), where=picked > 0)
    recall = np.divide(hits, support, out=np.zeros(size), where=support > 0)
    f1 = np.divide(2 * hits, picked + support, out=np.zeros(size), where=picked + support > 0)
    weight = support / support.sum()
    return {
        "precision": float(weight @ precision),
        "recall": float(weight @ recall),
        "f1": float(weight @ f1),
        "accuracy": float(np.mean(gold == predicted)),
    }


def query_f1(gold: Sequence[int] | np.ndarray, predicted: Sequence[int] | np.ndarray) -> np.ndarray:
    """Each query's share of the weighted F1 when every gold label occurs once (a parallel corpus):
    ``2 / (1 + p)`` for a correct query whose sentence ``p`` queries picked, else 0. Their mean is
    :func:`mining_scores`' ``f1``, so the F1 gets per-query values: a confidence interval over
    queries, paired tests between two encoders on the same sentences."""
    gold, predicted = np.asarray(gold, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    if len(np.unique(gold)) != len(gold):
        raise ValueError("query_f1 needs one query per gold label (MTEB's gold = range(n)); use mining_scores")
    picked = np.bincount(predicted, minlength=int(max(gold.max(), predicted.max())) + 1)
    return np.where(gold == predicted, 2 / (1 + picked[gold]), 0.0)
