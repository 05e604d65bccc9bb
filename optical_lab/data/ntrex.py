"""NTREX-128 (Federmann et al., 2022): 1,997 English news sentences in 123 documents, with
human translations into 128 languages, all line-aligned. License CC BY-SA 4.0."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .bitext import Bitext
from .errors import DataError
from .languages import normalize_lang
from .paths import data_dir
from .text_files import read_lines

NTREX_LINES = 1997
NTREX_DOCUMENTS = 123


@dataclass
class NtrexCorpus:
    """English source, one target language, and the document id of every line."""

    lang: str
    english: list[str]
    target: list[str]
    doc_ids: list[str]

    def documents(self) -> list[str]:
        """Document ids in first-appearance order."""
        return list(dict.fromkeys(self.doc_ids))

    def bitext(self) -> Bitext:
        return Bitext(self.english, self.target, self.lang, self.doc_ids, source="ntrex-128")


def ntrex_file(lang: str, root: Path | None = None) -> Path:
    root = root or data_dir("ntrex-128") / "ntrex-128"
    return root / ("newstest2019-src.eng.txt" if lang == "eng" else f"newstest2019-ref.{lang}.txt")


def load_doc_ids(root: Path | None = None) -> list[str]:
    root = root or data_dir("ntrex-128") / "ntrex-128"
    path = root / "DOCUMENT_IDS.tsv"
    ids = [line.split("\t")[0].strip() for line in read_lines(path, expected=NTREX_LINES)]
    n_docs = len(set(ids))
    if n_docs != NTREX_DOCUMENTS:
        raise DataError(f"{n_docs} distinct document ids, expected {NTREX_DOCUMENTS}", path=path,
                        fix="re-fetch DOCUMENT_IDS.tsv from NTREX commit 8561f6a")
    return ids


def load_ntrex(lang: str, root: Path | None = None) -> NtrexCorpus:
    """English + ``lang`` (``eng`` gives English on both sides, the monolingual ceiling)."""
    lang = normalize_lang(lang)
    english = read_lines(ntrex_file("eng", root), expected=NTREX_LINES)
    path = ntrex_file(lang, root)
    if not path.exists():
        raise DataError(f"no NTREX translation for {lang!r}", path=path,
                        fix="NTREX-128 has it upstream: run `optical-lab data fetch --langs " + lang + "`")
    target = english if lang == "eng" else read_lines(path, expected=NTREX_LINES)
    return NtrexCorpus(lang, english, target, load_doc_ids(root))
