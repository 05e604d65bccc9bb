"""AfriQA (Ogundepo et al., Findings of EMNLP 2023): questions written natively in an African language,
with a human English translation and, for many, the gold English Wikipedia passage. License CC BY 4.0.

Layout (upstream ``masakhane-io/afriqa`` at commit 5c29933, mirrored in ``<data>/afriqa``)::

    afriqa/data/queries/LANG/queries.afriqa.LANG.en.SPLIT.json                 one JSON object per line:
        id, question (native), translated_question (English), split, ...
    afriqa/data/gold_passages/LANG/gold_span_passages.afriqa.LANG.en.SPLIT.json one JSON object per line:
        id (the question's id in the same split), context (the English passage), title, ...

``LANG`` is the folder name (ISO 639-3: ``hau``, ``twi``, ``bem``); ``SPLIT`` is train/dev/test, and
not every split exists for every language (swa has gold passages for test only, yor none for dev):
:func:`load_afriqa` reads the splits whose files are there.

**What is refused** (a :class:`DataError` naming file, line and fix): a line that is not a JSON
object, a missing field, a text field that is neither a string nor null, a record whose ``split``
disagrees with its file, a repeated id, a gold passage whose id has no question in the same split.

**What is skipped, and counted** (``AfriqaLanguage.skipped``, one ``file, line N: why`` each): the
upstream's own gaps, which are no format error: a question whose native or English text is empty
or null (twi dev line 109), and a gold record whose ``context`` is null (the annotators found no
passage: 13 such records over the mirror). The queries file is authoritative for a question's text
(a gold file repeats it, not always identically: swa test id 101).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DataError
from .languages import canonical_code, known_languages
from .paths import data_dir
from .text_files import read_lines

AFRIQA_SPLITS = ("train", "dev", "test")
QUESTION_FIELDS = ("id", "question", "translated_question", "split")
PASSAGE_FIELDS = ("id", "context", "title")


@dataclass(frozen=True)
class AfriqaQuestion:
    """One question: ``qid`` = ``SPLIT-ID`` (unique within its language)."""

    qid: str
    split: str
    question: str  # native
    english: str  # the human English translation


@dataclass
class AfriqaLanguage:
    """One language's questions (every split present) and the gold passages by question id."""

    lang: str
    folder: str
    questions: list[AfriqaQuestion]
    passages: dict[str, tuple[str, str]]  # qid -> (title, context)
    skipped: list[str] = field(default_factory=list)  # "file, line N: why", the upstream's gaps

    def in_splits(self, splits: tuple[str, ...]) -> list[AfriqaQuestion]:
        return [q for q in self.questions if q.split in splits]


def afriqa_root(root: Path | None = None) -> Path:
    """``<data>/afriqa/data`` of the data folder ``root`` (default: the one in use)."""
    return (root or data_dir("afriqa")) / "afriqa" / "data"


def query_file(folder: str, split: str, root: Path | None = None) -> Path:
    return afriqa_root(root) / "queries" / folder / f"queries.afriqa.{folder}.en.{split}.json"


def passage_file(folder: str, split: str, root: Path | None = None) -> Path:
    return afriqa_root(root) / "gold_passages" / folder / f"gold_span_passages.afriqa.{folder}.en.{split}.json"


def afriqa_languages(root: Path | None = None) -> list[str]:
    """Canonical codes of the languages with an AfriQA query folder."""
    known = known_languages(root or data_dir("afriqa"))
    return sorted(code for code, entry in known.items() if "afriqa" in entry.datasets)


def afriqa_folder(lang: str, root: Path | None = None) -> str:
    """The folder name of ``lang`` (``sw`` -> ``swa``), or a clear error."""
    entry = known_languages(root or data_dir("afriqa")).get(canonical_code(lang))
    if entry is None or "afriqa" not in entry.datasets:
        held = ", ".join(afriqa_languages(root)) or "none"
        raise DataError(
            f"AfriQA has no questions for {lang!r} (it has {held})",
            path=afriqa_root(root) / "queries",
            fix="add queries/LANG/queries.afriqa.LANG.en.SPLIT.json (upstream masakhane-io/afriqa layout)",
        )
    return entry.datasets["afriqa"]


def afriqa_files(lang: str, root: Path | None = None) -> list[Path]:
    """The files :func:`load_afriqa` reads for ``lang`` (every split whose file exists)."""
    folder = afriqa_folder(lang, root)
    files = [make(folder, split, root) for make in (query_file, passage_file) for split in AFRIQA_SPLITS]
    return [f for f in files if f.is_file()]


def read_jsonl(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) per line of a JSON Lines file; every object must have ``required``."""
    records = []
    for number, line in enumerate(read_lines(path), start=1):
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise DataError(
                f"not valid JSON ({exc})",
                path=path,
                line=number,
                fix="one JSON object per line (JSON Lines); re-fetch the file with `optical-lab data fetch --force`",
            ) from None
        if not isinstance(record, dict):
            raise DataError(
                f"a JSON {type(record).__name__}, expected an object",
                path=path,
                line=number,
                fix="one JSON object per line",
            )
        missing = [key for key in required if key not in record]
        if missing:
            raise DataError(
                f"no field {', '.join(missing)}",
                path=path,
                line=number,
                fix=f"every record needs {', '.join(required)}",
            )
        records.append((number, record))
    return records


def text_field(record: dict[str, Any], key: str, path: Path, line: int) -> str:
    """A text field: a string (stripped), or "" for the upstream's empty marks (null, NaN)."""
    value = record[key]
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if not isinstance(value, str):
        raise DataError(
            f"field {key!r} is a {type(value).__name__} ({value!r}), expected text",
            path=path,
            line=line,
            fix=f"{key} must be a JSON string",
        )
    return value.strip()


def record_id(record: dict[str, Any], path: Path, line: int) -> str:
    value = record["id"]
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip():
        raise DataError(
            f"id {value!r} is not an integer or a non-empty string",
            path=path,
            line=line,
            fix="give every record the question's id",
        )
    return str(value).strip()


def _records_once(path: Path, fields, fix: str):
    """(line, id, record) of each JSON-lines record of ``path``; an id seen twice is a :class:`DataError`."""
    seen: dict[str, int] = {}
    for line, record in read_jsonl(path, fields):
        qid = record_id(record, path, line)
        if qid in seen:
            raise DataError(f"id {qid} repeats line {seen[qid]}", path=path, line=line, fix=fix)
        seen[qid] = line
        yield line, qid, record


def _read_questions(path: Path, split: str, skipped: list[str]) -> tuple[list[AfriqaQuestion], set[str]]:
    """(the usable questions, every id of the file, usable or not)."""
    questions: list[AfriqaQuestion] = []
    seen: set[str] = set()
    for line, qid, record in _records_once(path, QUESTION_FIELDS, fix="each question appears once"):
        seen.add(qid)
        if record["split"] != split:
            raise DataError(
                f"split {record['split']!r} in the {split} file",
                path=path,
                line=line,
                fix=f"move the record to the {record['split']} file or correct its split field",
            )
        native, english = (text_field(record, key, path, line) for key in ("question", "translated_question"))
        if not native or not english:
            skipped.append(f"{path.name}, line {line}: empty {'question' if not native else 'translated_question'}")
            continue
        questions.append(AfriqaQuestion(f"{split}-{qid}", split, native, english))
    return questions, seen


def _read_passages(path: Path, split: str, ids: set[str], skipped: list[str]) -> dict[str, tuple[str, str]]:
    passages: dict[str, tuple[str, str]] = {}
    for line, qid, record in _records_once(path, PASSAGE_FIELDS, fix="one gold passage per question"):
        if qid not in ids:
            raise DataError(
                f"gold passage for question id {qid}, which the {split} queries file lacks",
                path=path,
                line=line,
                fix="a gold passage's id is its question's id in the same split",
            )
        context = text_field(record, "context", path, line)
        if not context:
            skipped.append(f"{path.name}, line {line}: no context (no gold passage)")
            continue
        passages[f"{split}-{qid}"] = (text_field(record, "title", path, line), context)
    return passages


def load_afriqa(lang: str, root: Path | None = None) -> AfriqaLanguage:
    """Every split of ``lang`` whose queries file exists, with the gold passages of the splits that have them."""
    folder = afriqa_folder(lang, root)
    questions: list[AfriqaQuestion] = []
    passages: dict[str, tuple[str, str]] = {}
    skipped: list[str] = []
    for split in AFRIQA_SPLITS:
        queries, gold = query_file(folder, split, root), passage_file(folder, split, root)
        if not queries.is_file():
            if gold.is_file():
                raise DataError(
                    f"gold passages for the {split} split but no questions",
                    path=gold,
                    fix=f"add {queries.name} beside it, or remove the gold file",
                )
            continue
        split_questions, ids = _read_questions(queries, split, skipped)
        questions += split_questions
        if gold.is_file():
            passages.update(_read_passages(gold, split, ids, skipped))
    if not questions:
        raise DataError(
            f"no question for {lang!r}",
            path=afriqa_root(root) / "queries" / folder,
            fix="the folder needs queries.afriqa.LANG.en.{train,dev,test}.json",
        )
    return AfriqaLanguage(canonical_code(lang), folder, questions, passages, skipped)


def passage_id(context: str) -> str:
    """A passage's id in the shared pool: a hash of its text (the same passage of two questions is one document)."""
    return "p" + hashlib.sha256(context.encode("utf-8")).hexdigest()[:16]
