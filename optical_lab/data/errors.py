"""One error type for bad or missing data, always naming the file, the line and the fix."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Input data is missing or malformed.

    The message always says *where* (file, and line when known) and *how to fix it*.
    """

    def __init__(self, problem: str, *, path: str | Path | None = None, line: int | None = None, fix: str = "") -> None:
        where = ""
        if path is not None:
            where = f"{path}" + (f", line {line}" if line is not None else "") + ": "
        message = where + problem + (f"\n  Fix: {fix}" if fix else "")
        super().__init__(message)
        self.path, self.line, self.fix = path, line, fix
