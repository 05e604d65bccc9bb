"""NTREX-128 (Federmann et al., 2022): 1,997 English news sentences in 123 documents, with
human translations into 128 languages, all line-aligned. License CC BY-SA 4.0."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .bitext import Bitext
from .errors import DataError
from .languages import canonical_code, dataset_code, normalize_lang
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
    """The NTREX file of ``lang`` (any spelling): NTREX's own spelling of the code names the file
    (``aze`` -> ``newstest2019-ref.aze-Latn.txt``), found from the file names in the folder."""
    root = root or data_dir("ntrex-128") / "ntrex-128"
    lang = canonical_code(lang)
    if lang == "eng":
        return root / "newstest2019-src.eng.txt"
    raw = dataset_code(lang, "ntrex-128", root.parent) or lang
    return root / f"newstest2019-ref.{raw}.txt"


def load_doc_ids(root: Path | None = None) -> list[str]:
    root = root or data_dir("ntrex-128") / "ntrex-128"
    path = root / "DOCUMENT_IDS.tsv"
    ids = [line.split("\t")[0].strip() for line in read_lines(path, expected=NTREX_LINES)]
    n_docs = len(set(ids))
    if n_docs != NTREX_DOCUMENTS:
        raise DataError(
            f"{n_docs} distinct document ids, expected {NTREX_DOCUMENTS}",
            path=path,
            fix="re-fetch DOCUMENT_IDS.tsv from NTREX commit 8561f6a",
        )
    return ids


def load_ntrex(lang: str, root: Path | None = None) -> NtrexCorpus:
    """English + ``lang`` (``eng`` gives English on both sides, the monolingual ceiling)."""
    root = root or data_dir("ntrex-128") / "ntrex-128"
    lang = normalize_lang(lang, root.parent)
    english = read_lines(ntrex_file("eng", root), expected=NTREX_LINES)
    path = ntrex_file(lang, root)
    if not path.exists():
        raise DataError(
            f"no NTREX translation for {lang!r}",
            path=path,
            fix=f"NTREX-128 has 128 languages upstream: run `optical-lab data fetch --langs {lang}`, "
            "or add the file (one sentence per line, line-aligned with newstest2019-src.eng.txt)",
        )
    target = english if lang == "eng" else read_lines(path, expected=NTREX_LINES)
    return NtrexCorpus(lang, english, target, load_doc_ids(root))
