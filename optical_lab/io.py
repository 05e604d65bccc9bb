"""Writing and reading result files: the lowest layer, usable by every other one.

Results are written while long runs may be killed at any moment, so every result file is written
atomically (temporary file + rename): a reader sees the old file or the new one, never half of one.
The rename also replaces a symbolic link at the path instead of writing through it, so a link planted
in a results folder never redirects a write to a file outside it (:func:`links_inside` finds them).
Committed results are stored compactly; :func:`read_bytes` reads a result file by its logical name in
whichever form it is stored (see "stored result files" below).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import lzma
import os
import tempfile
from io import BytesIO
from pathlib import Path
from typing import IO, Any, Callable

from .columns import decode_columns, join_key_column, join_subtrees


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


# ---------------------------------------------------------------- stored result files
# A committed results folder keeps every number a re-analysis needs, compactly (``optical-lab results compact``,
# :mod:`optical_lab.experiments.compact`). A reader names a file by its *logical* path, e.g.
# ``<cell>/clir.per_query.csv``, and gets its exact bytes whichever form it is stored in:
#
# * plain — the file itself (a run being written, or a folder never compacted);
# * ``<path>.xz`` — the same bytes, xz-compressed (no timestamp or name inside: compacting twice gives the same file);
# * ``<path>.cols.xz`` — a JSON-lines file (``train_log.jsonl``) stored column by column, floats as binary or, when
#   logged at a declared precision (``methods/train_state.LOG_DIGITS``), as their decimal digits
#   (:func:`optical_lab.columns.encode_columns`); written only when decoding it gives back the very same bytes;
# * ``<path>.keyed.xz`` — a CSV file (``*.per_query.csv``) without its first column (the query ids), which is
#   stored once as ``blobs/<sha256>.xz`` like a shared file (:func:`optical_lab.columns.split_key_column`): a JSON
#   line ``{"key_sha256": ..., "key_bytes": ...}``, then the other columns' lines;
# * ``<path>.tree.xz`` — a JSON file (a cell's ``config.json``) whose large shared subtrees (the plan, the data
#   hashes, the training configuration) are ``{"$blob": <sha256>}``, each stored once as a blob, and whose ``cell``
#   record, the cell's ``done.json`` less its fingerprint, is ``{"$sibling": "done.json", "sha256": ...,
#   "without": [...]}``: read from that file, checked by its SHA-256 (:func:`optical_lab.columns.split_subtrees`);
# * ``<path>.ref`` — ``{"sha256": ..., "bytes": ...}``: content several cells share (a code-switch dictionary,
#   identical for every seed) stored once as ``blobs/<sha256>.xz`` in the nearest folder above that has it.
#
# Every reader goes through :func:`read_bytes` (and :func:`read_text`, :func:`read_json`, :func:`read_jsonl`,
# :func:`stored_glob` built on it), so old and new layouts read alike.

XZ, COLUMNS, REF, KEYED, TREE = ".xz", ".cols.xz", ".ref", ".keyed.xz", ".tree.xz"
STORED_SUFFIXES = (XZ, COLUMNS, REF, KEYED, TREE)  # the forms other than plain, in the order a reader tries them
BLOBS = "blobs"
_COLUMNS_FORMAT = "optical-lab columns 1"


def xz_bytes(data: bytes) -> bytes:
    """``data`` xz-compressed (preset 9, CRC-64): deterministic, so the same content gives the same file."""
    return lzma.compress(data, format=lzma.FORMAT_XZ, preset=9)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored_form(path: str | Path) -> Path | None:
    """The file that holds the logical ``path`` (plain first, then :data:`STORED_SUFFIXES`); None when none does."""
    path = Path(path)
    for suffix in ("", *STORED_SUFFIXES):
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def stored_exists(path: str | Path) -> bool:
    """Whether the logical ``path`` exists in any stored form."""
    return stored_form(path) is not None


def logical_path(stored: str | Path) -> Path:
    """The logical path a stored file holds (``x.csv.xz`` -> ``x.csv``)."""
    stored = Path(stored)
    for suffix in sorted(STORED_SUFFIXES, key=len, reverse=True):
        if stored.name.endswith(suffix):
            return stored.with_name(stored.name[: -len(suffix)])
    return stored


def blob_file(ref: Path, sha256: str) -> Path:
    """``blobs/<sha256>.xz`` in the nearest folder above ``ref`` that has it."""
    for folder in ref.parents:
        candidate = folder / BLOBS / f"{sha256}{XZ}"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{ref} names blob {sha256} but no {BLOBS}/{sha256}{XZ} exists in a folder above it "
        "(copy the results folder's blobs/ along with its cells)"
    )


def decode_stored(stored: str | Path) -> bytes:
    """The exact bytes a stored file holds (any form; a blob is checked against its SHA-256)."""
    stored = Path(stored)
    raw = stored.read_bytes()
    if stored.name.endswith(COLUMNS):
        return decode_columns(lzma.decompress(raw))
    if stored.name.endswith(KEYED):
        head, _, rest = lzma.decompress(raw).partition(b"\n")
        return join_key_column(read_blob(stored, json.loads(head)["key_sha256"]), rest)
    if stored.name.endswith(TREE):
        return join_subtrees(
            lzma.decompress(raw),
            lambda sha256: read_blob(stored, sha256),
            lambda name, sha: read_sibling(stored, name, sha),
        )
    if stored.name.endswith(XZ):
        return lzma.decompress(raw)
    if stored.name.endswith(REF):
        return read_blob(stored, json.loads(raw)["sha256"])
    return raw


def read_blob(stored: Path, sha256: str) -> bytes:
    """The content of blob ``sha256`` that ``stored`` names, checked against its SHA-256."""
    data = lzma.decompress(blob_file(stored, sha256).read_bytes())
    if sha256_bytes(data) != sha256:
        raise ValueError(
            f"blob {sha256} named by {stored} does not hold the content it names "
            "(a damaged blobs/ file: restore it from git)"
        )
    return data


def read_sibling(stored: Path, name: str, sha256: str) -> bytes:
    """The bytes of the file ``name`` beside ``stored`` (any stored form) that ``stored`` refers to, checked against
    the SHA-256 they had when ``stored`` was written."""
    data = read_bytes(stored.parent / name)
    if sha256_bytes(data) != sha256:
        raise ValueError(
            f"{stored} refers to {name} beside it as it was when compacted, but {name} has changed since "
            f"(restore {stored.parent / name} from git, or recompute the cell)"
        )
    return data


def read_bytes(path: str | Path) -> bytes:
    """The bytes of the logical ``path`` in whatever form it is stored: the one low-level reader of results."""
    stored = stored_form(path)
    if stored is None:
        raise FileNotFoundError(
            f"{path} does not exist (nor {', '.join(Path(path).name + s for s in STORED_SUFFIXES)})"
        )
    return decode_stored(stored)


def open_stored(path: str | Path) -> BytesIO:
    """The logical ``path`` as a binary file object (e.g. for ``pandas.read_csv``)."""
    return BytesIO(read_bytes(path))


def read_text(path: str | Path, errors: str = "strict") -> str:
    return read_bytes(path).decode("utf-8", errors=errors)


def read_json(path: str | Path) -> Any:
    return json.loads(read_bytes(path))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file (blank lines skipped), e.g. a ``train_log.jsonl``."""
    return [json.loads(line) for line in read_text(path).splitlines() if line.strip()]


def stored_glob(folder: str | Path, pattern: str, recursive: bool = False) -> list[Path]:
    """Logical paths under ``folder`` matching ``pattern`` in any stored form, sorted (``recursive``: rglob)."""
    folder = Path(folder)
    find = folder.rglob if recursive else folder.glob
    found = {logical_path(p) for suffix in ("", *STORED_SUFFIXES) for p in find(pattern + suffix) if p.is_file()}
    return sorted(found)
