"""Language codes: which languages the data directory holds, and one normaliser for every spelling.

The datasets spell one language in different ways: NTREX writes ISO 639-3 file names, sometimes with
a script or region suffix (``newstest2019-ref.swa.txt``, ``aze-Latn``, ``srp-Cyrl``, ``zho-CN``);
FLORES-200 / SIB-200 always add a script and often use an individual language where NTREX uses the
macrolanguage (``swh_Latn`` for ``swa``, ``tgl_Latn`` for ``fil``, ``pes_Arab`` for ``fas``,
``azj_Latn`` for ``aze-Latn``); MAFAND-MT names pairs ``en-hau`` (and, upstream, ``en_luo``); QALD and
TICO-19 write ISO 639-1 (``uk``, ``ha``, ``lg``); AfriQA writes ISO 639-3 folders (``hau``, ``twi``, ``bem``).

**Canonical code.** Every spelling maps to one canonical code, the ISO 639-3 code NTREX uses
(``swa``, ``hau``, ``fil``, ...), which is what results folders and tables already use. A script is
kept only where a language is written in more than one script and this is not its usual one
(``srp-Latn``, ``zho-Hant``); a region is kept when it is a regional variant (``fra-CA``).
:func:`canonical_code` does this from the spelling alone, with the small static tables below.

**Known languages.** The *set* of languages is not a list in the code: it is what the data
directory holds (:func:`known_languages` scans NTREX's file names and ``LANGUAGES.tsv``, SIB-200's
folders, MAFAND-MT's pairs, QALD's question languages, AfriQA's query folders and TICO-19's
translation memories), so a user who adds
``ntrex-128/newstest2019-ref.wol.txt`` to their data folder can use ``wol`` at once.
:func:`normalize_lang` accepts a code when the data has that language and otherwise raises a
:class:`DataError` listing the close matches.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import sources
from .errors import DataError
from .paths import data_dir

# Display names for the languages the repository's docs and defaults name; any other language takes
# its name from NTREX's LANGUAGES.tsv when the data has it (see display_name).
NAMES: dict[str, str] = {
    "eng": "English",
    "fra": "French",
    "deu": "German",
    "rus": "Russian",
    "swa": "Swahili",
    "hau": "Hausa",
    "yor": "Yoruba",
    "som": "Somali",
    "zul": "Zulu",
    "amh": "Amharic",
    "ibo": "Igbo",
    "fil": "Filipino",
    "ukr": "Ukrainian",
    "lit": "Lithuanian",
    "bel": "Belarusian",
    "bak": "Bashkir",
    "hye": "Armenian",
    "spa": "Spanish",
    "twi": "Twi",
    "bem": "Bemba",
    "lug": "Ganda",
    "luo": "Luo",
    "lin": "Lingala",
    "tir": "Tigrinya",
}
# High-resource reference languages: reports list them apart from the low-resource ones.
HIGH_RESOURCE = ("fra", "deu", "rus", "spa")

# ISO 639-1 -> ISO 639-3 (all 183 two-letter codes in use; QALD-9-plus writes these, e.g. Bashkir "ba").
ISO1_TO_ISO3: dict[str, str] = dict(
    pair.split(":")
    for pair in """
aa:aar ab:abk ae:ave af:afr ak:aka am:amh an:arg ar:ara as:asm av:ava ay:aym az:aze ba:bak be:bel
bg:bul bi:bis bm:bam bn:ben bo:bod br:bre bs:bos ca:cat ce:che ch:cha co:cos cr:cre cs:ces cu:chu
cv:chv cy:cym da:dan de:deu dv:div dz:dzo ee:ewe el:ell en:eng eo:epo es:spa et:est eu:eus fa:fas
ff:ful fi:fin fj:fij fo:fao fr:fra fy:fry ga:gle gd:gla gl:glg gn:grn gu:guj gv:glv ha:hau he:heb
hi:hin ho:hmo hr:hrv ht:hat hu:hun hy:hye hz:her ia:ina id:ind ie:ile ig:ibo ii:iii ik:ipk io:ido
is:isl it:ita iu:iku ja:jpn jv:jav ka:kat kg:kon ki:kik kj:kua kk:kaz kl:kal km:khm kn:kan ko:kor
kr:kau ks:kas ku:kur kv:kom kw:cor ky:kir la:lat lb:ltz lg:lug li:lim ln:lin lo:lao lt:lit lu:lub
lv:lav mg:mlg mh:mah mi:mri mk:mkd ml:mal mn:mon mr:mar ms:msa mt:mlt my:mya na:nau nb:nob nd:nde
ne:nep ng:ndo nl:nld nn:nno no:nor nr:nbl nv:nav ny:nya oc:oci oj:oji om:orm or:ori os:oss pa:pan
pi:pli pl:pol ps:pus pt:por qu:que rm:roh rn:run ro:ron ru:rus rw:kin sa:san sc:srd sd:snd se:sme
sg:sag si:sin sk:slk sl:slv sm:smo sn:sna so:som sq:sqi sr:srp ss:ssw st:sot su:sun sv:swe sw:swa
ta:tam te:tel tg:tgk th:tha ti:tir tk:tuk tl:tgl tn:tsn to:ton tr:tur ts:tso tt:tat tw:twi ty:tah
ug:uig uk:ukr ur:urd uz:uzb ve:ven vi:vie vo:vol wa:wln wo:wol xh:xho yi:yid yo:yor za:zha zh:zho
zu:zul""".split()
)
ISO3_TO_ISO1 = {v: k for k, v in ISO1_TO_ISO3.items()}

# Individual language (FLORES-200) or macrolanguage (ISO 639-1 table) -> the code NTREX uses.
ALIASES = {
    "swh": "swa",
    "tgl": "fil",
    "pes": "fas",
    "azj": "aze",
    "zsm": "msa",
    "ekk": "est",
    "lvs": "lav",
    "khk": "mon",
    "npi": "nep",
    "uzn": "uzb",
    "plt": "mlg",
    "gaz": "orm",
    "pbt": "pus",
    "als": "sqi",
    "ara": "arb",
    "cmn": "zho",
    "ory": "ori",
    "ydd": "yid",
    "quy": "que",
    "ayr": "aym",
}
# Languages written in more than one script (in NTREX or FLORES-200) -> the script a bare code means.
DEFAULT_SCRIPT = {
    "srp": "Cyrl",
    "zho": "Hans",
    "arb": "Arab",
    "ace": "Latn",
    "bjn": "Latn",
    "kas": "Arab",
    "knc": "Latn",
    "min": "Latn",
    "taq": "Latn",
}
# Regions NTREX uses where FLORES uses a script.
REGION_SCRIPT = {("zho", "CN"): "Hans", ("zho", "TW"): "Hant"}

BUILT_IN_DATASETS = ("ntrex-128", "sib-200", "mafand-mt", "qald-9-plus", "afriqa")  # then sources.SOURCES (datasets())
MAFAND_PAIR_PREFIXES = ("en-", "en_")  # upstream lafand-mt writes en-hau ... and en_luo
_CODE = re.compile(r"^([A-Za-z]{2,3})(?:[-_]([A-Za-z]{4}|[A-Za-z]{2}|[0-9]{3}))?$")


def canonical_code(code: str) -> str:
    """The canonical spelling of ``code``, from its spelling alone (no data needed).

    ``sw``/``swa``/``swh``/``swh_Latn`` -> ``swa``; ``tl``/``tgl_Latn`` -> ``fil``; ``aze-Latn``/``azj_Latn``
    -> ``aze``; ``srp-Cyrl``/``srp_Cyrl`` -> ``srp``, ``srp-Latn`` -> ``srp-Latn``; ``zho-CN``/``zho_Hans``
    -> ``zho``, ``zho-TW`` -> ``zho-Hant``; ``fra-CA`` -> ``fra-CA``. A spelling that is not a language
    code at all is returned lower-cased, so the caller's lookup fails with close matches.
    """
    text = code.strip()
    match = _CODE.match(text)
    if not match:
        return text.lower()
    lang, suffix = match.group(1).lower(), match.group(2)
    lang = ISO1_TO_ISO3.get(lang, lang)
    lang = ALIASES.get(lang, lang)
    if suffix is None:
        return lang
    if len(suffix) == 4:  # script
        script = suffix.title()
    elif suffix.isalpha() and (lang, suffix.upper()) in REGION_SCRIPT:
        script = REGION_SCRIPT[(lang, suffix.upper())]
    else:  # a regional variant is its own language variety (fra-CA is not fra)
        return f"{lang}-{suffix.upper()}"
    if script == DEFAULT_SCRIPT.get(lang, script):
        return lang  # the usual (or only) script: the bare code
    return f"{lang}-{script}"


@dataclass
class Language:
    """One language and how each dataset in the data directory spells it."""

    code: str
    name: str
    datasets: dict[str, str] = field(default_factory=dict)  # dataset -> the code as that dataset writes it
    ntrex_listed: str | None = None  # NTREX upstream has it (LANGUAGES.tsv), whether or not the file is here


def _qald_languages(path: Path) -> list[str]:
    stat = path.stat()
    return list(_qald_languages_cached(path, stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=8)
def _qald_languages_cached(path: Path, _mtime: int, _size: int) -> tuple[str, ...]:
    try:
        questions = json.loads(path.read_text(encoding="utf-8")).get("questions", [])
        codes = {entry.get("language", "") for q in questions for entry in q.get("question", [])}
    except (ValueError, AttributeError) as exc:  # the QALD loader reports the details; here: no languages
        raise DataError(
            f"cannot read the question languages ({exc})",
            path=path,
            fix="re-fetch the QALD file with `optical-lab data fetch --force`",
        ) from None
    return tuple(sorted(code for code in codes if code))


def _ntrex_names(folder: Path) -> dict[str, str]:
    """``LANGUAGES.tsv`` (despite the name, ``code<spaces>name`` per line) -> {raw code: name}."""
    path = folder / "LANGUAGES.tsv"
    if not path.is_file():
        return {}
    names = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2:
            names[parts[0]] = parts[1].strip()
    return names


def mafand_pair_folders(folder: Path) -> dict[str, Path]:
    """MAFAND-MT's pair folders in ``folder`` (``en-LANG``, or ``en_LANG`` as upstream spells Luo) -> {LANG: folder}."""
    if not folder.is_dir():
        return {}
    return {
        path.name[3:]: path
        for path in sorted(folder.iterdir())
        if path.is_dir() and path.name[:3] in MAFAND_PAIR_PREFIXES and len(path.name) > 3
    }


def datasets() -> tuple[str, ...]:
    """Every dataset a language can come from, in the column order of ``optical-lab data langs``."""
    return (*BUILT_IN_DATASETS, *(source.folder for source in sources.SOURCES))


def scan_data(root: Path) -> dict[str, Language]:
    """Every language the data folder ``root`` holds, keyed by canonical code."""
    langs: dict[str, Language] = {}

    def add(dataset: str, raw: str, name: str = "") -> None:
        code = canonical_code(raw)
        entry = langs.setdefault(code, Language(code, NAMES.get(code, "")))
        entry.name = entry.name or name
        if dataset == "ntrex-listed":
            entry.ntrex_listed = raw
        else:
            entry.datasets.setdefault(dataset, raw)

    ntrex = root / "ntrex-128"
    if ntrex.is_dir():
        names = _ntrex_names(ntrex)
        for raw, name in names.items():
            add("ntrex-listed", raw, name)
        if (ntrex / "newstest2019-src.eng.txt").is_file():
            add("ntrex-128", "eng", "English")
        for path in sorted(ntrex.glob("newstest2019-ref.*.txt")):
            raw = path.name[len("newstest2019-ref.") : -len(".txt")]
            add("ntrex-128", raw, names.get(raw, ""))
    sib = root / "sib-200" / "data" / "annotated"
    if sib.is_dir():
        for folder in sorted(p for p in sib.iterdir() if p.is_dir()):
            add("sib-200", folder.name)
    for raw in mafand_pair_folders(root / "mafand-mt"):
        add("mafand-mt", "eng", "English")
        add("mafand-mt", raw)
    afriqa = root / "afriqa" / "data" / "queries"
    if afriqa.is_dir():
        for folder in sorted(p for p in afriqa.iterdir() if p.is_dir()):
            add("afriqa", folder.name)
    for source in sources.SOURCES:  # TICO-19 and any dataset declared as a sources.Source
        for raw in source.language_files(root):
            add(source.folder, raw)
    qald = root / "qald-9-plus" / "qald_9_plus_test_dbpedia.json"
    if qald.is_file():
        for raw in _qald_languages(qald):
            add("qald-9-plus", raw)
    for entry in langs.values():
        entry.name = entry.name or entry.code
    return langs


def known_languages(root: Path | None = None) -> dict[str, Language]:
    """Languages of the data directory in use (``root`` overrides it), keyed by canonical code."""
    return scan_data(root or data_dir())


def display_name(code: str, root: Path | None = None) -> str:
    """``"swa"`` -> ``"Swahili"``; a language the code never names gets NTREX's name, else its code."""
    if code in NAMES:
        return NAMES[code]
    try:
        entry = known_languages(root).get(canonical_code(code))
    except DataError:
        return code
    return entry.name if entry else code


def dataset_code(lang: str, dataset: str, root: Path | None = None) -> str | None:
    """How ``dataset`` spells ``lang`` in this data folder (``("swa", "sib-200")`` -> ``"swh_Latn"``), or None."""
    entry = known_languages(root).get(canonical_code(lang))
    if entry is None:
        return None
    if dataset in entry.datasets:
        return entry.datasets[dataset]
    return entry.ntrex_listed if dataset == "ntrex-128" else None


def normalize_lang(code: str, root: Path | None = None) -> str:
    """The canonical code of ``code`` if the data directory holds that language, else a clear error."""
    canonical = canonical_code(code)
    known = known_languages(root)
    if canonical in known:
        return canonical
    spellings = {s.lower(): c for c, entry in known.items() for s in [c, *entry.datasets.values(), entry.name]}
    close = difflib.get_close_matches(code.strip().lower(), list(spellings), n=6, cutoff=0.6)
    close += difflib.get_close_matches(canonical, list(known), n=6, cutoff=0.6)
    suggestions = list(dict.fromkeys(spellings.get(s, s) for s in close))[:5]
    hint = f"; close matches: {', '.join(suggestions)}" if suggestions else ""
    raise DataError(
        f"unknown language code {code.strip()!r}: the data directory has no language {canonical!r}",
        fix=f"use one of the {len(known)} languages the data directory knows "
        f"(`optical-lab data langs` lists them){hint}; "
        "or add the language's files to the data folder in the same layout",
    )


def parse_langs(text: str, root: Path | None = None) -> list[str]:
    """``"swa, hau"`` -> ``["swa", "hau"]`` (validated against the data directory); two spellings of one
    language (``hau,ha``) are one entry (each language is evaluated and tabulated once)."""
    return list(dict.fromkeys(normalize_lang(part, root) for part in text.split(",") if part.strip()))


def language_table(root: Path | None = None) -> list[dict[str, str]]:
    """One row per language: code, name, and how each dataset spells it ("" when it lacks it)."""
    rows = []
    for code, entry in sorted(known_languages(root).items()):
        row = {"code": code, "name": entry.name}
        for dataset in datasets():
            row[dataset] = entry.datasets.get(dataset, "")
        row["ntrex-128 upstream"] = entry.ntrex_listed or ""
        rows.append(row)
    return rows
