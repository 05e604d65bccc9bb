"""QALD-JSON loader (real file + malformed tmp files) and the SPARQL verbaliser on real queries."""

from __future__ import annotations

import json
import re

import pytest

from optical_lab.data.errors import DataError
from optical_lab.data.qald import load_qald
from optical_lab.data.sparql_text import verbalize


@pytest.fixture(scope="module")
def qald():
    return load_qald()


# ------------------------------------------------------------------ the real file
def test_real_file_counts(qald):
    assert len(qald) == 150 and len(qald.by_id()) == 150
    counts = qald.language_counts()
    questions = {lang: c["questions"] for lang, c in counts.items()}
    assert questions == {
        "eng": 150,
        "deu": 150,
        "rus": 150,
        "spa": 150,
        "ukr": 150,
        "bel": 146,
        "lit": 140,
        "bak": 105,
        "fra": 25,
        "hye": 20,
    }
    # translation strings: exactly the upstream README's test row
    strings = {lang: c["strings"] for lang, c in counts.items()}
    assert strings == {
        "eng": 150,
        "deu": 176,
        "rus": 348,
        "spa": 150,
        "ukr": 176,
        "bel": 155,
        "lit": 186,
        "bak": 117,
        "fra": 26,
        "hye": 20,
    }
    multiple = {lang: c["multiple"] for lang, c in counts.items() if c["multiple"]}
    assert multiple == {"rus": 121, "lit": 42, "deu": 26, "ukr": 23, "bak": 12, "bel": 9, "fra": 1}
    types = [q.answer_type for q in qald]
    assert (types.count("set"), types.count("empty"), types.count("boolean")) == (111, 35, 4)


def test_real_answers_and_translations(qald):
    q = qald.by_id()
    assert q["99"].answers.values == {"http://dbpedia.org/resource/Mountain_Time_Zone"}
    assert q["99"].text("lt") == "Kokia Solt Leik Sičio laiko zona?"  # the first of two
    assert len(q["99"].texts("lit")) == 2 and q["99"].text("uk") == q["99"].text("ukr")
    assert q["99"].text("hy") is None
    assert q["73"].answers.values == {"8"}  # "8"^^xsd:integer
    assert q["88"].answers.values == {"0.00000045"}  # "4.5e-07"^^xsd:double
    assert q["143"].answers.values == {"030"}  # a plain literal stays as written
    assert q["64"].answers.values == {"Novelist"}  # "Novelist"@en
    assert q["6"].answers.boolean is True
    assert q["81"].answers.is_empty
    assert len(q["122"].answers) >= 1  # two variables (?uri ?string), pooled


# ------------------------------------------------------------------ malformed files
def _write(tmp_path, text, name="bad.json"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


GOOD_ITEM = {
    "id": "1",
    "question": [{"language": "en", "string": "Who?"}],
    "query": {"sparql": "SELECT ?x WHERE { ?x ?p ?o }"},
    "answers": [{"head": {"vars": ["x"]}, "results": {"bindings": []}}],
}


def test_json_syntax_error_names_file_and_line(tmp_path):
    path = _write(tmp_path, '{\n  "questions": [\n    {"id": "1",, }\n  ]\n}\n')
    with pytest.raises(DataError) as err:
        load_qald(path)
    message = str(err.value)
    assert str(path) in message and "line 3" in message and "invalid JSON" in message
    assert err.value.line == 3


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda q: q.pop("answers"), "missing field 'answers'"),
        (lambda q: q.pop("question"), "missing field 'question'"),
        (lambda q: q.update(query={}), "no non-empty 'sparql'"),
        (lambda q: q.update(question=[{"language": "en"}]), "needs string fields 'language' and 'string'"),
        (lambda q: q.update(answers=[{"head": {}}]), "malformed answer"),
        (lambda q: q.update(answers=[{"boolean": "maybe"}]), "malformed answer"),
        (lambda q: q.update(answers="yes"), "must be list"),
    ],
)
def test_missing_or_bad_fields(tmp_path, mutate, expected):
    item = json.loads(json.dumps(GOOD_ITEM))
    mutate(item)
    path = _write(tmp_path, json.dumps({"questions": [item]}))
    with pytest.raises(DataError) as err:
        load_qald(path)
    message = str(err.value)
    assert expected in message and str(path) in message and "question id 1 (questions[0])" in message


def test_top_level_duplicates_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="'questions' list"):
        load_qald(_write(tmp_path, "[]"))
    with pytest.raises(DataError, match="duplicate question id 1"):
        load_qald(_write(tmp_path, json.dumps({"questions": [GOOD_ITEM, GOOD_ITEM]})))
    with pytest.raises(DataError, match="not found"):
        load_qald(tmp_path / "absent.json")
    ok = load_qald(_write(tmp_path, json.dumps({"questions": [GOOD_ITEM]}), "ok.json"))
    assert ok.questions[0].answers.is_empty and ok.questions[0].text("en") == "Who?"


# ------------------------------------------------------------------ the verbaliser on real queries
EXPECTED = {
    "99": "Salt Lake City time zone",
    "98": "Assassins of Julius Caesar",  # dbc: Category, dct:subject dropped
    "6": "Taiko Japanese Musical Instruments",  # ASK, "a", yago Wikicat prefix dropped
    "81": "States Of The United States governor Butch Otter",
    "86": "Mountain elevation located in area Germany",  # rdf:type, ORDER BY DESC(?x) LIMIT 1 dropped
    "116": "nick Rodzilla",  # "Rodzilla"@en
    "183": "Tom Hanks spouse",  # dbr: used without a PREFIX declaration
    "9": "Air China headquarter City",  # yago City108524735: synset id dropped
    "157": "Lovesick (1983 film) starring birth place country United Kingdom",
    "169": "Library established 1400",  # FILTER number kept
    "194": "States Of The United States postalabbreviation MN",  # ^^rdf:langString dropped
    "206": "Military Conflict place San Antonio date 1835-12-31 1836-12-31",
    "94": "Diana, Princess of Wales death date",  # xsd:date(?d) cast dropped
}


def test_verbaliser_on_real_queries(qald):
    q = qald.by_id()
    for qid, expected in EXPECTED.items():
        assert verbalize(q[qid].sparql) == expected, qid
    # lang filter code and LIMIT / OFFSET numbers are dropped
    assert verbalize(q["149"].sparql) == "country United States capital densityrank"
    assert verbalize(q["25"].sparql) == "River country China length"
    assert "most" in verbalize(q["86"].sparql, keep_operators=True)
    assert "number of" in verbalize(q["140"].sparql, keep_operators=True)


def test_verbaliser_never_leaks_syntax(qald):
    texts = [verbalize(q.sparql) for q in qald]
    assert all(texts) and len(set(texts)) == len(texts)  # non-empty and all distinct
    for text in texts:
        assert "?" not in text and "http" not in text and "<" not in text and "{" not in text
        assert not re.search(r"\b(SELECT|DISTINCT|WHERE|FILTER|UNION|PREFIX|LIMIT|OFFSET|ASK|xsd)\b", text), text
