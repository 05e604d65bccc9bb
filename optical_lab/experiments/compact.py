"""Compact results folders in place without losing a byte a re-analysis needs: ``optical-lab results compact``.

A finished grid is thousands of small text files (per-query scores, training logs, the code-switch dictionary
of every seed). Compaction stores each of them in the form :mod:`optical_lab.io` reads back exactly
(:func:`~optical_lab.io.read_bytes`; every reader of results goes through it):

* ``*.per_query.csv``, ``*.tsv``, ``*.qrels``, ``*.log``, ``*.txt`` (``/usr/bin/time`` reports), and a finished
  cell's own ``config.json`` and ``train_summary.json`` →
  ``<name>.xz`` (the same bytes inside);
* a finished cell's ``*.per_query.csv`` → ``<name>.keyed.xz``: its scores, with its first column (the query ids,
  the same in every cell scored on those queries) stored once as a blob (:func:`~optical_lab.columns.split_key_column`);
* a finished cell's ``config.json`` → ``<name>.tree.xz`` when it holds the comparison's plan, the data files'
  hashes or the training configuration (:data:`SHARED_SUBTREES`): those stored once each as blobs
  (:func:`~optical_lab.columns.split_subtrees`), and its ``cell`` record, which is the cell's ``done.json`` less its
  fingerprint (:data:`SIBLINGS`), as a reference to that file checked by its SHA-256 (``done.json`` stays plain);
* ``*.jsonl`` (training logs) → ``<name>.cols.xz``, column by column, each in the smallest form that reads back
  exactly (:func:`~optical_lab.columns.encode_columns`; plain ``.xz`` when that would not give back the same bytes);
* content shared by cells — every ``dictionary.tsv`` (:data:`SHARED`), and any other compactable file of at
  least :data:`BLOB_MIN_BYTES` whose bytes occur more than once in the folder (e.g. the per-query scores of the
  zero-shot cells, the same for every seed) — → ``<name>.ref`` naming ``<folder>/blobs/<sha256>.xz``, stored once.

Everything a person reads first stays plain: ``done.json`` (what marks a cell finished: resume and the cell
fingerprints read it), summaries, ``analysis.json``, ``plan.json``, environment and provenance records,
markdown. Each stored form is read back and compared with the original before the original is removed, so an
interrupted compaction leaves both (readers prefer the plain file) and running it again finishes the job:
compaction is idempotent. It refuses a folder that a run is writing (any :class:`~.records.FolderLock`
under it held). New cells are compacted by the runner and the sweep as they finish (:func:`compact_cell`).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..columns import encode_columns_checked, split_key_column, split_subtrees
from ..data.errors import DataError
from ..io import (
    BLOBS,
    COLUMNS,
    KEYED,
    REF,
    STORED_SUFFIXES,
    TREE,
    XZ,
    atomic_write,
    decode_stored,
    logical_path,
    read_bytes,
    sha256_bytes,
    stored_exists,
    stored_glob,
    xz_bytes,
)
from .records import FolderLock

SHARED = frozenset({"dictionary.tsv"})
CELL_MARKER = "done.json"
CELL_FILES = frozenset({"config.json", "train_summary.json"})  # compacted in a finished cell (elsewhere: read first)
PER_QUERY = ".per_query.csv"
# a cell's config.json: the comparison's plan (every cell's), the data files' hashes (every cell's of a language) and
# the training configuration (every language's cell of an arm and seed; a sweep setting's on every language)
SHARED_SUBTREES = {"config.json": (("plan",), ("cell", "inputs"), ("train",))}  # stored once each, as blobs
# a subtree of a cell's file that another file of the cell holds whole: (path, that file); the runner writes a
# grid cell's record into config.json ("cell") and done.json (with the fingerprint): kept once, in done.json
SIBLINGS = {"config.json": (("cell",), CELL_MARKER)}
COMPRESSED_SUFFIXES = (".per_query.csv", ".tsv", ".qrels", ".log", ".txt", ".jsonl")
BLOB_MIN_BYTES = 4096  # a smaller file found twice stays in its cell (a reference would save little, hide much)


@dataclass
class Compaction:
    """What one compaction did: files stored per form, bytes before and after."""

    files: Counter = field(default_factory=Counter)
    bytes_before: int = 0
    bytes_after: int = 0

    def add(self, other: "Compaction") -> None:
        self.files.update(other.files)
        self.bytes_before += other.bytes_before
        self.bytes_after += other.bytes_after

    def line(self) -> str:
        forms = ", ".join(f"{n} {form}" for form, n in sorted(self.files.items())) or "nothing to do"
        return f"{forms}: {self.bytes_before / 2**20:.2f} MiB -> {self.bytes_after / 2**20:.2f} MiB"


def is_cell(folder: Path) -> bool:
    """A finished cell: a ``done.json`` beside what it measured (a training log or per-query scores)."""
    return (folder / CELL_MARKER).is_file() and (
        stored_exists(folder / "train_log.jsonl") or any(folder.glob("*.per_query.csv*"))
    )


def compactable(path: Path) -> bool:
    """Whether ``path`` (a plain file) is stored compacted: see the module doc."""
    if path.name in CELL_FILES:
        return is_cell(path.parent)
    return path.name.endswith(COMPRESSED_SUFFIXES)


def _store(path: Path, stored: Path, content: bytes, data: bytes) -> int:
    """Write ``content`` to ``stored`` unless it holds it already, check it reads back as ``data``, remove
    ``path`` and any other stored form of it (an older layout's, from before the cell was recomputed: a reader
    would take it first); the bytes ``stored`` takes (0 for a reference to a blob written before)."""
    if not (stored.is_file() and stored.read_bytes() == content):
        atomic_write(stored, lambda handle: handle.write(content))
    if decode_stored(stored) != data:
        raise DataError(
            f"compacting {path}: {stored.name} does not read back as the original",
            fix="report this bug; the original file was kept",
        )
    for stale in (path.with_name(path.name + suffix) for suffix in STORED_SUFFIXES):
        if stale != stored and stale.is_file():
            stale.unlink()
    path.unlink()
    return len(content)


def compact_file(path: Path, blobs: Path, shared: bool = False) -> Compaction:
    """Store one plain file compacted (``shared``: as a reference to a blob under ``blobs``)."""
    data = path.read_bytes()
    done = Compaction(bytes_before=len(data))
    if shared:
        digest, done.bytes_after = _blob(blobs, data)
        reference = (f'{{"sha256": "{digest}", "bytes": {len(data)}}}\n').encode()
        done.bytes_after += _store(path, path.with_name(path.name + REF), reference, data)
        done.files["blob references"] += 1
        return done
    suffix, content, shared_parts = compacted_form(path.name, data, in_cell=is_cell(path.parent), beside=path.parent)
    done.bytes_after += sum(_blob(blobs, part)[1] for part in shared_parts)
    done.bytes_after += _store(path, path.with_name(path.name + suffix), content, data)
    done.files[suffix.lstrip(".")] += 1
    return done


def compacted_form(name: str, data: bytes, in_cell: bool, beside: Path | None = None) -> tuple[str, bytes, list[bytes]]:
    """How a file called ``name`` holding ``data`` is stored when no other file shares it whole: the stored file's
    suffix and bytes, and the parts it names as blobs (a cell's per-query ids, its config's plan, data hashes and
    training configuration). ``beside``: the folder it is in, whose files it may refer to (:data:`SIBLINGS`).
    What :func:`compact_file` writes and :mod:`.committed_size` measures."""
    split = split_key_column(data) if name.endswith(PER_QUERY) and in_cell else None
    if split is not None:
        keys, rest = split
        head = f'{{"key_sha256": "{sha256_bytes(keys)}", "key_bytes": {len(keys)}}}\n'.encode()
        return KEYED, xz_bytes(head + rest), [keys]
    tree = (
        split_subtrees(data, SHARED_SUBTREES[name], _sibling(name, beside))
        if name in SHARED_SUBTREES and in_cell
        else None
    )
    if tree is not None:
        return TREE, xz_bytes(tree[0]), tree[1]
    columns = encode_columns_checked(data) if name.endswith(".jsonl") else None
    return (COLUMNS, xz_bytes(columns), []) if columns is not None else (XZ, xz_bytes(data), [])


def _sibling(name: str, beside: Path | None) -> tuple[tuple[str, ...], str, bytes] | None:
    """``(path, file, its bytes)`` of the subtree of ``name`` another file in ``beside`` may hold (:data:`SIBLINGS`)."""
    if name not in SIBLINGS or beside is None or not (beside / SIBLINGS[name][1]).is_file():
        return None
    path, other = SIBLINGS[name]
    return path, other, (beside / other).read_bytes()


def _blob(blobs: Path, data: bytes) -> tuple[str, int]:
    """Store ``data`` once as ``blobs/<sha256>.xz``: its SHA-256 and the bytes written (0 when it was there)."""
    digest = sha256_bytes(data)
    blob = blobs / f"{digest}{XZ}"
    if blob.is_file():
        return digest, 0
    content = xz_bytes(data)
    atomic_write(blob, lambda handle: handle.write(content))
    return digest, len(content)


def compact_cell(folder: str | Path, blobs: str | Path) -> Compaction:
    """Compact one finished cell (the runner and the sweep call it right after its ``done.json``)."""
    folder, done = Path(folder), Compaction()
    for path in sorted(p for p in folder.iterdir() if p.is_file() and compactable(p)):
        done.add(compact_file(path, Path(blobs), shared=path.name in SHARED))
    return done


def candidates(folder: Path) -> Iterator[Path]:
    """Every plain compactable file under ``folder``, outside ``blobs/`` and unfinished cells (a cell without
    ``done.json`` may still be training: its log is left to the trainer)."""
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or BLOBS in path.relative_to(folder).parts or not compactable(path):
            continue
        training = (path.parent / "train_log.jsonl").is_file() and not (path.parent / CELL_MARKER).is_file()
        if not training:
            yield path


@contextlib.contextmanager
def quiet_folder(folder: Path) -> Iterator[None]:
    """Hold every :class:`~.records.FolderLock` under ``folder`` (its own and its cells'), or refuse at once
    naming the run that holds one: a folder being written is never compacted."""
    held: list[FolderLock] = []
    try:
        for lock_file in [folder / FolderLock.NAME, *sorted(folder.rglob(FolderLock.NAME))]:
            if any(lock.path == lock_file for lock in held):
                continue
            try:
                held.append(FolderLock(lock_file.parent).acquire())
            except DataError as exc:
                raise DataError(
                    f"{folder} is being written: {exc}", fix="compact it once the run has finished"
                ) from None
        yield
    finally:
        for lock in reversed(held):
            lock.release()


def compact_folder(folder: str | Path) -> Compaction:
    """Compact a results folder in place (see the module doc); its shared content goes to ``<folder>/blobs``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a results folder", fix="name a folder under results/, e.g. results/v2-minilm")
    done = Compaction()
    with quiet_folder(folder):
        paths = list(candidates(folder))
        digests = {path: sha256_bytes(path.read_bytes()) for path in paths}
        # content already stored as a blob (an earlier compaction) is shared too, so a file identical to it joins it
        counts = Counter(digests.values()) + Counter(p.name[: -len(XZ)] for p in (folder / BLOBS).glob(f"*{XZ}"))
        for path in paths:
            repeated = counts[digests[path]] > 1 and path.stat().st_size >= BLOB_MIN_BYTES
            done.add(compact_file(path, folder / BLOBS, shared=path.name in SHARED or repeated))
    return done


def expand_folder(folder: str | Path) -> int:
    """Undo compaction in place: every stored file under ``folder`` back to its plain form and every ``blobs/``
    removed (what :func:`compact_folder` starts from; ``scripts/check_compaction.py selftest --relayout`` compacts
    committed results again in the current layout so). Returns the number of files expanded."""
    folder = Path(folder)
    with quiet_folder(folder):
        stored = [
            path
            for path in sorted(folder.rglob("*"))
            if path.is_file() and BLOBS not in path.relative_to(folder).parts and path.name.endswith(STORED_SUFFIXES)
        ]
        for path in stored:
            data = decode_stored(path)
            atomic_write(logical_path(path), lambda handle, data=data: handle.write(data))
        for path in stored:
            path.unlink()
        for blobs in sorted(folder.rglob(BLOBS), reverse=True):
            shutil.rmtree(blobs)
    return len(stored)


def logical_manifest(folder: str | Path) -> dict[str, str]:
    """SHA-256 of what every logical file under ``folder`` reads back as (:func:`~optical_lab.io.read_bytes`),
    by relative logical path: the same before and after compaction when compaction loses nothing."""
    folder = Path(folder)
    paths = stored_glob(folder, "*", recursive=True)
    return {
        p.relative_to(folder).as_posix(): sha256_bytes(read_bytes(p))
        for p in paths
        if BLOBS not in p.relative_to(folder).parts and p.name != FolderLock.NAME
    }


# ---------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    compact = sub.add_parser(
        "compact",
        help="store a results folder compactly, in place (idempotent; every number reads back unchanged)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compact.add_argument(
        "folders", nargs="+", type=Path, help="results folders, e.g. results/v2-minilm (each gets its own blobs/)"
    )
    cat = sub.add_parser("cat", help="print a stored result file by its logical name (e.g. <cell>/train_log.jsonl)")
    cat.add_argument("path", type=Path, help="the file's logical name, e.g. results/v2-minilm/runs/.../train_log.jsonl")


def main(args: argparse.Namespace) -> None:
    if args.action == "cat":
        print(read_bytes(args.path).decode("utf-8"), end="")
        return
    for folder in args.folders:
        print(f"{folder}: {compact_folder(folder).line()}")
