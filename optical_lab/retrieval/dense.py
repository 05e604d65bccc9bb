"""Exact dense retrieval: cosine similarity of normalised embeddings, top-k with torch.

Exact search is the right default for collections up to ~10^6 documents on one machine; the
similarity matrix is computed in query blocks so memory stays at ``block x n_docs`` floats.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..data.collections import Collection
from ..data.trec import Run
from ..models.encoder import Encoder, similarity

__all__ = ["dense_search", "retrieve", "similarity"]  # similarity: models/encoder.py (the trainer scores with it too)


def dense_search(
    query_embeddings: torch.Tensor,
    doc_embeddings: torch.Tensor,
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    k: int = 100,
    block: int = 1024,
) -> Run:
    """Top-``k`` documents per query by inner product (= cosine for normalised inputs), scored by
    :func:`similarity` (float32 under any autocast)."""
    k = min(k, len(doc_ids))
    run: Run = {}
    for start in range(0, len(query_ids), block):
        scores = similarity(query_embeddings[start : start + block], doc_embeddings)
        top = torch.topk(scores, k, dim=1)
        for row, qid in enumerate(query_ids[start : start + block]):
            run[qid] = {doc_ids[j]: float(s) for s, j in zip(top.values[row].tolist(), top.indices[row].tolist())}
    return run


def retrieve(
    collection: Collection,
    query_encoder: Encoder,
    doc_encoder: Encoder,
    k: int = 100,
    batch_size: int = 32,
    progress: bool = False,
) -> Run:
    """Encode queries with ``query_encoder`` (the English teacher) and documents with
    ``doc_encoder`` (the student, or the teacher for zero-shot), then search exactly."""
    qids, dids = list(collection.queries), list(collection.documents)
    queries = query_encoder.encode(
        [collection.queries[q] for q in qids],
        role="query",
        batch_size=batch_size,
        progress=progress and f"queries {collection.lang}",
    )
    docs = doc_encoder.encode(
        [collection.documents[d] for d in dids],
        role="passage",
        batch_size=batch_size,
        progress=progress and f"documents {collection.lang}",
    )
    return dense_search(queries, docs, qids, dids, k=k)
