"""SIB-200 (Adelani et al., EACL 2024): 1,004 FLORES-200 sentences per language with a topic label.

Layout (upstream ``dadelani/sib-200`` at commit 593cea8, mirrored in ``<data>/sib-200``)::

    sib-200/data/annotated/LANG/{train,dev,test}.tsv    header ``index_id<TAB>category<TAB>text``
    sib-200/data/annotated/LANG/labels.txt              the 7 topics, one per line (absent upstream for a few
                                                        languages, e.g. bem/luo/twi: English's are used)

``LANG`` is a FLORES-200 code (``swh_Latn``); :func:`load_sib` accepts any spelling
(``swa``, ``sw``). Every language has the same ``index_id`` s in the same splits with the same topic
(train 701 / dev 99 / test 204), so the files are parallel *by id* (not by line order): this loader
checks that against English (``eng_Latn``), because sentence retrieval pairs sentences by id and a
topic classifier fitted on English labels is only meaningful when the labels agree. Annotations are
Apache-2.0, the sentences (FLORES-200) CC BY-SA 4.0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import DataError
from .languages import canonical_code, known_languages
from .paths import data_dir
from .text_files import read_lines

SIB_SPLITS = ("train", "dev", "test")
SIB_SENTENCES = 1004  # per language, all splits together (FLORES-200 dev + devtest sentences SIB annotated)
SIB_COLUMNS = ("index_id", "category", "text")
SIB_ENGLISH = "eng_Latn"


@dataclass
class SibSplit:
    """One split of one language, row order as in the file."""

    index_ids: list[str]
    categories: list[str]
    texts: list[str]

    def __len__(self) -> int:
        return len(self.index_ids)

    def text_by_id(self) -> dict[str, str]:
        return dict(zip(self.index_ids, self.texts))


@dataclass
class SibLanguage:
    """All splits of one language; ``lang`` canonical (``swa``), ``code`` as the folder is named (``swh_Latn``)."""

    lang: str
    code: str
    labels: list[str]
    splits: dict[str, SibSplit]

    def all_ids(self) -> list[str]:
        return [i for split in SIB_SPLITS for i in self.splits[split].index_ids]


def sib_root(root: Path | None = None) -> Path:
    """``<data>/sib-200/data/annotated`` (``root`` is the data folder; default: the one in use)."""
    return (root or data_dir("sib-200")) / "sib-200" / "data" / "annotated"


def read_labels(path: Path) -> list[str]:
    labels = [line.strip() for line in read_lines(path)]
    if len(set(labels)) != len(labels):
        raise DataError("a topic is listed twice", path=path, fix="list each topic once, one per line")
    return labels


def read_sib_split(path: Path, labels: list[str]) -> SibSplit:
    """One ``index_id<TAB>category<TAB>text`` file, every row checked (the first problem is reported)."""
    lines = read_lines(path)
    header = lines[0].split("\t")
    if [h.strip() for h in header] != list(SIB_COLUMNS):
        missing = [c for c in SIB_COLUMNS if c not in [h.strip() for h in header]]
        problem = f"header is {lines[0]!r}" + (f" (no {', '.join(missing)} column)" if missing else "")
        raise DataError(
            problem + f", expected {chr(9).join(SIB_COLUMNS)!r}",
            path=path,
            line=1,
            fix="the first line must be the header index_id<TAB>category<TAB>text (the SIB-200 layout)",
        )
    ids: list[str] = []
    categories: list[str] = []
    texts: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines[1:], start=2):
        parts = line.split("\t")
        if len(parts) != len(SIB_COLUMNS):
            raise DataError(
                f"{len(parts)} tab-separated fields, expected {len(SIB_COLUMNS)}",
                path=path,
                line=number,
                fix="one row per sentence: index_id<TAB>category<TAB>text, no tab inside the text",
            )
        index_id, category, text = (p.strip() for p in parts)
        if not index_id:
            raise DataError("empty index_id", path=path, line=number, fix="give every row the FLORES-200 index_id")
        if index_id in seen:
            raise DataError(
                f"index_id {index_id} repeats line {seen[index_id]}",
                path=path,
                line=number,
                fix="each sentence appears once per split; remove the duplicate row",
            )
        if category not in labels:
            raise DataError(
                f"unknown topic {category!r}",
                path=path,
                line=number,
                fix=f"use one of the topics in labels.txt: {', '.join(labels)}",
            )
        if not text:
            raise DataError("empty text", path=path, line=number, fix="every row needs the sentence text")
        seen[index_id] = number
        ids.append(index_id)
        categories.append(category)
        texts.append(text)
    return SibSplit(ids, categories, texts)


def _folder_code(lang: str, root: Path | None) -> tuple[str, str]:
    """(canonical code, folder name) of ``lang`` in the SIB-200 folder, or a clear error."""
    canonical = canonical_code(lang)
    entry = known_languages(root or data_dir("sib-200")).get(canonical)
    if entry is None or "sib-200" not in entry.datasets:
        raise DataError(
            f"SIB-200 has no folder for {lang!r} in {sib_root(root)}",
            fix="add the language from upstream dadelani/sib-200 (data/annotated/LANG_Script/, "
            "205 language variants) in the same layout; `optical-lab data langs` lists what is here",
        )
    return canonical, entry.datasets["sib-200"]


def labels_file(code: str, root: Path | None = None) -> Path:
    """A folder's ``labels.txt``; upstream ships none for some languages (bem, luo, twi): those use English's."""
    path = sib_root(root) / code / "labels.txt"
    return path if path.is_file() or code == SIB_ENGLISH else sib_root(root) / SIB_ENGLISH / "labels.txt"


def sib_files(code: str, root: Path | None = None) -> list[Path]:
    """The files :func:`load_sib` reads for the folder ``code``: its topic labels and its split TSVs."""
    folder = sib_root(root) / code
    return [labels_file(code, root), *(folder / f"{split}.tsv" for split in SIB_SPLITS)]


def _load_one(code: str, canonical: str, root: Path | None) -> SibLanguage:
    folder = sib_root(root) / code
    labels = read_labels(labels_file(code, root))
    splits = {split: read_sib_split(folder / f"{split}.tsv", labels) for split in SIB_SPLITS}
    seen: dict[str, str] = {}
    for split in SIB_SPLITS:
        for index_id in splits[split].index_ids:
            if index_id in seen:
                raise DataError(
                    f"index_id {index_id} is in both {seen[index_id]}.tsv and {split}.tsv",
                    path=folder,
                    fix="each sentence belongs to one split",
                )
            seen[index_id] = split
    return SibLanguage(canonical, code, labels, splits)


def load_sib(lang: str, root: Path | None = None) -> SibLanguage:
    """Train/dev/test of ``lang``, checked against English: same ids in each split, same topics, 1,004 in all."""
    canonical, code = _folder_code(lang, root)
    language = _load_one(code, canonical, root)
    english = language if code == SIB_ENGLISH else _load_one(SIB_ENGLISH, "eng", root)
    if len(english.all_ids()) != SIB_SENTENCES:
        raise DataError(
            f"{len(english.all_ids())} sentences over train/dev/test, expected {SIB_SENTENCES}",
            path=sib_root(root) / SIB_ENGLISH,
            fix="re-fetch SIB-200 (`optical-lab data fetch --force`)",
        )
    if set(language.labels) != set(english.labels):
        raise DataError(
            f"topics {language.labels} differ from English's {english.labels}",
            path=sib_root(root) / code / "labels.txt",
            fix="labels.txt must list the same 7 topics in every language",
        )
    for split in SIB_SPLITS:
        ours, theirs = language.splits[split], english.splits[split]
        topic_of = dict(zip(theirs.index_ids, theirs.categories))
        path = sib_root(root) / code / f"{split}.tsv"
        for number, (index_id, category) in enumerate(zip(ours.index_ids, ours.categories), start=2):
            if index_id not in topic_of:
                raise DataError(
                    f"index_id {index_id} is not in English {split}.tsv",
                    path=path,
                    line=number,
                    fix="every language holds the same FLORES-200 sentences as eng_Latn in each split",
                )
            if category != topic_of[index_id]:
                raise DataError(
                    f"index_id {index_id} has topic {category!r}, English has {topic_of[index_id]!r}",
                    path=path,
                    line=number,
                    fix="topics are per sentence and identical across languages",
                )
        if len(ours) != len(theirs):
            missing = sorted(set(theirs.index_ids) - set(ours.index_ids), key=lambda i: (len(i), i))
            raise DataError(
                f"{len(ours)} rows, English has {len(theirs)} (missing e.g. index_id {missing[0]})",
                path=path,
                fix="every language holds the same FLORES-200 sentences as eng_Latn in each split",
            )
    return language


def sib_languages(root: Path | None = None) -> list[str]:
    """Canonical codes of the languages the SIB-200 folder holds."""
    return sorted(
        code for code, entry in known_languages(root or data_dir("sib-200")).items() if "sib-200" in entry.datasets
    )
