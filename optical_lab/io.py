"""Writing result files safely: the lowest layer, usable by every other one.

Results are written while long runs may be killed at any moment, so every result file is written
atomically (temporary file + rename): a reader sees the old file or the new one, never half of one.
The rename also replaces a symbolic link at the path instead of writing through it, so a link planted
in a results folder never redirects a write to a file outside it (:func:`links_inside` finds them).
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, paths, tuples and nested containers as plain JSON values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: to_jsonable(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


# the process's umask, read once: mkstemp creates files readable by their owner only, whereas a results
# folder is shared, so the final file gets the mode an ordinary open() would have given it
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(handle)`` on a new temporary file beside ``path``, flush it to disk, then rename
    it over ``path``: a reader (or a crash) sees the old file or the new one, never half of one.

    The temporary name is unique (``<name>.<random>.tmp``, :func:`tempfile.mkstemp`): two writers of
    the same file never write into one temporary file; the last rename wins. It is removed when
    ``write`` fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(obj: Any, path: str | Path) -> None:
    """Write JSON atomically (:func:`atomic_write`): a crash never leaves half a file."""
    write_text(json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False) + "\n", path)


def write_text(text: str, path: str | Path) -> None:
    """Write UTF-8 text atomically (:func:`atomic_write`)."""
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def write_csv(table: Any, path: str | Path, **options: Any) -> None:
    """Write a pandas table as CSV atomically (``options`` go to ``DataFrame.to_csv``)."""
    buffer = io.StringIO()
    table.to_csv(buffer, **options)
    write_text(buffer.getvalue(), path)


def links_inside(folder: str | Path) -> list[Path]:
    """Every symbolic link at or below ``folder``'s entries (the folder itself may be one), found
    without following any link: what a run must not write or delete through."""
    found = []
    for root, dirs, files in os.walk(folder):  # os.walk lists a linked folder in ``dirs`` but never enters it
        found.extend(Path(root, name) for name in dirs + files if os.path.islink(os.path.join(root, name)))
    return sorted(found)
