"""MAFAND-MT (Adelani et al., NAACL 2022): English <-> African-language news bitext
(train/dev/test). License CC BY-NC 4.0.

The pairs are the ``en-LANG`` folders the data directory holds; the five upstream pairs the
project fetches have pinned training-set line counts, checked on every load.
"""
from __future__ import annotations

from pathlib import Path

from .bitext import Bitext
from .errors import DataError
from .languages import canonical_code, known_languages
from .paths import data_dir
from .text_files import read_parallel

MAFAND_LANGS = ("hau", "ibo", "swa", "yor", "zul")  # the pairs `data fetch` downloads
MAFAND_TRAIN_LINES = {"hau": 3098, "ibo": 6998, "swa": 30782, "yor": 6644, "zul": 3500}
SPLITS = ("train", "dev", "test")


def mafand_langs(root: Path | None = None) -> list[str]:
    """Canonical codes of the ``en-LANG`` pairs in the data folder ``root`` (default: the one in use)."""
    root = root or data_dir("mafand-mt")
    return sorted(code for code, entry in known_languages(root).items()
                  if "mafand-mt" in entry.datasets and code != "eng")


def mafand_files(lang: str, splits: tuple[str, ...] = ("train", "dev"), root: Path | None = None) -> list[Path]:
    """The files :func:`load_mafand` reads for ``splits`` (recorded with a result's provenance)."""
    folder_root = root or data_dir("mafand-mt") / "mafand-mt"
    lang = canonical_code(lang)
    raw = known_languages(folder_root.parent)[lang].datasets["mafand-mt"]
    return [folder_root / f"en-{raw}" / f"{split}.{side}" for split in splits for side in ("en", raw)]


def load_mafand(lang: str, split: str = "train", root: Path | None = None) -> Bitext:
    """One split of the ``en-LANG`` pair; ``root`` is the ``mafand-mt`` folder (default: the data directory's)."""
    folder_root = root or data_dir("mafand-mt") / "mafand-mt"
    lang = canonical_code(lang)
    entry = known_languages(folder_root.parent).get(lang)
    if entry is None or "mafand-mt" not in entry.datasets or lang == "eng":
        held = ", ".join(mafand_langs(folder_root.parent)) or "none"
        raise DataError(f"MAFAND-MT has no en-{lang} pair", path=folder_root,
                        fix=f"use one of {held}, or NTREX bitext")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}", fix=f"use one of {', '.join(SPLITS)}")
    raw = entry.datasets["mafand-mt"]
    folder = folder_root / f"en-{raw}"
    expected = MAFAND_TRAIN_LINES.get(lang) if split == "train" else None
    english, foreign = read_parallel(folder / f"{split}.en", folder / f"{split}.{raw}", expected=expected)
    return Bitext(english, foreign, lang, source=f"mafand-mt/{split}")
