"""Strict reading of line-aligned text files: UTF-8, nothing dropped, counts checked."""

from __future__ import annotations

from pathlib import Path

from .errors import DataError


def read_lines(path: str | Path, *, expected: int | None = None, allow_empty_lines: bool = False) -> list[str]:
    """Read a UTF-8 text file as a list of lines (no trailing newline), validating as we go."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            "file not found",
            path=path,
            fix="check the data directory (`optical-lab data where`) or run `optical-lab data fetch`",
        )
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"not valid UTF-8 ({exc.reason} at byte {exc.start})",
            path=path,
            line=line,
            fix="re-encode the file as UTF-8 (e.g. `iconv -t utf-8`)",
        ) from None
    if text.startswith("\ufeff"):  # a UTF-8 byte-order mark (Windows editors write one): not part of line 1
        text = text[1:]
    if not text.strip():
        raise DataError("file is empty", path=path, fix="re-download it or point to the right file")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # final newline
    lines = [line.rstrip("\r") for line in lines]
    if not allow_empty_lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                raise DataError(
                    "empty line in a line-aligned file",
                    path=path,
                    line=number,
                    fix="every line must hold one sentence; remove or fill the empty line in both files",
                )
    if expected is not None and len(lines) != expected:
        raise DataError(
            f"has {len(lines)} lines, expected {expected}",
            path=path,
            fix="the file is truncated or not the upstream version; re-fetch it with `optical-lab data fetch --force`",
        )
    return lines


def read_parallel(
    path_a: str | Path, path_b: str | Path, *, expected: int | None = None
) -> tuple[list[str], list[str]]:
    """Two line-aligned files; they must have the same number of lines."""
    a = read_lines(path_a, expected=expected)
    b = read_lines(path_b, expected=expected)
    if len(a) != len(b):
        raise DataError(
            f"bitext is ragged: {len(a)} lines here but {len(b)} in {path_b}",
            path=path_a,
            line=min(len(a), len(b)) + 1,
            fix="the two sides must be line-aligned; re-fetch both files or repair the alignment",
        )
    return a, b
