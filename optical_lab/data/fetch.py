"""Download the public data into the user cache (for machines without ``../shared/data``).

Files come from the upstream GitHub repositories at the commits the data mirror names, and are
checked after download (line counts for NTREX and MAFAND-MT train, JSON for QALD). A download is
written to a temporary file first and renamed, so an interrupted fetch never leaves a half file.
"""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from .errors import DataError
from .mafand import MAFAND_LANGS, MAFAND_TRAIN_LINES, SPLITS
from .ntrex import NTREX_LINES
from .paths import cache_dir

NTREX_URL = "https://raw.githubusercontent.com/MicrosoftTranslator/NTREX/8561f6a/NTREX-128/{file}"
NTREX_TOP_URL = "https://raw.githubusercontent.com/MicrosoftTranslator/NTREX/8561f6a/{file}"
MAFAND_URL = "https://raw.githubusercontent.com/masakhane-io/lafand-mt/d441f8b/data/text_files/en-{lang}/{split}.{side}"
QALD_URL = "https://raw.githubusercontent.com/KGQA/QALD_9_plus/5b116c9/data/qald_9_plus_test_dbpedia.json"
DEFAULT_NTREX_LANGS = ("fra", "deu", "rus", "swa", "hau", "yor", "som", "zul", "amh", "ibo", "fil", "ukr", "lit", "bel", "bak", "hye")


def planned_downloads(langs: tuple[str, ...] = DEFAULT_NTREX_LANGS) -> list[tuple[str, str, int | None]]:
    """(url, relative destination, expected line count or None) for every file."""
    plan = [(NTREX_URL.format(file="newstest2019-src.eng.txt"), "ntrex-128/newstest2019-src.eng.txt", NTREX_LINES),
            (NTREX_TOP_URL.format(file="DOCUMENT_IDS.tsv"), "ntrex-128/DOCUMENT_IDS.tsv", NTREX_LINES),
            (NTREX_TOP_URL.format(file="LANGUAGES.tsv"), "ntrex-128/LANGUAGES.tsv", None)]
    for lang in langs:
        plan.append((NTREX_URL.format(file=f"newstest2019-ref.{lang}.txt"), f"ntrex-128/newstest2019-ref.{lang}.txt", NTREX_LINES))
    for lang in MAFAND_LANGS:
        for split in SPLITS:
            for side in ("en", lang):
                expected = MAFAND_TRAIN_LINES[lang] if split == "train" else None
                plan.append((MAFAND_URL.format(lang=lang, split=split, side=side), f"mafand-mt/en-{lang}/{split}.{side}", expected))
    plan.append((QALD_URL, "qald-9-plus/qald_9_plus_test_dbpedia.json", None))
    return plan


def _check(path: Path, expected_lines: int | None) -> None:
    if path.suffix == ".json":
        json.loads(path.read_text(encoding="utf-8"))
    elif expected_lines is not None:
        n = path.read_bytes().count(b"\n")
        if n != expected_lines:
            raise DataError(f"downloaded file has {n} lines, expected {expected_lines}", path=path,
                            fix="the upstream changed or the download was cut; retry with --force")


def fetch(dest: Path | None = None, langs: tuple[str, ...] = DEFAULT_NTREX_LANGS, force: bool = False) -> Path:
    """Download every planned file missing from ``dest`` (default: the user cache) and verify it."""
    dest = dest or cache_dir() / "data"
    for url, relative, expected in tqdm(planned_downloads(langs), desc="fetch data"):
        target = dest / relative
        if target.exists() and not force:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + ".part")
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                partial.write_bytes(response.read())
        except OSError as exc:
            raise DataError(f"could not download {url} ({exc})",
                            fix="check the internet connection, or copy the data folder by hand and set OPTICAL_LAB_DATA") from exc
        _check(partial, expected)
        partial.replace(target)
    return dest
