"""Known-item collections and document-level folds built from NTREX."""

from __future__ import annotations

import pytest

from optical_lab.data import document_folds, fold_bitext, known_item_collection, load_ntrex, sentence_collection


@pytest.fixture(scope="module")
def corpus():
    return load_ntrex("swa")


def test_known_item_design(corpus):
    collection = known_item_collection(corpus)
    assert len(collection.queries) == len(collection.documents) == 123
    first = corpus.doc_ids.index("bbc.381790")
    assert collection.queries["bbc.381790"] == corpus.english[first]
    # the document is the target text *without* its first sentence
    assert corpus.target[first] not in collection.documents["bbc.381790"]
    assert corpus.target[first + 1] in collection.documents["bbc.381790"]
    assert all(rel == {q: 1} for q, rel in collection.qrels.items())


@pytest.mark.parametrize("k", [1, 2, 3])
def test_folds_are_document_disjoint(corpus, k):
    folds = document_folds(corpus.doc_ids, k=k, seed=3)
    assert len(folds) == k
    for fold in folds:
        train, dev, evaluation = set(fold.train), set(fold.dev), set(fold.eval)
        assert not (train & evaluation) and not (dev & evaluation) and not (train & dev)
        bitext = fold_bitext(corpus, fold.train)
        assert not set(bitext.doc_ids) & evaluation
        # no evaluation *sentence* leaks into training either
        eval_lines = {corpus.target[i] for i, d in enumerate(corpus.doc_ids) if d in evaluation}
        assert not eval_lines & set(bitext.foreign) - {
            s for i, s in enumerate(corpus.target) if corpus.doc_ids[i] in train
        }
    if k >= 2:
        assert sorted(d for f in folds for d in f.eval) == sorted(corpus.documents())


def test_folds_deterministic(corpus):
    assert document_folds(corpus.doc_ids, seed=1) == document_folds(corpus.doc_ids, seed=1)
    assert document_folds(corpus.doc_ids, seed=1) != document_folds(corpus.doc_ids, seed=2)


def test_restrict_and_sentence_task(corpus):
    fold = document_folds(corpus.doc_ids)[0]
    clir = known_item_collection(corpus).restrict(set(fold.eval))
    assert set(clir.documents) == set(clir.queries) == set(fold.eval)
    sentences = sentence_collection(corpus, set(fold.eval))
    assert len(sentences.queries) == sum(d in set(fold.eval) for d in corpus.doc_ids)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_held_out_dev_is_never_evaluated_by_any_fold(corpus, k):
    folds = document_folds(corpus.doc_ids, k=k, seed=0, scheme="held-out-dev")
    dev = set(folds[0].dev)
    assert all(set(f.dev) == dev for f in folds)  # one dev set for the whole comparison
    evaluated = {d for f in folds for d in f.eval}
    assert dev and not dev & evaluated
    for fold in folds:
        assert not set(fold.train) & set(fold.eval) and not set(fold.train) & dev
    if k >= 2:
        assert evaluated | dev == set(corpus.documents())
    # as many dev documents as the old scheme gives one fold (6 of 123 with two folds)
    legacy = document_folds(corpus.doc_ids, k=k, seed=0)
    assert len(dev) == len(legacy[0].dev)


def test_the_committed_scheme_is_unchanged_and_its_leak_documented(corpus):
    legacy = document_folds(corpus.doc_ids, k=2, seed=0)
    assert legacy == document_folds(corpus.doc_ids, k=2, seed=0, scheme="per-fold-dev")  # still the default
    assert set(legacy[0].dev) <= set(legacy[1].eval)  # fold 0 selects on fold 1's evaluation documents
    with pytest.raises(ValueError, match="fold scheme"):
        document_folds(corpus.doc_ids, scheme="nope")
