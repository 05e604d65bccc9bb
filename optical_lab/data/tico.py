"""TICO-19 (Anastasopoulos et al., 2020): 3,071 COVID-19 / medical-domain segments from about 30
documents (PubMed, Wikipedia, CMU, Wikinews, ...), translated from English. License CC0 1.0.

Layout (upstream ``tico-19/tico-19.github.io`` at commit d97615f, mirrored in ``<data>/tico-19``)::

    tico-19/data/TM/all.en-LANG.tmx.zip      one TMX file inside the zip; per segment
        <tu tuid="DOC:N"> <tuv xml:lang="en"><seg>English</seg></tuv> <tuv xml:lang="LANG"><seg>...</seg></tuv> </tu>

``LANG`` is TICO's code (ISO 639-1 where there is one: ``ha``, ``sw``, ``lg``, ``ti``);
:func:`load_tico` accepts any spelling (``hau``, ``ha``). The zip is read in memory (nothing is
extracted to disk) and the TMX is parsed with :mod:`defusedxml`, which refuses entity declarations
and external references: a TMX is XML from the internet, and entity expansion ("billion laughs")
or an external entity could exhaust memory or read local files.

**Checked** (a :class:`DataError` naming the file, the ``tuid`` or the ``<tu>``'s position, and the
fix): one ``.tmx`` member in the zip, well-formed XML without entities, every ``<tu>`` with a unique
``tuid``, exactly one English and one target ``<tuv>`` each with a non-empty ``<seg>``, and
:data:`TICO_SEGMENTS` units in all. The English side is each file's own: the upstream files differ
in the quoting of about 150 English segments (``"..."`` vs ``" ... "``), so languages are not
paired with each other through English.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

from .errors import DataError
from .languages import canonical_code, known_languages
from .paths import data_dir
from .sources import TICO

TICO_SEGMENTS = 3071  # translation units per upstream file
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
REFETCH = "re-fetch it with `optical-lab data fetch --force`"


@dataclass
class TicoCorpus:
    """One language's translation memory, in file order: ``tuids[i]``, ``doc_ids[i]``, ``english[i]``, ``target[i]``."""

    lang: str
    code: str  # TICO's spelling
    tuids: list[str]
    doc_ids: list[str]
    english: list[str]
    target: list[str]


def tico_root(root: Path | None = None) -> Path:
    """``<data>/tico-19/data/TM`` of the data folder ``root`` (default: the one in use)."""
    return (root or data_dir("tico-19")) / "tico-19" / "data" / "TM"


def tico_languages(root: Path | None = None) -> list[str]:
    """Canonical codes of the languages with a TICO-19 translation memory."""
    return sorted(
        code for code, entry in known_languages(root or data_dir("tico-19")).items() if "tico-19" in entry.datasets
    )


def tico_file(lang: str, root: Path | None = None) -> Path:
    """The ``all.en-LANG.tmx.zip`` of ``lang`` (any spelling), or a clear error."""
    entry = known_languages(root or data_dir("tico-19")).get(canonical_code(lang))
    if entry is None or "tico-19" not in entry.datasets:
        held = ", ".join(tico_languages(root)) or "none"
        raise DataError(
            f"TICO-19 has no translation memory for {lang!r} (it has {held})",
            path=tico_root(root),
            fix="add all.en-LANG.tmx.zip from upstream tico-19/tico-19.github.io data/TM/",
        )
    return TICO.language_files(root or data_dir("tico-19"))[entry.datasets["tico-19"]]


def read_tmx_bytes(path: Path) -> bytes:
    """The one ``.tmx`` member of the zip ``path``, read in memory."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = [name for name in archive.namelist() if name.endswith(".tmx")]
            if len(members) != 1:
                raise DataError(
                    f"{len(members)} .tmx files in the zip, expected 1",
                    path=path,
                    fix=f"the zip must hold one TMX file; {REFETCH}",
                )
            return archive.read(members[0])
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"not a readable zip file ({exc})", path=path, fix=REFETCH) from None


def parse_tmx(data: bytes, path: Path) -> Element:
    """The TMX root element; entities, DTD-declared or external, are refused (defusedxml)."""
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring

    try:
        return fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise DataError(
            f"refused: the TMX declares entities or external references ({exc})",
            path=path,
            fix="a translation memory needs no entities; use the upstream file (`optical-lab data fetch --force`)",
        ) from None
    except ParseError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else None
        raise DataError(f"not well-formed XML ({exc})", path=path, line=line, fix=REFETCH) from None


def _segment(tu: Element, lang: str, where: str, path: Path) -> str:
    """The text of the one ``<tuv xml:lang=lang>`` of ``tu`` (inline markup's text included)."""
    tuvs = [tuv for tuv in tu.findall("tuv") if (tuv.get(XML_LANG) or tuv.get("lang") or "").lower() == lang.lower()]
    if len(tuvs) != 1:
        raise DataError(
            f'{where}: {len(tuvs)} <tuv xml:lang="{lang}">, expected 1',
            path=path,
            fix=f"each <tu> holds one English and one {lang} <tuv>",
        )
    seg = tuvs[0].find("seg")
    text = " ".join("".join(seg.itertext()).split()) if seg is not None else ""
    if not text:
        raise DataError(
            f"{where}: empty or missing <seg> for {lang}",
            path=path,
            fix="every segment needs its text on both sides; remove or fill the unit",
        )
    return text


def read_tmx(path: Path, code: str, expected: int | None = TICO_SEGMENTS) -> TicoCorpus:
    """English and ``code`` segments of the TMX in the zip ``path``, checked unit by unit."""
    root = parse_tmx(read_tmx_bytes(path), path)
    body = root.find("body")
    if root.tag != "tmx" or body is None:
        raise DataError(f"root element <{root.tag}> without <body>, expected <tmx><body>", path=path, fix=REFETCH)
    tuids: list[str] = []
    english: list[str] = []
    target: list[str] = []
    seen: dict[str, int] = {}
    for position, tu in enumerate(body.findall("tu"), start=1):
        tuid = (tu.get("tuid") or "").strip()
        where = f"tuid {tuid}" if tuid else f"<tu> number {position}"
        if not tuid:
            raise DataError(f"{where} has no tuid", path=path, fix='every unit needs tuid="DOC:N"')
        if tuid in seen:
            raise DataError(f"{where} repeats <tu> number {seen[tuid]}", path=path, fix="each tuid appears once")
        seen[tuid] = position
        english.append(_segment(tu, "en", where, path))
        target.append(_segment(tu, code, where, path))
        tuids.append(tuid)
    if expected is not None and len(tuids) != expected:
        raise DataError(
            f"{len(tuids)} translation units, expected {expected}",
            path=path,
            fix=f"the file is truncated or not the upstream version; {REFETCH}",
        )
    return TicoCorpus(canonical_code(code), code, tuids, [t.split(":", 1)[0] for t in tuids], english, target)


def load_tico(lang: str, root: Path | None = None) -> TicoCorpus:
    """The English/``lang`` translation memory of the data folder ``root`` (default: the one in use)."""
    path = tico_file(lang, root)
    return read_tmx(path, path.name[len("all.en-") : -len(".tmx.zip")])
