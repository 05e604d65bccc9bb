"""Downloadable datasets declared as data: a folder, its files (URL and SHA-256 pin), and how file names
spell languages. One :class:`Source` in :data:`SOURCES` is all the data layer needs to know of a dataset:

* ``optical-lab data fetch`` downloads its files, each checked against its pin (:mod:`.fetch`);
* :func:`.languages.known_languages` finds the languages its folder holds (``--langs`` accepts them,
  ``optical-lab data langs`` shows a column for it);
* ``$OPTICAL_LAB_DATA`` may point at a folder that holds only it (:mod:`.paths`).

NTREX-128, MAFAND-MT, QALD-9-plus, SIB-200 and AfriQA predate this record and keep their own code in
those modules (line counts, ``LANGUAGES.tsv``, question languages inside a JSON file); TICO-19 is
declared here, the worked example for a new dataset. Pins: compute them from a copy you trust with
:func:`.fetch.sha256_of` (or ``compute_pins``) — never from the download you are about to check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SourceFile:
    """One file of a source: where it comes from, where it goes inside the source's folder, its SHA-256."""

    url: str
    path: str
    sha256: str


@dataclass(frozen=True)
class Source:
    """A downloadable dataset (module doc)."""

    folder: str  # its folder in the data folder, e.g. "tico-19"; also its name in language tables
    files: tuple[SourceFile, ...]
    language_file: str  # regex on a file's path inside ``folder``: group ``code`` = how the dataset spells a language

    def language_files(self, root: Path) -> dict[str, Path]:
        """The dataset's spelling of each language its folder under the data folder ``root`` holds -> that
        language's file (the first in sorted order when several match)."""
        folder, pattern = root / self.folder, re.compile(self.language_file)
        if not folder.is_dir():
            return {}
        found: dict[str, Path] = {}
        for path in sorted(folder.rglob("*")):
            if path.is_file() and (match := pattern.fullmatch(path.relative_to(folder).as_posix())):
                found.setdefault(match["code"], path)
        return found


def _files(url: str, pins: dict[str, str]) -> tuple[SourceFile, ...]:
    """A source's files from one URL template (``{file}`` = the path inside the folder) and its pins."""
    return tuple(SourceFile(url.format(file=path), path, sha256) for path, sha256 in pins.items())


# TICO-19 (Anastasopoulos et al. 2020; :mod:`.tico`) at upstream tico-19/tico-19.github.io commit d97615f
TICO = Source(
    "tico-19",
    _files(
        "https://raw.githubusercontent.com/tico-19/tico-19.github.io/d97615f/{file}",
        {
            "LICENSE.md": "a2010f343487d3f7618affe54f789f5487602331c0a8d03f49e9a7c547cf0499",
            "data/TM/all.en-ha.tmx.zip": "b7f3f33ceb54edacd162b908a5f7c1463bb2be3ef7348cd2396084b25d7c897d",
            "data/TM/all.en-lg.tmx.zip": "a88763c7e506ba2522a05b6a2939da1fb4bf21d5f80e3cd03915ec84455ab29b",
            "data/TM/all.en-ln.tmx.zip": "78e3d4546d31d3b2cb4d533f5272eea1881a7533b5bb49a797119712bfe79f1d",
            "data/TM/all.en-so.tmx.zip": "0809ea465dafd09dcf871d084ede5a2add08f8a5e9cca884304f21a4187bfa2a",
            "data/TM/all.en-sw.tmx.zip": "665d685b739044f805d254494f6da8f93761f71767b5f63582f8b5792c6c8a06",
            "data/TM/all.en-ti.tmx.zip": "1aea8698e42487fb4d0509d0f2cd834463b3c5d653a0ae12042db7a07a828bc3",
            "data/TM/all.en-zu.tmx.zip": "e9d81f44f92ee9883852d88aed285bc2ee0577b80bd1343ccc52ebc5e631dd28",
        },
    ),
    r"data/TM/all\.en-(?P<code>[A-Za-z_-]+)\.tmx\.zip",
)
SOURCES: list[Source] = [TICO]  # a list so a test can add a toy source (monkeypatch.setattr(sources, "SOURCES", ...))
