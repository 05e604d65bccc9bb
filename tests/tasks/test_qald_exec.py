"""Executing SPARQL on a tiny handmade Turtle graph (optional pyoxigraph) and scoring it."""

from __future__ import annotations

import pytest

pytest.importorskip("pyoxigraph")

from optical_lab.data.errors import DataError  # noqa: E402
from optical_lab.data.qald import Answers, load_qald  # noqa: E402
from optical_lab.data.sparql_exec import execute, open_graph  # noqa: E402
from optical_lab.evaluation.answer_f1 import score_predictions  # noqa: E402

GRAPH = """
@prefix dbr: <http://dbpedia.org/resource/> .
@prefix dbo: <http://dbpedia.org/ontology/> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
dbr:Salt_Lake_City dbo:timeZone dbr:Mountain_Time_Zone ;
    dbo:populationTotal "0200133"^^xsd:integer ;
    rdfs:label "Salt Lake City"@en .
dbr:Tom_Hanks dbo:spouse dbr:Rita_Wilson , dbr:Samantha_Lewes .
dbr:Taiko a <http://dbpedia.org/class/yago/WikicatJapaneseMusicalInstruments> .
"""


@pytest.fixture(scope="module")
def store():
    return open_graph(turtle=GRAPH)


def test_execute_select_ask_literals(store, tmp_path):
    qald = load_qald().by_id()
    # the real QALD query of q99 (declares res:) and q183 (uses dbr: undeclared) run unchanged
    assert execute(store, qald["99"].sparql).answers == qald["99"].answers
    assert execute(store, qald["183"].sparql).answers.values == {
        "http://dbpedia.org/resource/Rita_Wilson",
        "http://dbpedia.org/resource/Samantha_Lewes",
    }
    assert execute(store, qald["6"].sparql).answers == Answers.from_bool(True)
    population = execute(store, "SELECT ?p WHERE { dbr:Salt_Lake_City dbo:populationTotal ?p }").answers
    assert population.values == {"200133"}  # typed literal canonicalised like the gold
    assert execute(store, "SELECT ?l WHERE { dbr:Salt_Lake_City rdfs:label ?l }").answers.values == {"Salt Lake City"}
    assert execute(store, "SELECT (COUNT(?s) AS ?c) WHERE { ?s dbo:spouse ?o }").answers.values == {"2"}
    broken = execute(store, "SELEC nothing")
    assert broken.error and broken.answers.is_empty
    path = tmp_path / "g.ttl"
    path.write_text(GRAPH, encoding="utf-8")
    assert len(open_graph(path)) == len(store)
    bad = tmp_path / "bad.ttl"
    bad.write_text("this is not turtle", encoding="utf-8")
    with pytest.raises(DataError, match="cannot load RDF"):
        open_graph(bad)


def test_score_predictions_with_the_qald_scorer(store):
    gold = {
        "spouse": {"http://dbpedia.org/resource/Rita_Wilson"},
        "tz": {"http://dbpedia.org/resource/Mountain_Time_Zone"},
        "silent": {"x"},
    }
    predicted = {
        "spouse": "SELECT ?o WHERE { dbr:Tom_Hanks dbo:spouse ?o }",  # one right, one wrong: P 1/2, R 1
        "tz": "SELECT ?o WHERE { dbr:Salt_Lake_City dbo:timeZone ?o }",
        "silent": "SELEC broken",  # an error counts as no answer
    }
    per_question, agg, executions = score_predictions(store, predicted, gold)
    assert per_question["spouse"].f1 == pytest.approx(2 / 3)
    assert per_question["tz"].f1 == 1.0
    assert per_question["silent"].f1 == 0 and per_question["silent"].qald_precision == 1.0
    assert executions["silent"].error
    assert agg["macro_F1"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert agg["micro_F1"] == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3))  # tp 2, fp 1, fn 1
