"""QALD-JSON loader (QALD-9-plus: Perevalov et al., 2022; questions translated by native speakers).

File format (one JSON object)::

    {"questions": [
        {"id": "99",
         "question": [{"language": "en", "string": "What is the time zone of Salt Lake City?"},
                      {"language": "lt", "string": "..."}, {"language": "lt", "string": "..."}, ...],
         "query": {"sparql": "PREFIX res: <...> SELECT DISTINCT ?uri WHERE { ... }"},
         "answers": [{"head": {"vars": ["uri"]},
                      "results": {"bindings": [{"uri": {"type": "uri", "value": "http://..."}}]}}]},
        ...]}

* **Several translations per language.** A question may carry several strings for one language
  (QALD-9-plus test: 26 German, 121 Russian, 42 Lithuanian, 23 Ukrainian, 12 Bashkir, 9 Belarusian
  questions have two or more). They are kept in file order; :meth:`QaldQuestion.text` returns the
  first one. Language codes are stored as ISO 639-3 (``uk`` -> ``ukr``); a code the toolkit does not
  know is kept lower-cased as written.
* **Answers** are SPARQL-JSON results: ``{"boolean": true}`` for ASK queries, otherwise
  ``results.bindings``. Like GERBIL QA, only the *first* element of ``answers`` is used, and the
  values of *all* variables of all bindings are pooled into one set (a two-variable gold answer such
  as ``?uri ?string`` counts each value once). An empty ``bindings`` list is a legal, empty answer
  (35 of the 150 QALD-9-plus DBpedia test questions have one; all 4 ASK questions there are true).
* **Normalisation** (:func:`normalize_term`) makes answers comparable as plain strings:

  ===================================  ===========================================================
  SPARQL-JSON term                     normalised string
  ===================================  ===========================================================
  ``uri``                              the IRI, unchanged (``http://dbpedia.org/resource/X``)
  ``literal`` with ``xml:lang``        the lexical form; the language tag is dropped
  ``literal`` / ``typed-literal``      the lexical form; the datatype is dropped, except that:
  numeric datatype (xsd:integer,       the number in canonical decimal form: ``"08"`` -> ``8``,
  decimal, double, float, long, ...)   ``"8.0"`` -> ``8``, ``"1.2742e+07"`` -> ``12742000``,
                                       ``"4.5e-07"`` -> ``0.00000045``
  xsd:boolean                          ``true`` / ``false``
  ``bnode``                            ``_:`` + the label
  ASK answer ``{"boolean": b}``        :class:`Answers` with ``boolean=b`` (scored as {"true"}/{"false"})
  ===================================  ===========================================================

  A plain literal that merely *looks* numeric (``"030"``, a telephone prefix in QALD-9 q143) is not
  rewritten: only a numeric *datatype* triggers canonicalisation.

Every problem is reported as a :class:`~optical_lab.data.errors.DataError` that names the file, the
line (for JSON syntax errors) or the question id and field, and how to fix it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable

from .errors import DataError
from .languages import ISO1_TO_ISO3
from .paths import data_dir

QALD_TEST_FILE = "qald_9_plus_test_dbpedia.json"
XSD = "http://www.w3.org/2001/XMLSchema#"
NUMERIC_DATATYPES = frozenset(
    XSD + name
    for name in (
        "integer",
        "decimal",
        "double",
        "float",
        "long",
        "int",
        "short",
        "byte",
        "nonNegativeInteger",
        "nonPositiveInteger",
        "positiveInteger",
        "negativeInteger",
        "unsignedLong",
        "unsignedInt",
        "unsignedShort",
        "unsignedByte",
    )
)
BOOLEAN_DATATYPE = XSD + "boolean"


# --------------------------------------------------------------------------- answers
@dataclass(frozen=True)
class Answers:
    """A normalised answer: a set of strings (SELECT) or a truth value (ASK).

    ``values`` is empty for an empty SELECT answer; for an ASK answer ``boolean`` is set and
    ``values`` holds ``"true"`` or ``"false"`` so set-based scoring works unchanged.
    """

    values: frozenset[str] = frozenset()
    boolean: bool | None = None

    @classmethod
    def from_bool(cls, value: bool) -> "Answers":
        return cls(frozenset({"true" if value else "false"}), bool(value))

    @property
    def is_boolean(self) -> bool:
        return self.boolean is not None

    @property
    def is_empty(self) -> bool:
        return not self.values

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self):
        return iter(sorted(self.values))


def canonical_number(text: str) -> str | None:
    """``"08"`` -> ``"8"``, ``"1.2742e+07"`` -> ``"12742000"``, ``"4.5e-07"`` -> ``"0.00000045"``;
    ``None`` when ``text`` is not a finite number."""
    try:
        number = Decimal(text.strip())
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite():
        return None
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")


def normalize_term(term: dict[str, Any]) -> str:
    """One SPARQL-JSON RDF term -> the string it is compared as (see the module table)."""
    if not isinstance(term, dict) or "value" not in term:
        raise ValueError(f"an RDF term needs a 'value': {term!r}")
    kind, value = term.get("type", "literal"), str(term["value"])
    if kind == "uri":
        return value.strip()
    if kind == "bnode":
        return "_:" + value
    datatype = term.get("datatype")
    if datatype in NUMERIC_DATATYPES:
        number = canonical_number(value)
        return number if number is not None else value.strip()
    if datatype == BOOLEAN_DATATYPE:
        lowered = value.strip().lower()
        return {"1": "true", "0": "false"}.get(lowered, lowered)
    return value.strip()


def normalize_answers(answer: dict[str, Any] | None) -> Answers:
    """A SPARQL-JSON result object (``{"boolean": ...}`` or ``{"results": {"bindings": [...]}}``)."""
    if answer is None:
        return Answers()
    if not isinstance(answer, dict):
        raise ValueError(f"an answer must be a SPARQL-JSON object, got {type(answer).__name__}")
    if "boolean" in answer:
        value = answer["boolean"]
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            value = value.strip().lower() == "true"
        if not isinstance(value, bool):
            raise ValueError(f"'boolean' must be true or false, got {value!r}")
        return Answers.from_bool(value)
    results = answer.get("results")
    if not isinstance(results, dict) or not isinstance(results.get("bindings"), list):
        raise ValueError("an answer needs either 'boolean' or 'results': {'bindings': [...]}")
    values = set()
    for binding in results["bindings"]:
        if not isinstance(binding, dict):
            raise ValueError(f"a binding must map variables to RDF terms, got {binding!r}")
        values.update(normalize_term(term) for term in binding.values())
    return Answers(frozenset(values))


# --------------------------------------------------------------------------- questions
@dataclass
class QaldQuestion:
    """One benchmark item: its translations, its SPARQL query and its normalised gold answer."""

    id: str
    questions: dict[str, list[str]]  # ISO 639-3 code -> translations in file order
    sparql: str
    answers: Answers
    keywords: dict[str, list[str]] = field(default_factory=dict)

    def text(self, lang: str) -> str | None:
        """The *first* translation into ``lang`` (ISO 639-1 or -3), or ``None`` when there is none."""
        return (self.questions.get(_lang_key(lang)) or [None])[0]

    def texts(self, lang: str) -> list[str]:
        """Every translation into ``lang``, in file order."""
        return list(self.questions.get(_lang_key(lang), []))

    @property
    def answer_type(self) -> str:
        if self.answers.is_boolean:
            return "boolean"
        return "empty" if self.answers.is_empty else "set"


@dataclass
class QaldDataset:
    """All questions of one QALD-JSON file, in file order."""

    path: Path
    questions: list[QaldQuestion]

    def __len__(self) -> int:
        return len(self.questions)

    def __iter__(self):
        return iter(self.questions)

    def by_id(self) -> dict[str, QaldQuestion]:
        return {q.id: q for q in self.questions}

    def questions_in(self, lang: str) -> list[QaldQuestion]:
        """Questions with at least one translation into ``lang``."""
        key = _lang_key(lang)
        return [q for q in self.questions if q.questions.get(key)]

    def language_counts(self) -> dict[str, dict[str, int]]:
        """``{lang: {"questions": n with >= 1 translation, "strings": all translations,
        "multiple": n with >= 2}}`` — the numbers the QALD-9-plus README tabulates."""
        questions, strings, multiple = Counter(), Counter(), Counter()
        for q in self.questions:
            for lang, texts in q.questions.items():
                questions[lang] += 1
                strings[lang] += len(texts)
                multiple[lang] += len(texts) > 1
        return {
            lang: {"questions": questions[lang], "strings": strings[lang], "multiple": multiple[lang]}
            for lang in sorted(questions, key=lambda l: (-questions[l], l))
        }


def _lang_key(code: str) -> str:
    code = code.strip().lower()
    return ISO1_TO_ISO3.get(code, code)


def qald_file(name: str = QALD_TEST_FILE) -> Path:
    """The QALD-9-plus file ``name`` in the data directory (``qald-9-plus/``)."""
    return data_dir("qald-9-plus") / "qald-9-plus" / name


def _require(obj: dict, key: str, kind: type | tuple[type, ...], where: str, path: Path) -> Any:
    if key not in obj:
        raise DataError(
            f"{where}: missing field {key!r}",
            path=path,
            fix="every question needs 'id', 'question', 'query' {'sparql'} and 'answers' (QALD-JSON)",
        )
    value = obj[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DataError(
            f"{where}: field {key!r} must be {names}, got {type(value).__name__}",
            path=path,
            fix="follow the QALD-JSON layout of the upstream qald_9_plus files",
        )
    return value


def parse_question(item: Any, index: int, path: Path) -> QaldQuestion:
    """One element of ``questions`` (``index`` is its 0-based position, for messages)."""
    where = f"questions[{index}]"
    if not isinstance(item, dict):
        raise DataError(
            f"{where} must be an object, got {type(item).__name__}",
            path=path,
            fix="'questions' must be a list of QALD-JSON question objects",
        )
    qid = str(_require(item, "id", (str, int), where, path))
    where = f"question id {qid} ({where})"
    translations: dict[str, list[str]] = {}
    keywords: dict[str, list[str]] = {}
    for j, entry in enumerate(_require(item, "question", list, where, path)):
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("language"), str)
            or not isinstance(entry.get("string"), str)
        ):
            raise DataError(
                f"{where}: question[{j}] needs string fields 'language' and 'string', got {entry!r}",
                path=path,
                fix='write each translation as {"language": "uk", "string": "..."}',
            )
        text = " ".join(entry["string"].split())
        if not text:
            continue  # an empty translation is no translation
        lang = _lang_key(entry["language"])
        translations.setdefault(lang, []).append(text)
        if isinstance(entry.get("keywords"), str) and entry["keywords"].strip():
            keywords.setdefault(lang, []).append(entry["keywords"].strip())
    query = _require(item, "query", dict, where, path)
    sparql = query.get("sparql")
    if not isinstance(sparql, str) or not sparql.strip():
        raise DataError(
            f"{where}: 'query' has no non-empty 'sparql' string",
            path=path,
            fix='write the query as "query": {"sparql": "SELECT ..."}',
        )
    answers = _require(item, "answers", list, where, path)
    try:
        gold = normalize_answers(answers[0] if answers else None)
    except ValueError as exc:
        raise DataError(
            f"{where}: malformed answer: {exc}",
            path=path,
            fix="answers must be SPARQL 1.1 JSON results (boolean or results.bindings)",
        ) from None
    return QaldQuestion(qid, translations, " ".join(sparql.split()), gold, keywords)


def load_qald(path: str | Path | None = None) -> QaldDataset:
    """Load a QALD-JSON file (default: the QALD-9-plus DBpedia test set, 150 questions)."""
    path = Path(path) if path is not None else qald_file()
    if not path.exists():
        raise DataError(
            "QALD file not found",
            path=path,
            fix="run `optical-lab data fetch` or set OPTICAL_LAB_DATA to the folder holding qald-9-plus/",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(
            f"invalid JSON: {exc.msg} (column {exc.colno})",
            path=path,
            line=exc.lineno,
            fix="repair the file or re-fetch it (QALD-9-plus, GitHub Perevalov/qald_9_plus)",
        ) from None
    except UnicodeDecodeError as exc:
        raise DataError(
            f"not UTF-8 text: {exc.reason} at byte {exc.start}",
            path=path,
            fix="QALD-JSON files are UTF-8; re-fetch the file",
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise DataError(
            "expected a JSON object with a 'questions' list",
            path=path,
            fix='the top level of a QALD-JSON file is {"questions": [...]}',
        )
    questions = [parse_question(item, i, path) for i, item in enumerate(data["questions"])]
    seen: set[str] = set()
    for q in questions:
        if q.id in seen:
            raise DataError(f"duplicate question id {q.id}", path=path, fix="question ids must be unique")
        seen.add(q.id)
    if not questions:
        raise DataError("the file holds no questions", path=path, fix="use a QALD-JSON file with at least one question")
    return QaldDataset(path, questions)


def answers_from_values(values: Iterable[str] | bool | None) -> Answers:
    """Build :class:`Answers` from already-normalised strings, a truth value, or ``None`` (empty)."""
    if values is None:
        return Answers()
    if isinstance(values, bool):
        return Answers.from_bool(values)
    return Answers(frozenset(str(v) for v in values))
