"""Exact dense retrieval: cosine similarity of normalised embeddings, top-k with torch.

Exact search is the right default for collections up to ~10^6 documents on one machine; the
similarity matrix is computed in query blocks so memory stays at ``block x n_docs`` floats.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..data.collections import Collection
from ..data.trec import Run
from ..models.encoder import Encoder


def similarity(queries: torch.Tensor, documents: torch.Tensor) -> torch.Tensor:
    """Inner products (queries x documents) in float32 whatever autocast is active: the comparison runner
    evaluates and selects inside its bf16 autocast region, where the product would be rounded to 8 bits of
    mantissa and tie documents whose cosines differ by less than ~0.004 (their order then set by document
    id or by the tie rule, not by the model). Every retrieval score (search, dev MRR) goes through here."""
    with torch.autocast(queries.device.type, enabled=False):
        return queries.float() @ documents.float().T


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
