"""Download the public data into the user cache (for machines without ``../shared/data``).

Files come from the upstream GitHub repositories at the commits the data mirror names. Each file
is checked against its SHA-256 pin (:mod:`.pins`, computed from the byte-identical mirror with
:func:`compute_pins`), so a tampered file of the same length or a truncated download is refused,
not just a wrong line count. A download streams into a uniquely named ``*.part`` file beside the
target and is renamed over it only after the check passes; on any failure the ``.part`` file is
removed, so an interrupted fetch never leaves a half file, and every network error (refused
connection, HTTP error, timeout, dropped connection) becomes one clear :class:`DataError`.

A file already in the data folder is checked against its pin too, and downloaded again when it differs
(a damaged disk, an edit: a same-length change would pass every later line count); one without a pin
is kept as it is.

A file without a pin (an NTREX or SIB-200 language the mirror does not hold) is refused unless
``allow_unpinned=True`` (``--allow-unpinned``); it is then checked by line count and its SHA-256 is
printed so it can be pinned. ``pooch`` does the same job, but would add a dependency for ~40 lines
and make the offline tests patch ``requests``; plain ``urllib`` keeps one opener to replace in tests.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm

from . import sources
from .errors import DataError
from .languages import canonical_code
from .mafand import MAFAND_PAIRS, MAFAND_TRAIN_LINES, SPLITS
from .ntrex import NTREX_LINES
from .paths import cache_dir
from .pins import PINS
from .sib import SIB_SPLITS

NTREX_URL = "https://raw.githubusercontent.com/MicrosoftTranslator/NTREX/8561f6a/NTREX-128/{file}"
NTREX_TOP_URL = "https://raw.githubusercontent.com/MicrosoftTranslator/NTREX/8561f6a/{file}"
MAFAND_URL = "https://raw.githubusercontent.com/masakhane-io/lafand-mt/d441f8b/data/text_files/{pair}/{split}.{side}"
QALD_URL = "https://raw.githubusercontent.com/KGQA/QALD_9_plus/5b116c9/data/qald_9_plus_test_dbpedia.json"
SIB_URL = "https://raw.githubusercontent.com/dadelani/sib-200/593cea8/data/annotated/{lang}/{file}"
AFRIQA_URL = "https://raw.githubusercontent.com/masakhane-io/afriqa/5c29933/{file}"
DEFAULT_NTREX_LANGS = (
    "fra",
    "deu",
    "rus",
    "swa",
    "hau",
    "yor",
    "som",
    "zul",
    "amh",
    "ibo",
    "fil",
    "ukr",
    "lit",
    "bel",
    "bak",
    "hye",
)
DEFAULT_SIB_LANGS = (
    "eng_Latn",
    "swh_Latn",
    "hau_Latn",
    "yor_Latn",
    "som_Latn",
    "zul_Latn",
    "amh_Ethi",
    "ibo_Latn",
    "tgl_Latn",
    "fra_Latn",
    "deu_Latn",
    "rus_Cyrl",
    "ukr_Cyrl",
    "lit_Latn",
    "bel_Cyrl",
    "bak_Cyrl",
    "hye_Armn",
    "tir_Ethi",
    "lin_Latn",
    "lug_Latn",
    "wol_Latn",
    "ewe_Latn",
    "luo_Latn",
    "twi_Latn",
    "bem_Latn",
)
SIB_WITHOUT_LABELS = (
    "bem_Latn",
    "luo_Latn",
    "twi_Latn",
)  # upstream has no labels.txt there (the loader uses English's)
# AfriQA at 5c29933: queries for train/dev/test in every language; gold passages where upstream has them
AFRIQA_GOLD_SPLITS = {
    "hau": SPLITS,
    "ibo": SPLITS,
    "swa": ("test",),
    "yor": ("train", "test"),
    "zul": SPLITS,
    "twi": SPLITS,
    "bem": SPLITS,
}
SIB_LINES = {"train": 702, "dev": 100, "test": 205, "labels": 7}  # header line included
CHUNK = 1 << 16
TIMEOUT_S = 60
NETWORK_ERRORS = (OSError, http.client.HTTPException)  # URLError, HTTPError, timeouts, ConnectionError, IncompleteRead


@dataclass(frozen=True)
class Download:
    url: str
    relative: str  # destination inside the data folder
    lines: int | None = None  # expected line count (checked when no pin exists)
    pin: str | None = None  # its SHA-256 when declared with it (a sources.Source file); else pins.PINS has it

    @property
    def sha256(self) -> str | None:
        return self.pin or PINS.get(self.relative)


def _ntrex_code(lang: str, languages_tsv: Path | None) -> str:
    """NTREX's spelling of ``lang`` (``aze`` -> ``aze-Latn``), from LANGUAGES.tsv when it is at hand."""
    if languages_tsv is not None and languages_tsv.is_file():
        for line in languages_tsv.read_text(encoding="utf-8").splitlines():
            raw = line.split(None, 1)[0] if line.strip() else ""
            if raw and canonical_code(raw) == canonical_code(lang):
                return raw
    return lang


def _sib_code(lang: str) -> str:
    """A FLORES-200 folder name as given (``wol_Latn``), or a mirrored language's (``swa`` -> ``swh_Latn``)."""
    if "_" in lang:
        return lang
    for code in DEFAULT_SIB_LANGS:
        if canonical_code(code) == canonical_code(lang):
            return code
    raise DataError(
        f"no SIB-200 folder name known for {lang!r}",
        fix="give the FLORES-200 code with its script, e.g. --sib-langs wol_Latn",
    )


def planned_downloads(
    langs: tuple[str, ...] = DEFAULT_NTREX_LANGS,
    sib_langs: tuple[str, ...] = DEFAULT_SIB_LANGS,
    languages_tsv: Path | None = None,
) -> list[Download]:
    """Every file to fetch: NTREX (English, ids, ``langs``), the MAFAND-MT pairs, QALD, SIB-200 ``sib_langs``,
    AfriQA and every declared source (:data:`.sources.SOURCES`: TICO-19, ...)."""
    plan = [
        Download(NTREX_TOP_URL.format(file="LANGUAGES.tsv"), "ntrex-128/LANGUAGES.tsv"),
        Download(NTREX_URL.format(file="newstest2019-src.eng.txt"), "ntrex-128/newstest2019-src.eng.txt", NTREX_LINES),
        Download(NTREX_TOP_URL.format(file="DOCUMENT_IDS.tsv"), "ntrex-128/DOCUMENT_IDS.tsv", NTREX_LINES),
    ]
    for lang in langs:
        file = f"newstest2019-ref.{_ntrex_code(lang, languages_tsv)}.txt"
        plan.append(Download(NTREX_URL.format(file=file), f"ntrex-128/{file}", NTREX_LINES))
    for pair in MAFAND_PAIRS:
        lang = pair[3:]
        for split in SPLITS:
            for side in ("en", lang):
                expected = MAFAND_TRAIN_LINES[lang] if split == "train" else None
                plan.append(
                    Download(
                        MAFAND_URL.format(pair=pair, split=split, side=side),
                        f"mafand-mt/{pair}/{split}.{side}",
                        expected,
                    )
                )
    plan.append(Download(QALD_URL, "qald-9-plus/qald_9_plus_test_dbpedia.json"))
    for lang in dict.fromkeys(("eng_Latn", *(_sib_code(code) for code in sib_langs))):
        for name in (*SIB_SPLITS, *(() if lang in SIB_WITHOUT_LABELS else ("labels",))):
            file = f"{name}.txt" if name == "labels" else f"{name}.tsv"
            plan.append(
                Download(SIB_URL.format(lang=lang, file=file), f"sib-200/data/annotated/{lang}/{file}", SIB_LINES[name])
            )
    return plan + afriqa_downloads() + source_downloads()


def afriqa_downloads() -> list[Download]:
    """AfriQA's license, queries and gold passages (pinned; their record counts are the pins' business)."""
    files = ["LICENSE"]
    for lang, gold in AFRIQA_GOLD_SPLITS.items():
        files += [f"data/queries/{lang}/queries.afriqa.{lang}.en.{split}.json" for split in SPLITS]
        files += [f"data/gold_passages/{lang}/gold_span_passages.afriqa.{lang}.en.{split}.json" for split in gold]
    return [Download(AFRIQA_URL.format(file=file), f"afriqa/{file}") for file in files]


def source_downloads() -> list[Download]:
    """The files of every declared source (:mod:`.sources`), each with its own pin."""
    return [
        Download(file.url, f"{source.folder}/{file.path}", pin=file.sha256)
        for source in sources.SOURCES
        for file in source.files
    ]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def compute_pins(root: Path) -> dict[str, str]:
    """SHA-256 of every planned file present under ``root``: how :mod:`.pins` was made from the mirror."""
    plan = planned_downloads(languages_tsv=root / "ntrex-128" / "LANGUAGES.tsv")
    # (a sources.Source carries its pins itself: only the built-in datasets' files go to pins.py)
    return {d.relative: sha256_of(root / d.relative) for d in plan if d.pin is None and (root / d.relative).is_file()}


def _verify(part: Path, item: Download, allow_unpinned: bool) -> None:
    """The pin when there is one; otherwise (only if allowed) the line count / JSON syntax."""
    if item.sha256 is not None:
        actual = sha256_of(part)
        if actual != item.sha256:
            raise DataError(
                f"downloaded {item.url} has SHA-256 {actual}, expected {item.sha256} "
                f"({part.stat().st_size} bytes): truncated, tampered with, or changed upstream",
                path=item.relative,
                fix="retry `optical-lab data fetch --force`; if it persists, the upstream "
                "file changed: compare it with the mirror before trusting it",
            )
        return
    if not allow_unpinned:
        raise DataError(
            f"no SHA-256 pin for {item.relative}, so its content cannot be verified",
            path=item.relative,
            fix="fetch only the pinned (mirrored) languages, "
            "or pass --allow-unpinned to accept it on a line-count check",
        )
    if item.relative.endswith(".json"):
        try:
            json.loads(part.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataError(
                f"downloaded file is not valid JSON ({exc})",
                path=item.relative,
                fix="the download was cut; retry with --force",
            ) from None
    elif item.lines is not None:
        n = part.read_bytes().count(b"\n")
        if n != item.lines:
            raise DataError(
                f"downloaded file has {n} lines, expected {item.lines}",
                path=item.relative,
                fix="the upstream changed or the download was cut; retry with --force",
            )
    print(f"unpinned {item.relative}: sha256 {sha256_of(part)}")


def download(item: Download, dest: Path, *, allow_unpinned: bool = False, opener: Callable | None = None) -> Path:
    """Fetch one file into ``dest`` atomically: stream to a ``.part`` file, verify, rename; clean up on failure."""
    opener = opener or urllib.request.urlopen
    target = dest / item.relative
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=target.parent)
    part = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            try:
                with opener(item.url, timeout=TIMEOUT_S) as response:
                    announced = response.headers.get("Content-Length") if getattr(response, "headers", None) else None
                    received = 0
                    for block in iter(lambda: response.read(CHUNK), b""):
                        out.write(block)
                        received += len(block)
            except NETWORK_ERRORS as exc:
                raise DataError(
                    f"could not download {item.url} ({type(exc).__name__}: {exc})",
                    path=item.relative,
                    fix="check the internet connection and retry; or copy the data folder by hand and set "
                    "OPTICAL_LAB_DATA",
                ) from exc
        if announced is not None and int(announced) != received:
            raise DataError(
                f"download of {item.url} stopped after {received} of {announced} bytes",
                path=item.relative,
                fix="the connection dropped; retry `optical-lab data fetch`",
            )
        _verify(part, item, allow_unpinned)
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
    return target


def fetch(
    dest: Path | None = None,
    langs: tuple[str, ...] = DEFAULT_NTREX_LANGS,
    force: bool = False,
    *,
    sib_langs: tuple[str, ...] = DEFAULT_SIB_LANGS,
    allow_unpinned: bool = False,
    opener: Callable | None = None,
) -> Path:
    """Download every planned file missing from ``dest`` (default: the user cache), each verified."""
    dest = dest or cache_dir() / "data"
    languages_tsv = dest / "ntrex-128" / "LANGUAGES.tsv"
    first = planned_downloads((), (), None)[0]  # LANGUAGES.tsv: it spells the NTREX codes of the rest
    if force or not is_intact(dest, first):
        download(first, dest, allow_unpinned=allow_unpinned, opener=opener)
    for item in tqdm(planned_downloads(langs, sib_langs, languages_tsv)[1:], desc="fetch data"):
        if force or not is_intact(dest, item):
            download(item, dest, allow_unpinned=allow_unpinned, opener=opener)
    return dest


def is_intact(dest: Path, item: Download) -> bool:
    """Whether ``item`` is already in ``dest`` with its pinned SHA-256 (a present file without a pin
    counts as intact: nothing to check it against). A file that differs from its pin is reported."""
    path = dest / item.relative
    if not path.is_file():
        return False
    if item.sha256 is None or sha256_of(path) == item.sha256:
        return True
    print(f"{path}: SHA-256 differs from its pin (damaged or edited): downloading it again", flush=True)
    return False
