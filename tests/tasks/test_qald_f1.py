"""QALD answer-set F1 against hand-computed cases (GERBIL QA conventions)."""

from __future__ import annotations

import pytest

from optical_lab.data.qald import Answers, normalize_answers, normalize_term
from optical_lab.evaluation.answer_f1 import aggregate_scores, prf, score_answers, score_question

XSD = "http://www.w3.org/2001/XMLSchema#"


def approx(x):
    return pytest.approx(x, abs=1e-12)


def test_partial_overlap_and_duplicates():
    # duplicates in the system answer count once: S = {a, b, d}
    s = score_question({"a", "b", "c"}, ["a", "b", "d", "d", "a"])
    assert (s.tp, s.fp, s.fn) == (2, 1, 1)
    assert (s.precision, s.recall, s.f1) == (approx(2 / 3), approx(2 / 3), approx(2 / 3))
    s = score_question({"a", "b", "c", "d"}, {"a"})
    assert (s.precision, s.recall, s.f1) == (1.0, 0.25, approx(0.4))


def test_empty_answer_conventions():
    both_empty = score_question(set(), None)
    assert (both_empty.precision, both_empty.recall, both_empty.f1) == (1.0, 1.0, 1.0)
    assert (both_empty.qald_precision, both_empty.qald_recall) == (1.0, 1.0)
    gold_empty = score_question(set(), {"x"})
    assert (gold_empty.precision, gold_empty.recall, gold_empty.f1, gold_empty.qald_precision) == (0, 0, 0, 0)
    no_answer = score_question({"x"}, set())  # gold non-empty, system silent
    assert (no_answer.precision, no_answer.recall, no_answer.f1) == (0.0, 0.0, 0.0)  # GERBIL standard
    assert (no_answer.qald_precision, no_answer.qald_recall) == (1.0, 0.0)  # "Macro F1 QALD" rule
    wrong = score_question({"x"}, {"y"})
    assert (wrong.precision, wrong.qald_precision, wrong.f1) == (0.0, 0.0, 0.0)
    assert prf(0, 0, 3, "qald") == (1.0, 0.0, 0.0) and prf(0, 0, 3) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        prf(1, 0, 0, "lenient")


def test_boolean_answers():
    yes, no = Answers.from_bool(True), Answers.from_bool(False)
    assert score_question(yes, True).f1 == 1.0
    assert score_question(no, no).f1 == 1.0  # "false" is an answer, not an empty one
    wrong = score_question(yes, False)
    assert (wrong.tp, wrong.fp, wrong.fn, wrong.f1) == (0, 1, 1, 0.0)
    assert score_question(yes, {"http://dbpedia.org/resource/Taiko"}).f1 == 0.0
    silent = score_question(no, None)
    assert (silent.f1, silent.qald_precision, silent.qald_recall) == (0.0, 1.0, 0.0)
    assert normalize_answers({"head": {}, "boolean": True}) == yes
    assert normalize_answers({"boolean": "false"}) == no


def test_typed_literals_are_normalised_consistently():
    assert normalize_term({"type": "typed-literal", "datatype": XSD + "integer", "value": "08"}) == "8"
    assert normalize_term({"type": "literal", "datatype": XSD + "double", "value": "8.0"}) == "8"
    assert normalize_term({"type": "typed-literal", "datatype": XSD + "double", "value": "1.2742e+07"}) == "12742000"
    assert normalize_term({"type": "typed-literal", "datatype": XSD + "double", "value": "4.5e-07"}) == "0.00000045"
    assert (
        normalize_term({"type": "typed-literal", "datatype": XSD + "nonNegativeInteger", "value": "23656"}) == "23656"
    )
    assert normalize_term({"type": "typed-literal", "datatype": XSD + "date", "value": "1912-04-20"}) == "1912-04-20"
    assert normalize_term({"type": "literal", "xml:lang": "en", "value": "Novelist"}) == "Novelist"
    assert normalize_term({"type": "literal", "value": "030"}) == "030"  # not numeric-typed: kept
    assert normalize_term({"type": "typed-literal", "datatype": XSD + "boolean", "value": "1"}) == "true"
    assert (
        normalize_term({"type": "uri", "value": "http://dbpedia.org/resource/Berlin"})
        == "http://dbpedia.org/resource/Berlin"
    )
    gold = normalize_answers(
        {"results": {"bindings": [{"c": {"type": "typed-literal", "datatype": XSD + "integer", "value": "8"}}]}}
    )
    predicted = normalize_answers(
        {
            "results": {
                "bindings": [
                    {"n": {"type": "literal", "datatype": XSD + "decimal", "value": "8.00"}},
                    {"n": {"type": "literal", "datatype": XSD + "integer", "value": "008"}},
                ]
            }
        }
    )  # duplicate after normalising
    assert predicted.values == {"8"} and score_question(gold, predicted).f1 == 1.0
    label = normalize_answers(
        {"results": {"bindings": [{"s": {"type": "literal", "xml:lang": "en", "value": "Cardiac arrest"}}]}}
    )
    assert score_question(label, {"Cardiac arrest"}).f1 == 1.0


def test_aggregates_by_hand():
    per_question, agg = score_answers(
        {"q1": {"a", "b", "c"}, "q2": {"x"}, "q3": set()},
        {"q1": {"a", "b", "d"}, "q3": set()},  # q2 unanswered
    )
    assert per_question["q2"].qald_precision == 1.0
    assert agg["n"] == 3
    assert agg["macro_F1"] == approx((2 / 3 + 0 + 1) / 3)  # 5/9
    assert agg["macro_P"] == approx(5 / 9) and agg["macro_R"] == approx(5 / 9)
    assert agg["qald_macro_P"] == approx(8 / 9) and agg["qald_macro_R"] == approx(5 / 9)
    assert agg["qald_macro_F1"] == approx(80 / 117)  # harmonic mean of 8/9 and 5/9
    assert (agg["tp"], agg["fp"], agg["fn"]) == (2, 1, 2)
    assert agg["micro_P"] == approx(2 / 3) and agg["micro_R"] == approx(1 / 2)
    assert agg["micro_F1"] == approx(4 / 7)
    # the same numbers from table rows (as saved in per_query.csv, "F1" column name)
    rows = [{"F1": s.f1, **{k: v for k, v in s.as_dict().items() if k != "f1"}} for s in per_question.values()]
    assert aggregate_scores(rows) == agg
    with pytest.raises(ValueError):
        aggregate_scores([])
