"""MAFAND-MT (Adelani et al., NAACL 2022): English <-> African-language news bitext
(train/dev/test). License CC BY-NC 4.0."""
from __future__ import annotations

from pathlib import Path

from .bitext import Bitext
from .errors import DataError
from .languages import normalize_lang
from .paths import data_dir
from .text_files import read_parallel

MAFAND_LANGS = ("hau", "ibo", "swa", "yor", "zul")
MAFAND_TRAIN_LINES = {"hau": 3098, "ibo": 6998, "swa": 30782, "yor": 6644, "zul": 3500}
SPLITS = ("train", "dev", "test")


def mafand_files(lang: str, splits: tuple[str, ...] = ("train", "dev"), root: Path | None = None) -> list[Path]:
    """The files :func:`load_mafand` reads for ``splits`` (recorded with a result's provenance)."""
    lang = normalize_lang(lang)
    folder = (root or data_dir("mafand-mt") / "mafand-mt") / f"en-{lang}"
    return [folder / f"{split}.{side}" for split in splits for side in ("en", lang)]


def load_mafand(lang: str, split: str = "train", root: Path | None = None) -> Bitext:
    lang = normalize_lang(lang)
    if lang not in MAFAND_LANGS:
        raise DataError(f"MAFAND-MT has no en-{lang} pair", fix=f"use one of {', '.join(MAFAND_LANGS)}, or NTREX bitext")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}", fix=f"use one of {', '.join(SPLITS)}")
    folder = (root or data_dir("mafand-mt") / "mafand-mt") / f"en-{lang}"
    expected = MAFAND_TRAIN_LINES[lang] if split == "train" else None
    english, foreign = read_parallel(folder / f"{split}.en", folder / f"{split}.{lang}", expected=expected)
    return Bitext(english, foreign, lang, source=f"mafand-mt/{split}")
