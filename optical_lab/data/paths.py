"""Where the data lives, resolved at run time (data is never part of the repository).

Order: ``$OPTICAL_LAB_DATA`` -> ``../shared/data`` beside the checkout -> the user cache
(``$OPTICAL_LAB_CACHE`` or ``~/.cache/optical_lab``)``/data``, which ``optical-lab data fetch``
fills from the upstream GitHub files.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import DataError

DATA_ENV = "OPTICAL_LAB_DATA"
CACHE_ENV = "OPTICAL_LAB_CACHE"
REPO_ROOT = Path(__file__).resolve().parents[2]
_SUBFOLDERS = ("ntrex-128", "mafand-mt", "qald-9-plus")


def cache_dir() -> Path:
    """User cache for fetched data and built models."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "optical_lab")


def candidate_data_dirs() -> list[tuple[str, Path]]:
    """(how it was found, folder) in priority order."""
    found = []
    if os.environ.get(DATA_ENV):
        found.append((f"${DATA_ENV}", Path(os.environ[DATA_ENV])))
    for base in (Path.cwd(), REPO_ROOT):
        found.append(("../shared/data beside the checkout", (base / ".." / "shared" / "data").resolve()))
    found.append(("user cache", cache_dir() / "data"))
    return found


def data_dir(subfolder: str | None = None) -> Path:
    """The first data directory that exists (and holds ``subfolder`` when given)."""
    for how, folder in candidate_data_dirs():
        if how.startswith("$") and not folder.is_dir():
            raise DataError(
                f"${DATA_ENV} points to {folder}, which is not a directory",
                fix=f"set {DATA_ENV} to the folder holding ntrex-128/, mafand-mt/, qald-9-plus/, or unset it",
            )
        if folder.is_dir() and (subfolder is None or (folder / subfolder).is_dir()):
            return folder
    tried = "\n".join(f"    - {folder} ({how})" for how, folder in candidate_data_dirs())
    raise DataError(
        f"no data directory{' with ' + subfolder + '/' if subfolder else ''} found; looked in:\n{tried}",
        fix=f"run `optical-lab data fetch` (downloads to the user cache), or set {DATA_ENV}=/path/to/data",
    )
