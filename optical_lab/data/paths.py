"""Where the data lives, resolved at run time (data is never part of the repository).

Order: ``$OPTICAL_LAB_DATA`` -> ``../shared/data`` beside the checkout -> the user cache
(``$OPTICAL_LAB_CACHE`` or ``~/.cache/optical_lab``)``/data``, which ``optical-lab data fetch``
fills from the upstream GitHub files.

``$OPTICAL_LAB_DATA`` is an explicit choice, so it is never silently skipped: when it is set, it
must be a folder holding at least one dataset folder (and the asked one, when a loader asks for
one), otherwise the run stops with a clear error instead of quietly reading ``../shared/data``
(a user who points at their own data must never be evaluated on someone else's).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import sources
from .errors import DataError

DATA_ENV = "OPTICAL_LAB_DATA"
CACHE_ENV = "OPTICAL_LAB_CACHE"
REPO_ROOT = Path(__file__).resolve().parents[2]
BUILT_IN_FOLDERS = ("ntrex-128", "mafand-mt", "qald-9-plus", "sib-200", "afriqa")  # then every sources.SOURCES folder


def dataset_folders() -> tuple[str, ...]:
    """The folders a data folder may hold: the built-in datasets' and every declared source's."""
    return (*BUILT_IN_FOLDERS, *(source.folder for source in sources.SOURCES))


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


@dataclass(frozen=True)
class DataSource:
    """The data folder a run read, and how it was chosen (the runner records this with the results)."""

    path: Path
    how: str

    def to_dict(self) -> dict[str, str]:
        return {"data_dir": str(self.path.resolve()), "found_by": self.how}


def _check_env_folder(folder: Path, subfolder: str | None) -> None:
    """``$OPTICAL_LAB_DATA`` must exist and hold data; it never falls through to another folder."""
    folders = dataset_folders()
    keep = f"set {DATA_ENV} to the folder holding {', '.join(f + '/' for f in folders)}, or unset it"
    if not folder.is_dir():
        raise DataError(f"${DATA_ENV} points to {folder}, which is not a directory", fix=keep)
    held = [name for name in folders if (folder / name).is_dir()]
    if not held:
        raise DataError(
            f"${DATA_ENV} points to {folder}, which holds none of the dataset folders ({', '.join(folders)})",
            fix=keep + "; `optical-lab data fetch --dest DIR` fills one",
        )
    if subfolder is not None and subfolder not in held:
        raise DataError(
            f"${DATA_ENV} points to {folder}, which has no {subfolder}/ folder (it holds {', '.join(held)})",
            fix=f"add {subfolder}/ there (`optical-lab data fetch --dest {folder}`), or unset {DATA_ENV}",
        )


def data_source(subfolder: str | None = None) -> DataSource:
    """The data folder to use (holding ``subfolder`` when given) and how it was found."""
    for how, folder in candidate_data_dirs():
        if how.startswith("$"):
            _check_env_folder(folder, subfolder)
            return DataSource(folder, how)
        if folder.is_dir() and (subfolder is None or (folder / subfolder).is_dir()):
            return DataSource(folder, how)
    tried = "\n".join(f"    - {folder} ({how})" for how, folder in candidate_data_dirs())
    raise DataError(
        f"no data directory{' with ' + subfolder + '/' if subfolder else ''} found; looked in:\n{tried}",
        fix=f"run `optical-lab data fetch` (downloads to the user cache), or set {DATA_ENV}=/path/to/data",
    )


def data_dir(subfolder: str | None = None) -> Path:
    """The first data directory that exists (and holds ``subfolder`` when given)."""
    return data_source(subfolder).path
