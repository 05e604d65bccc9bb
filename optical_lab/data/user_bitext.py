"""A user's own bitext: one TSV (``english<TAB>foreign`` per line) or two line-aligned files.

Read with the same strictness as NTREX (:mod:`.text_files`): UTF-8 only, no empty line, no
ragged pair, exactly one tab per TSV line, so a silently shifted alignment cannot train a student.
The language code is canonicalised (``sw`` -> ``swa``) but need not be in the data directory: the
bitext is the user's, the evaluation data is checked where it is loaded.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from .bitext import Bitext
from .errors import DataError
from .languages import canonical_code
from .text_files import read_lines, read_parallel

# A first TSV line whose left field is one of these is a header, not a sentence pair.
HEADER_WORDS = frozenset({"en", "eng", "english", "source", "src"})
# share of repeated pairs above which a bitext is refused (60 copies of one pair is no training data; its dev
# split would be copies of training pairs). Below it, repeats are reported and kept together by the split.
MAX_REPEATED_SHARE = 0.5


def check_repeats(bitext: Bitext, where: str, line_offset: int = 1) -> Bitext:
    """Report pairs repeating an earlier pair (a warning naming the count and the first repeat's line);
    refuse a bitext more than :data:`MAX_REPEATED_SHARE` of which are repeats. Returns ``bitext``."""
    seen: dict[tuple[str, str], int] = {}
    repeats = []
    for index, pair in enumerate(zip(bitext.english, bitext.foreign)):
        if pair in seen:
            repeats.append((index + line_offset, seen[pair] + line_offset))
        else:
            seen[pair] = index
    if not repeats:
        return bitext
    line, first = repeats[0]
    message = (
        f"{len(repeats)} of {len(bitext)} sentence pairs repeat an earlier pair (first: line {line} = line {first})"
    )
    if len(repeats) > MAX_REPEATED_SHARE * len(bitext):
        raise DataError(
            message + f", more than {MAX_REPEATED_SHARE:.0%}",
            path=where,
            line=line,
            fix="give distinct sentence pairs (e.g. `sort -u`); repeated pairs teach nothing new",
        )
    warnings.warn(f"{where}: {message}; repeats stay on one side of the train/dev split", stacklevel=2)
    return bitext


def load_bitext_tsv(path: str | Path, lang: str, *, header: bool | None = None) -> Bitext:
    """``english<TAB>foreign`` per line. ``header=None`` skips a first line like ``english<TAB>swahili``."""
    path = Path(path)
    lines = read_lines(path)
    first = lines[0].split("\t")
    if header is None:
        header = len(first) == 2 and first[0].strip().lower() in HEADER_WORDS
    start = 2 if header else 1
    english, foreign = [], []
    for number, line in enumerate(lines[start - 1 :], start=start):
        parts = line.split("\t")
        if len(parts) != 2:
            raise DataError(
                f"{len(parts) - 1} tabs, expected exactly 1 ('english<TAB>foreign')",
                path=path,
                line=number,
                fix="one sentence pair per line, separated by a single tab (no tab inside a sentence)",
            )
        en, xx = (p.strip() for p in parts)
        if not en or not xx:
            side = "English" if not en else "foreign"
            raise DataError(
                f"the {side} side is empty",
                path=path,
                line=number,
                fix="every line needs both sentences; remove the line or fill in the missing side",
            )
        english.append(en)
        foreign.append(xx)
    if not english:
        raise DataError("no sentence pairs after the header", path=path, fix="add english<TAB>foreign lines")
    return check_repeats(Bitext(english, foreign, canonical_code(lang), source=f"user:{path.name}"), str(path), start)


def load_bitext_files(english_path: str | Path, foreign_path: str | Path, lang: str) -> Bitext:
    """Two line-aligned files (line *i* of one translates line *i* of the other)."""
    english, foreign = read_parallel(english_path, foreign_path)
    return check_repeats(
        Bitext(
            [s.strip() for s in english],
            [s.strip() for s in foreign],
            canonical_code(lang),
            source=f"user:{Path(english_path).name}+{Path(foreign_path).name}",
        ),
        f"{english_path} + {foreign_path}",
    )
