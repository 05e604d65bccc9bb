"""Language codes the toolkit knows (ISO 639-3 as NTREX names its files; QALD uses ISO 639-1)."""
from __future__ import annotations

from .errors import DataError

NAMES: dict[str, str] = {
    "eng": "English", "fra": "French", "deu": "German", "rus": "Russian",
    "swa": "Swahili", "hau": "Hausa", "yor": "Yoruba", "som": "Somali", "zul": "Zulu",
    "amh": "Amharic", "ibo": "Igbo", "fil": "Filipino",
    "ukr": "Ukrainian", "lit": "Lithuanian", "bel": "Belarusian", "bak": "Bashkir", "hye": "Armenian",
    "spa": "Spanish",
}
HIGH_RESOURCE = ("fra", "deu", "rus", "spa")
LOW_RESOURCE = ("swa", "hau", "yor", "som", "zul", "amh", "ibo", "fil", "ukr", "lit", "bel", "bak", "hye")

# QALD-9-plus writes ISO 639-1 codes (Bashkir: "ba").
ISO1_TO_ISO3 = {"en": "eng", "de": "deu", "fr": "fra", "ru": "rus", "es": "spa",
                "uk": "ukr", "lt": "lit", "be": "bel", "ba": "bak", "hy": "hye"}
ISO3_TO_ISO1 = {v: k for k, v in ISO1_TO_ISO3.items()}


def normalize_lang(code: str) -> str:
    """Return the ISO 639-3 code for ``code`` (accepts 639-1 codes too) or raise a clear error."""
    code = code.strip().lower()
    code = ISO1_TO_ISO3.get(code, code)
    if code not in NAMES:
        raise DataError(
            f"unknown language code {code!r}",
            fix=f"use one of: {', '.join(sorted(NAMES))} (ISO 639-3; QALD's ISO 639-1 codes also work)",
        )
    return code


def parse_langs(text: str) -> list[str]:
    """``"swa, hau"`` -> ``["swa", "hau"]`` (validated)."""
    return [normalize_lang(part) for part in text.split(",") if part.strip()]
