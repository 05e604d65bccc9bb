"""IBM Model 1 dictionary: recovers obvious translations; uses training bitext only; code-switching."""

from __future__ import annotations

import torch

from optical_lab.data import Bitext, document_folds, fold_bitext, load_ntrex
from optical_lab.methods.code_switch import code_switch
from optical_lab.methods.dictionary import NULL, cooccurrence_counts, ibm_model1, induce_dictionary, tokenize, words

# Koehn's textbook example, plus two sentences so every pair co-occurs at least twice
TINY = [
    ("the house", "das Haus"),
    ("the book", "das Buch"),
    ("a book", "ein Buch"),
    ("a house", "ein Haus"),
    ("the small house", "das kleine Haus"),
    ("a small book", "ein kleines Buch"),
]


def test_words_and_tokens():
    assert tokenize("Hello, world's end-game!") == ["Hello", ",", "world's", "end-game", "!"]
    assert words("Hello, 2024 World!") == ["hello", "world"]  # numbers and punctuation are not entries


def test_ibm_model1_recovers_obvious_translations():
    pairs = [(words(e), words(f)) for e, f in TINY]
    table = ibm_model1(pairs, iterations=10)
    for e, f in [("house", "haus"), ("book", "buch"), ("the", "das"), ("a", "ein")]:
        best = max((p, g) for (ee, g), p in table.items() if ee == e)[1]
        assert best == f, (e, best)
    # t(.|e) is a distribution over foreign words for every English word, NULL included
    for e in ["house", "the", NULL]:
        assert abs(sum(p for (ee, _), p in table.items() if ee == e) - 1.0) < 1e-9
    dictionary = induce_dictionary(Bitext([e for e, _ in TINY], [f for _, f in TINY], "deu"), iterations=10)
    assert dictionary.translations("House")[0] == "haus"
    assert dictionary.translations("book")[0] == "buch"
    assert dictionary.translations("nothing") == []
    # "small" is "kleine" once and "kleines" once: below min_count=2, so not an entry
    assert "small" not in dictionary
    assert "small" in induce_dictionary(Bitext([e for e, _ in TINY], [f for _, f in TINY], "deu"), min_count=1)


def test_dictionary_comes_from_training_bitext_only():
    corpus = load_ntrex("hau")
    fold = document_folds(corpus.doc_ids, k=2, seed=0)[0]
    train = fold_bitext(corpus, fold.train)
    evaluation = fold_bitext(corpus, fold.eval)
    dictionary = induce_dictionary(train)
    assert len(dictionary) > 500
    train_pairs = [(words(e), words(f)) for e, f in zip(train.english, train.foreign)]
    together = cooccurrence_counts(train_pairs)
    for e, f in dictionary.pairs():  # every entry co-occurs in >= 2 training sentence pairs
        assert together[(e, f)] >= 2, (e, f)
    eval_only = set(
        cooccurrence_counts((words(e), words(f)) for e, f in zip(evaluation.english, evaluation.foreign))
    ) - set(together)
    assert eval_only, "the check below would be vacuous"
    assert not eval_only & set(dictionary.pairs())


def test_code_switch_ratio_and_determinism():
    dictionary = induce_dictionary(Bitext([e for e, _ in TINY], [f for _, f in TINY], "deu"), iterations=10)
    assert code_switch("The small house.", dictionary, 0.0)[0] == "The small house ."
    switched, n = code_switch("The small house.", dictionary, 1.0)
    assert n == 2 and switched == "Das small haus ."
    a = code_switch("the house and the book", dictionary, 0.5, torch.Generator().manual_seed(1))
    b = code_switch("the house and the book", dictionary, 0.5, torch.Generator().manual_seed(1))
    assert a == b
