"""MAFAND-MT (Adelani et al., NAACL 2022): English <-> African-language news bitext
(train/dev/test). License CC BY-NC 4.0.

The pairs are the ``en-LANG`` folders the data directory holds (upstream also writes ``en_LANG``:
Luo is ``en_luo``; :func:`optical_lab.data.languages.mafand_pair_folders` finds both), so a pair a
user adds is used like the fetched ones. The upstream pairs `data fetch` downloads
(:data:`MAFAND_PAIRS`) have pinned training-set line counts, checked on every load.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Iterable

from .bitext import Bitext
from .errors import DataError
from .languages import canonical_code, known_languages, mafand_pair_folders
from .paths import data_dir
from .text_files import read_parallel

# The upstream folders `data fetch` downloads (lafand-mt d441f8b data/text_files/); nothing else reads this list:
# which languages have a pair is what the data folder holds (mafand_langs).
MAFAND_PAIRS = ("en-hau", "en-ibo", "en-swa", "en-yor", "en-zul", "en-lug", "en-twi", "en_luo")
MAFAND_LANGS = tuple(pair[3:] for pair in MAFAND_PAIRS)
MAFAND_TRAIN_LINES = {
    "hau": 3098,
    "ibo": 6998,
    "swa": 30782,
    "yor": 6644,
    "zul": 3500,
    "lug": 4075,
    "twi": 3337,
    "luo": 4262,
}
SPLITS = ("train", "dev", "test")


def mafand_langs(root: Path | None = None) -> list[str]:
    """Canonical codes of the ``en-LANG`` pairs in the data folder ``root`` (default: the one in use)."""
    root = root or data_dir("mafand-mt")
    return sorted(
        code for code, entry in known_languages(root).items() if "mafand-mt" in entry.datasets and code != "eng"
    )


def has_mafand(lang: str, root: Path | None = None) -> bool:
    """Whether the data folder ``root`` (default: the one in use) holds a MAFAND-MT pair for ``lang``."""
    try:
        return canonical_code(lang) in mafand_langs(root)
    except DataError:  # no data folder with mafand-mt/
        return False


def _pair(lang: str, folder_root: Path) -> tuple[str, Path]:
    """(the pair's spelling of ``lang``, its folder), or a clear error naming the pairs the folder holds."""
    lang = canonical_code(lang)
    entry = known_languages(folder_root.parent).get(lang)
    if entry is None or "mafand-mt" not in entry.datasets or lang == "eng":
        held = ", ".join(mafand_langs(folder_root.parent)) or "none"
        raise DataError(
            f"MAFAND-MT has no en-{lang} pair",
            path=folder_root,
            fix=f"use --bitext ntrex or a bitext file for {lang}, or a language with a pair: {held}; "
            f"or add the pair's folder (en-{lang}/train.en, train.{lang}, dev.*, test.*)",
        )
    raw = entry.datasets["mafand-mt"]
    return raw, mafand_pair_folders(folder_root)[raw]


def mafand_files(lang: str, splits: tuple[str, ...] = ("train", "dev"), root: Path | None = None) -> list[Path]:
    """The files :func:`load_mafand` reads for ``splits`` (recorded with a result's provenance)."""
    raw, folder = _pair(lang, root or data_dir("mafand-mt") / "mafand-mt")
    return [folder / f"{split}.{side}" for split in splits for side in ("en", raw)]


def load_mafand(lang: str, split: str = "train", root: Path | None = None) -> Bitext:
    """One split of the ``en-LANG`` pair; ``root`` is the ``mafand-mt`` folder (default: the data directory's)."""
    raw, folder = _pair(lang, root or data_dir("mafand-mt") / "mafand-mt")
    lang = canonical_code(lang)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}", fix=f"use one of {', '.join(SPLITS)}")
    expected = MAFAND_TRAIN_LINES.get(lang) if split == "train" else None
    english, foreign = read_parallel(folder / f"{split}.en", folder / f"{split}.{raw}", expected=expected)
    return Bitext(english, foreign, lang, source=f"mafand-mt/{split}")


def has_split(lang: str, split: str, root: Path | None = None) -> bool:
    """Whether the ``en-LANG`` pair in the ``mafand-mt`` folder ``root`` (default: the data directory's) has both
    files of ``split``."""
    return all(path.is_file() for path in mafand_files(lang, (split,), root))


def mafand_family(root: Path | None = None) -> list[str]:
    """Protocol v3's language family, discovered from the data folder ``root`` (default: the one in use): every
    language with a MAFAND-MT ``train`` split and FLORES (SIB-200) coverage, in code order. A pair a user adds to
    the data folder joins it; no list of languages is written in code."""
    root = root or data_dir("mafand-mt")
    folders = mafand_pair_folders(root / "mafand-mt")
    return sorted(
        code
        for code, entry in known_languages(root).items()
        if code != "eng"
        and "sib-200" in entry.datasets
        and (raw := entry.datasets.get("mafand-mt")) is not None
        and all((folders[raw] / f"train.{side}").is_file() for side in ("en", raw))
    )


def dev_distractor_pool(lang: str, n: int, exclude: Iterable[str], root: Path | None = None) -> list[str]:
    """``n`` English distractors for dev selection in ``lang`` (protocol v3): the MAFAND-MT ``dev`` English of the
    *other* family languages (:func:`mafand_family`; a pair without a dev split, e.g. a user's train-only pair,
    contributes none), deduplicated (first occurrence, languages in code order),
    without any sentence of ``exclude`` (the language's own dev sample English), ``n`` of them drawn with seed 0
    and kept in pool order. Deterministic for a data folder; a :class:`DataError` when it holds fewer than ``n``."""
    lang = canonical_code(lang)
    excluded = set(exclude)
    folder = (root or data_dir("mafand-mt")) / "mafand-mt"
    others = [code for code in mafand_family(root) if code != lang and has_split(code, "dev", folder)]
    texts = dict.fromkeys(t for code in others for t in load_mafand(code, "dev", root=folder).english)
    pool = [t for t in texts if t not in excluded]
    if len(pool) < n:
        raise DataError(
            f"{len(pool)} distinct MAFAND-MT dev English sentences outside {lang}'s dev sample "
            f"({', '.join(others) or 'no other family language'}), {n} distractors asked for",
            path=folder,
            fix="lower dev_distractors (TrainConfig; 0 = no distractors) or add MAFAND-MT pairs to the data folder",
        )
    return [pool[i] for i in sorted(random.Random(0).sample(range(len(pool)), n))]
