"""Retrieval tasks built from NTREX, with document-level folds.

**Known-item CLIR** (the design of Sasaki et al., 2018 and CLIRMatrix): for each NTREX document,
the query is the English document's *first sentence* and the relevant document is the
target-language text of the *same* document without that first sentence. One relevant document
per query, 123 queries against 123 documents per language.

**Sentence retrieval**: each English sentence retrieves its own translation among all target
sentences of the evaluated documents (accuracy@1 and MRR).

**Folds** split *documents*, never sentences: a fold's evaluation documents contribute no sentence
to that fold's training (or dev) bitext, so a student never sees a line it is evaluated on. With
the ``held-out-dev`` scheme (new comparisons) no fold's dev documents are evaluated by any fold
either (:func:`document_folds`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .bitext import Bitext
from .ntrex import NtrexCorpus


@dataclass
class Collection:
    """A TREC-style test collection: queries, documents, graded relevance."""

    name: str
    lang: str
    queries: dict[str, str]
    documents: dict[str, str]
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)

    def restrict(self, doc_ids: set[str]) -> "Collection":
        """Keep only the given documents and the queries whose relevant documents survive."""
        documents = {d: t for d, t in self.documents.items() if d in doc_ids}
        qrels = {q: rel for q, rel in self.qrels.items() if any(d in documents for d in rel)}
        queries = {q: t for q, t in self.queries.items() if q in qrels}
        return Collection(self.name, self.lang, queries, documents, qrels)


@dataclass(frozen=True)
class Fold:
    """Document ids of one fold: train (bitext source), dev (model selection), eval (scores)."""

    index: int
    train: tuple[str, ...]
    dev: tuple[str, ...]
    eval: tuple[str, ...]


def _sentences_by_document(corpus: NtrexCorpus) -> dict[str, list[int]]:
    by_doc: dict[str, list[int]] = {}
    for line, doc in enumerate(corpus.doc_ids):
        by_doc.setdefault(doc, []).append(line)
    return by_doc


def known_item_collection(corpus: NtrexCorpus) -> Collection:
    """English first sentence -> target-language rest of the same document."""
    queries, documents, qrels = {}, {}, {}
    for doc, lines in _sentences_by_document(corpus).items():
        queries[doc] = corpus.english[lines[0]]
        documents[doc] = " ".join(corpus.target[i] for i in lines[1:])
        qrels[doc] = {doc: 1}
    return Collection(f"ntrex-known-item-{corpus.lang}", corpus.lang, queries, documents, qrels)


def sentence_collection(corpus: NtrexCorpus, doc_ids: set[str] | None = None) -> Collection:
    """English sentence -> its translation, among the target sentences of ``doc_ids`` (all when None)."""
    queries, documents, qrels = {}, {}, {}
    for line, doc in enumerate(corpus.doc_ids):
        if doc_ids is not None and doc not in doc_ids:
            continue
        sid = f"s{line + 1}"
        queries[sid] = corpus.english[line]
        documents[sid] = corpus.target[line]
        qrels[sid] = {sid: 1}
    return Collection(f"ntrex-sentences-{corpus.lang}", corpus.lang, queries, documents, qrels)


FOLD_SCHEMES = ("held-out-dev", "per-fold-dev", "all-eval")
# "per-fold-dev": the scheme of the results committed before issue #12 (a fold's dev documents are
# drawn from its non-evaluation documents, i.e. from the other folds' evaluation documents).
# "held-out-dev": one dev document set, held out from every fold's evaluation set.
# "all-eval": every document is evaluated, none is trained or selected on (a comparison whose
# bitext comes from elsewhere: --bitext mafand or a user's file; protocol v2).
LEGACY_FOLD_SCHEME = "per-fold-dev"


def document_folds(
    doc_ids: list[str], k: int = 2, seed: int = 0, dev_fraction: float = 0.1, scheme: str = LEGACY_FOLD_SCHEME
) -> list[Fold]:
    """Split documents into ``k`` evaluation folds, with train and dev documents for each.

    ``k == 1`` is allowed and means "evaluate on half, train on the other half" (fold 0 of k=2),
    the cheapest honest setting for demos. Documents are shuffled with ``seed``; then

    * ``scheme="per-fold-dev"`` (the committed results'): the documents are dealt into
      ``max(k, 2)`` parts; fold *i* evaluates part *i* and splits the other parts train/dev with
      :func:`split_dev`. Fold 0's dev documents are then fold 1's evaluation documents: each fold's
      student never sees its own evaluation documents, but model selection of one fold reads
      sentences another fold is scored on.
    * ``scheme="held-out-dev"`` (new comparisons): the first documents of the shuffle (as many as
      ``per-fold-dev`` gives one fold, ``round(dev_fraction * n * (parts - 1) / parts)``, at least 1)
      are the dev set of **every** fold and are never evaluated; the rest are dealt into the parts,
      fold *i* evaluates part *i* and trains on the others. No dev sentence of any fold is an
      evaluation sentence of any fold, at the price of those few documents leaving the evaluation.
    * ``scheme="all-eval"``: one fold (``k`` must be 1) that evaluates every document, with no
      training or dev documents — for students trained and selected on other bitext.
    """
    if scheme not in FOLD_SCHEMES:
        raise ValueError(f"unknown fold scheme {scheme!r}; use one of {FOLD_SCHEMES}")
    docs = list(dict.fromkeys(doc_ids))
    if scheme == "all-eval":
        if k != 1:
            raise ValueError(f"fold scheme 'all-eval' has exactly one fold, not {k}")
        return [Fold(0, (), (), tuple(sorted(docs)))]
    random.Random(seed).shuffle(docs)
    n_parts = max(k, 2)
    if scheme == "held-out-dev":
        n_dev = max(1, round(dev_fraction * len(docs) * (n_parts - 1) / n_parts)) if dev_fraction > 0 else 0
        dev, docs = tuple(sorted(docs[:n_dev])), docs[n_dev:]
        parts = [docs[i::n_parts] for i in range(n_parts)]
        return [
            Fold(
                i,
                tuple(sorted(d for j, part in enumerate(parts) if j != i for d in part)),
                dev,
                tuple(sorted(parts[i])),
            )
            for i in range(k)
        ]
    parts = [docs[i::n_parts] for i in range(n_parts)]
    folds = []
    for i in range(k):
        train, dev = split_dev([d for j, part in enumerate(parts) if j != i for d in part], dev_fraction)
        folds.append(Fold(i, train, dev, tuple(sorted(parts[i]))))
    return folds


def split_dev(docs: list[str], dev_fraction: float) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(train documents, dev documents), each sorted: the first ``round(dev_fraction * n)`` documents
    of ``docs`` (at least 1 when ``dev_fraction > 0``) are held out for model selection. ``docs``
    comes already shuffled by the caller: the one train/dev rule of every task."""
    n_dev = max(1, round(dev_fraction * len(docs))) if dev_fraction > 0 else 0
    return tuple(sorted(docs[n_dev:])), tuple(sorted(docs[:n_dev]))


def fold_bitext(corpus: NtrexCorpus, docs: tuple[str, ...] | set[str]) -> Bitext:
    """All sentence pairs of the given documents (e.g. a fold's training documents)."""
    keep = set(docs)
    return corpus.bitext().select([i for i, d in enumerate(corpus.doc_ids) if d in keep])
