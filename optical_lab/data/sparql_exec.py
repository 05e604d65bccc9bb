"""Execute SPARQL on a local RDF graph with pyoxigraph, and score the answers like QALD gold.

Optional: needs ``pip install pyoxigraph`` (extra ``optical_lab[sparql]``). Nothing here touches the
network — the user supplies the graph (Turtle, N-Triples, RDF/XML, ... any format pyoxigraph reads,
guessed from the file extension). A DBpedia dump is *not* shipped; on a small or different graph
the gold answers of QALD will of course not be reproduced, so
:func:`optical_lab.evaluation.answer_f1.score_predictions` scores predicted queries against *gold
answers you pass in* (by default QALD's stored answers).

Answers come back as :class:`~optical_lab.data.qald.Answers` normalised exactly like the gold
(:func:`optical_lab.data.qald.normalize_term`: IRIs as-is, literals without datatype / language tag,
numeric literals canonicalised), so the scorer compares like with like. Prefixes that QALD queries
use without declaring them (``dbr:``, ``dbo:``, ``dbp:``, ``res:`` ... — see
:data:`optical_lab.data.sparql_text.DEFAULT_PREFIXES`) are supplied as default prefixes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import DataError
from .qald import Answers, normalize_term
from .sparql_text import DEFAULT_PREFIXES


def _oxigraph():
    try:
        import pyoxigraph
    except ImportError as exc:  # pragma: no cover - exercised only without the optional dependency
        raise DataError(
            "executing SPARQL needs the optional package pyoxigraph",
            fix="pip install pyoxigraph   (or: pip install 'optical_lab[sparql]')",
        ) from exc
    return pyoxigraph


def open_graph(paths: str | Path | Iterable[str | Path] | None = None, *, turtle: str | None = None):
    """An in-memory ``pyoxigraph.Store`` holding the given RDF file(s) and/or a Turtle string."""
    ox = _oxigraph()
    store = ox.Store()
    if paths is not None:
        for path in [paths] if isinstance(paths, (str, Path)) else paths:
            path = Path(path)
            if not path.exists():
                raise DataError(
                    "RDF file not found", path=path, fix="pass an existing Turtle / N-Triples / RDF-XML file"
                )
            try:
                store.load(path=str(path))
            except (SyntaxError, ValueError) as exc:
                raise DataError(
                    f"cannot load RDF: {exc}",
                    path=path,
                    fix="check the syntax, or use an extension pyoxigraph knows (.ttl .nt .nq .trig .rdf .jsonld)",
                ) from None
    if turtle is not None:
        try:
            store.load(input=turtle, format=ox.RdfFormat.TURTLE)
        except SyntaxError as exc:
            raise DataError(f"invalid Turtle: {exc}", fix="check the Turtle syntax") from None
    return store


def term_to_json(term: Any) -> dict[str, str] | None:
    """A pyoxigraph term -> its SPARQL 1.1 JSON form (``None`` for an unbound variable)."""
    if term is None:
        return None
    ox = _oxigraph()
    if isinstance(term, ox.NamedNode):
        return {"type": "uri", "value": term.value}
    if isinstance(term, ox.BlankNode):
        return {"type": "bnode", "value": term.value}
    if isinstance(term, ox.Literal):
        out = {"type": "literal", "value": term.value}
        if term.language:
            out["xml:lang"] = term.language
        elif term.datatype is not None:
            out["datatype"] = term.datatype.value
        return out
    return {"type": "literal", "value": str(term)}


@dataclass
class Execution:
    answers: Answers
    error: str | None = None  # a parse / evaluation error: the answer is then empty ("no answer")


def execute(store, sparql: str, prefixes: Mapping[str, str] | None = None) -> Execution:
    """Run ``sparql`` (SELECT or ASK) on ``store``; values of all variables are pooled as in the gold."""
    ox = _oxigraph()
    try:
        result = store.query(sparql, prefixes=dict(prefixes if prefixes is not None else DEFAULT_PREFIXES))
    except (SyntaxError, OSError, ValueError) as exc:
        return Execution(Answers(), f"{type(exc).__name__}: {exc}")
    if isinstance(result, ox.QueryBoolean) or isinstance(result, bool):
        return Execution(Answers.from_bool(bool(result)))
    if not isinstance(result, ox.QuerySolutions):
        return Execution(Answers(), "only SELECT and ASK queries can be scored")
    values = set()
    variables = result.variables
    for solution in result:
        for variable in variables:
            term = term_to_json(solution[variable])
            if term is not None:
                values.add(normalize_term(term))
    return Execution(Answers(frozenset(values)))
