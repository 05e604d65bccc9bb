"""TREC file formats: topics (TSV), qrels, runs, and documents (TSV or JSONL).

Every reader validates the format and names the file and line of the first problem: ids are unique
and non-empty (``100`` and ``"100"`` are one id), texts are non-empty, JSON fields have their types,
relevance is an ASCII integer, and a collection's qrels name only documents it has. A UTF-8
byte-order mark at the start of a file is dropped (:func:`~.text_files.read_lines`), so a file
saved by a Windows editor does not get a first query id of ``"\ufeffq1"``.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path
from typing import Mapping

from ..io import write_text
from .collections import Collection
from .errors import DataError
from .text_files import read_lines

Run = dict[str, dict[str, float]]  # qid -> docid -> score
Qrels = dict[str, dict[str, int]]  # qid -> docid -> relevance


INTEGER = re.compile(r"-?[0-9]+")  # ASCII digits only: str.isdigit() also accepts '²', which int() refuses


def _add(
    table: dict[str, str], first_line: dict[str, int], key: str, text: str, what: str, path: str | Path, number: int
) -> None:
    """``table[key] = text`` after checking that the id is non-empty and new and the text non-empty."""
    if not key:
        raise DataError(f"empty {what} id", path=path, line=number, fix=f"give every {what} a non-empty id")
    if key in table:
        raise DataError(
            f"{what} id {key!r} appears twice (first on line {first_line[key]}; ids are compared as text, "
            'so 100 and "100" are one id)',
            path=path,
            line=number,
            fix=f"give every {what} its own id",
        )
    if not text.strip():
        raise DataError(
            f"{what} {key!r} has an empty text",
            path=path,
            line=number,
            fix=f"remove the {what} or give it a text (an empty text embeds as noise)",
        )
    table[key], first_line[key] = text, number


def read_topics(path: str | Path) -> dict[str, str]:
    """``qid<TAB>text`` per line; ids unique and non-empty, texts non-empty."""
    topics: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for number, line in enumerate(read_lines(path), start=1):
        parts = line.split("\t")
        if len(parts) < 2:
            raise DataError(
                "expected 'qid<TAB>query text'", path=path, line=number, fix="separate the id and the text with one tab"
            )
        _add(topics, first_line, parts[0].strip(), "\t".join(parts[1:]).strip(), "topic", path, number)
    return topics


def read_qrels(path: str | Path) -> Qrels:
    """``qid 0 docid relevance`` per line (whitespace separated).

    A (qid, docid) pair judged twice with the *same* relevance is accepted (merged qrels often
    repeat a judgement; it changes nothing). Judged twice with *different* relevance is an error:
    which one is true cannot be guessed, and keeping the last one silently changes the scores.
    """
    qrels: Qrels = {}
    first_line: dict[tuple[str, str], int] = {}
    for number, line in enumerate(read_lines(path), start=1):
        parts = line.split()
        if len(parts) != 4 or not INTEGER.fullmatch(parts[3]):
            raise DataError(
                "expected 'qid iteration docid relevance'",
                path=path,
                line=number,
                fix="use the 4-column TREC qrels format",
            )
        qid, docid, relevance = parts[0], parts[2], int(parts[3])
        previous = qrels.get(qid, {}).get(docid)
        if previous is not None and previous != relevance:
            raise DataError(
                f"query {qid!r}, document {docid!r} judged {relevance} here but {previous} on line "
                f"{first_line[(qid, docid)]}",
                path=path,
                line=number,
                fix="keep one judgement per (query, document) pair",
            )
        first_line.setdefault((qid, docid), number)
        qrels.setdefault(qid, {})[docid] = relevance
    return qrels


def read_run(path: str | Path) -> Run:
    """``qid Q0 docid rank score tag`` per line; scores must be finite, one score per (qid, docid)."""
    run: Run = {}
    for number, line in enumerate(read_lines(path), start=1):
        parts = line.split()
        try:
            qid, docid, score = parts[0], parts[2], float(parts[4])
        except (IndexError, ValueError):
            raise DataError(
                "expected 'qid Q0 docid rank score tag'", path=path, line=number, fix="use the 6-column TREC run format"
            ) from None
        if not math.isfinite(score):
            raise DataError(
                f"score {parts[4]!r} is not a finite number",
                path=path,
                line=number,
                fix="write a finite score for every document (NaN/inf make the ranking undefined)",
            )
        if docid in run.get(qid, {}):
            raise DataError(
                f"query {qid!r} ranks document {docid!r} twice",
                path=path,
                line=number,
                fix="list each document once per query",
            )
        run.setdefault(qid, {})[docid] = score
    return run


def read_documents(path: str | Path) -> dict[str, str]:
    """Documents from ``docid<TAB>text`` TSV, or JSONL with ``doc_id``/``docno``/``id`` and ``text``."""
    path = Path(path)
    docs: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for number, line in enumerate(read_lines(path), start=1):
        if path.suffix in {".jsonl", ".json"}:
            key, text = _json_document(line, path, number)
        else:
            parts = line.split("\t", 1)
            if len(parts) != 2:
                raise DataError(
                    "expected 'docid<TAB>text'", path=path, line=number, fix="separate the id and the text with one tab"
                )
            key, text = parts[0].strip(), parts[1]
        _add(docs, first_line, key, text, "document", path, number)
    return docs


def _json_document(line: str, path: Path, number: int) -> tuple[str, str]:
    """(id, title + text) of one JSONL record, every field type-checked (``"text": null`` is an error)."""
    example = 'write e.g. {"doc_id": "d1", "text": "..."}'
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON ({exc.msg})", path=path, line=number, fix="one JSON object per line") from None
    if not isinstance(record, dict):
        raise DataError(f"expected a JSON object, got a {type(record).__name__}", path=path, line=number, fix=example)
    key = next((k for k in ("doc_id", "docno", "id", "_id") if k in record), None)
    if key is None or "text" not in record:
        raise DataError(
            "JSON record needs an id ('doc_id', 'docno' or 'id') and 'text'", path=path, line=number, fix=example
        )
    ident = record[key]
    if isinstance(ident, bool) or not isinstance(ident, (str, int)):
        raise DataError(
            f"'{key}' is {json.dumps(ident)}: expected a string (or an integer)", path=path, line=number, fix=example
        )
    for field in ("text", "title"):
        if field in record and not isinstance(record[field], str):
            raise DataError(
                f"'{field}' is {json.dumps(record[field])[:40]}: expected a string", path=path, line=number, fix=example
            )
    return str(ident).strip(), (record.get("title", "") + " " + record["text"]).strip()


def load_trec_collection(
    topics: str | Path, qrels: str | Path, documents: str | Path, lang: str, name: str = "", missing_docs: str = "error"
) -> Collection:
    """A user's own collection from the three TREC-style files.

    Qrels naming a document absent from ``documents`` are an error (a judged document that cannot be
    retrieved caps every score silently); ``missing_docs="warn"`` drops those judgements instead and
    says how many (a collection sampled from a larger judged one)."""
    queries, rels = read_topics(topics), read_qrels(qrels)
    unknown = sorted(set(rels) - set(queries))
    if unknown:
        raise DataError(
            f"qrels name {len(unknown)} topics not in the topics file (e.g. {unknown[0]!r})",
            path=qrels,
            fix="use the same query ids in topics and qrels",
        )
    docs = read_documents(documents)
    absent = [(q, d) for q, judged in rels.items() for d in judged if d not in docs]
    if absent and missing_docs != "warn":
        raise DataError(
            f"qrels judge {len(absent)} documents not in {documents} (e.g. query {absent[0][0]!r}, document "
            f"{absent[0][1]!r})",
            path=qrels,
            fix="add the documents, remove those judgements, or pass --missing-docs warn to drop them",
        )
    if absent:
        warnings.warn(f"{qrels}: {len(absent)} judgements name documents not in {documents}: dropped", stacklevel=2)
        rels = {q: kept for q, judged in rels.items() if (kept := {d: r for d, r in judged.items() if d in docs})}
    return Collection(name or Path(documents).stem, lang, queries, docs, rels)


def load_ir_datasets(dataset_id: str, lang: str, doc_field: str | None, query_field: str = "text") -> Collection:
    """A collection from ``ir_datasets`` (e.g. ``wikiclir/sw``; its own download and cache rules apply).

    ``doc_field`` names the document field(s) holding the text, e.g. ``text``, ``body`` or
    ``title,text`` (joined with a space): datasets name it differently, and a wrong guess would
    silently score empty documents, so it is required and checked against the dataset's document
    type (``docs_cls()._fields``); so is ``query_field``.
    """
    try:
        import ir_datasets
    except ImportError as exc:
        raise DataError(
            "the irds task needs the ir_datasets package", fix="pip install 'optical_lab[ir_datasets]'"
        ) from exc
    try:
        ds = ir_datasets.load(dataset_id)
    except KeyError as exc:
        raise DataError(
            f"ir_datasets has no dataset {dataset_id!r}", fix="see https://ir-datasets.com for ids"
        ) from exc
    missing = [
        part
        for part, has in (("documents", ds.has_docs()), ("queries", ds.has_queries()), ("qrels", ds.has_qrels()))
        if not has
    ]
    if missing:
        raise DataError(
            f"ir_datasets {dataset_id} has no {', '.join(missing)}",
            fix="choose a dataset id with documents, queries and qrels (e.g. a test split)",
        )
    doc_fields = _fields(ds.docs_cls(), doc_field, dataset_id, "document", "--doc-field")
    query_fields = _fields(ds.queries_cls(), query_field, dataset_id, "query", "--query-field")
    queries = {q.query_id: _text(q, query_fields, dataset_id, "--query-field") for q in ds.queries_iter()}
    documents = {d.doc_id: _text(d, doc_fields, dataset_id, "--doc-field") for d in ds.docs_iter()}
    qrels: Qrels = {}
    for q in ds.qrels_iter():
        qrels.setdefault(q.query_id, {})[q.doc_id] = q.relevance
    return Collection(dataset_id, lang, queries, documents, qrels)


def _fields(record_type, wanted: str | None, dataset_id: str, kind: str, option: str) -> list[str]:
    """The comma-separated field names ``wanted``, each checked to be a field of ``record_type``."""
    fields = [f for f in getattr(record_type, "_fields", ()) if not f.endswith("_id")]
    names = [f.strip() for f in (wanted or "").split(",") if f.strip()]
    unknown = [f for f in names if f not in fields]
    if not names or unknown:
        problem = f"{kind} field {', '.join(unknown)} is not" if unknown else f"no {kind} text field named"
        raise DataError(
            f"ir_datasets {dataset_id}: {problem} among its {kind} fields ({', '.join(fields)})",
            fix=f"name it: {option} {fields[-1] if fields else 'text'}",
        )
    return names


def _text(record, fields: list[str], dataset_id: str, option: str) -> str:
    """The named fields of one record joined with a space; a field that holds no text is refused."""
    values = [getattr(record, f) for f in fields]
    wrong = [f for f, v in zip(fields, values) if not isinstance(v, str)]
    if wrong:
        kind = type(values[fields.index(wrong[0])]).__name__
        raise DataError(
            f"ir_datasets {dataset_id}: field {wrong[0]} holds {kind}, not text", fix=f"name a text field with {option}"
        )
    return " ".join(values).strip()


def write_topics(topics: Mapping[str, str], path: str | Path) -> None:
    """``qid<TAB>text`` per line, written atomically (a link at ``path`` is replaced, never written through)."""
    write_text("".join(f"{q}\t{t}\n" for q, t in topics.items()), path)


def qrels_text(qrels: Qrels) -> str:
    """Qrels in the TREC format: ``qid 0 docid relevance`` per line."""
    return "".join(f"{q} 0 {d} {r}\n" for q, rel in qrels.items() for d, r in rel.items())


def write_qrels(qrels: Qrels, path: str | Path) -> None:
    """:func:`qrels_text`, written atomically."""
    write_text(qrels_text(qrels), path)


def run_text(run: Run, tag: str = "optical_lab") -> str:
    """A run in the 6-column TREC format, each query's documents by descending score (ties by id)."""
    lines: list[str] = []
    for qid, scores in run.items():
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        lines.extend(f"{qid} Q0 {doc} {rank} {score:.6f} {tag}\n" for rank, (doc, score) in enumerate(ranked, start=1))
    return "".join(lines)


def write_run(run: Run, path: str | Path, tag: str = "optical_lab") -> None:
    """:func:`run_text`, written atomically."""
    write_text(run_text(run, tag), path)
