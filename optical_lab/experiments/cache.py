"""One fingerprinted-folder cache: a folder holds one finished result, keyed by a fingerprint, and
``done.json``, written last, says it is finished.

Every result that is served again instead of recomputed lives in such a folder: a comparison cell
(:mod:`.runner`, keyed by :func:`.identity.cell_fingerprint`), a sweep setting, a student trained
outside a comparison (:mod:`.students`), an evaluation (:mod:`.evaluate`). The rules, once:

* one process at a time works in the folder (:meth:`ResultFolder.lock`: its
  :class:`~.records.FolderLock`; ``wait`` > 0 for a cache several processes fill alike, so the second
  finds what the first wrote);
* :meth:`ResultFolder.read` returns the finished record (``done.json``), None while the folder is
  unfinished, and refuses (:class:`~optical_lab.data.errors.DataError`) a record finished under another
  fingerprint: serving it would mix the numbers of two setups;
* :meth:`ResultFolder.finish` writes the record, with its fingerprint, to ``done.json`` after every
  other file, so a killed process leaves an unfinished folder, never a half-written result;
  :meth:`ResultFolder.reopen` makes a finished folder unfinished again before it is recomputed;
* a one-shot command's folder (``evaluate``, ``qald``: a finished one is never served, only refused) may be
  written when :meth:`ResultFolder.check_restartable` allows it: nothing finished there, and a crashed run of
  the same settings at most (then it restarts, overwriting every file).

A sweep setting, for example::

    cell = ResultFolder(out / method / slug, config.fingerprint(), what="a sweep cell",
                        fix="sweep into another --out folder")
    info = cell.read()
    if info is None:
        ...  # train, writing into cell.folder
        info = cell.finish({"best_dev_mrr": ..., ...})
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..data.errors import DataError
from ..io import to_jsonable, write_json
from .records import DONE_NAME, FolderLock, read_done


def fingerprint_of(settings: dict[str, Any]) -> str:
    """A folder's key: 12 hex digits of SHA-1 over ``settings`` as sorted JSON (other values by ``str``)."""
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass
class ResultFolder:
    """``folder`` as the cache of the result whose configuration hashes to ``fingerprint``."""

    folder: Path
    fingerprint: str
    what: str = "results"  # in the refusal: "<folder> holds <what> of another configuration"
    fix: str = "write to another --out folder, or delete this one to recompute it"
    explain: Callable[[str | None], str] | None = None  # the saved fingerprint -> why it differs (appended)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)

    @property
    def done(self) -> Path:
        return self.folder / DONE_NAME

    def lock(self, wait: float = 0.0) -> FolderLock:
        """The folder's lock (``with cache.lock(): ...``), created with the folder."""
        return FolderLock(self.folder, wait=wait)

    def read(self) -> dict[str, Any] | None:
        """The finished record; None when unfinished; a :class:`DataError` when finished under another
        fingerprint (or a damaged ``done.json``, named)."""
        info = read_done(self.folder)
        if info is None:
            return None
        if info.get("fingerprint") != self.fingerprint:
            hint = self.explain(info.get("fingerprint")) if self.explain else ""
            raise DataError(f"{self.folder} holds {self.what} of another configuration{hint}", fix=self.fix)
        return info

    def finish(self, record: dict[str, Any]) -> dict[str, Any]:
        """``record`` with this fingerprint, written to ``done.json``: call it after every other file."""
        record = {**record, "fingerprint": self.fingerprint}  # (a record that has the key keeps its order)
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json(record, self.done)
        return record

    def reopen(self) -> None:
        """Forget the finished result (its ``done.json`` first): what follows recomputes the folder."""
        self.done.unlink(missing_ok=True)

    def check_restartable(self, settings: dict[str, Any], kind: str) -> None:
        """A one-shot command (``evaluate``, ``qald``) may write into the folder when it holds no finished run
        (``done.json``) and, if a crashed run left a ``config.json``, that run had the same ``settings`` (then it
        restarts, overwriting every file). Call it while holding :meth:`lock`."""
        if read_done(self.folder) is not None:
            raise DataError(
                f"{self.folder} already holds {kind} results (a finished run: {DONE_NAME})",
                path=self.done,
                fix="choose another --out folder, or delete this one to recompute it",
            )
        saved = self.folder / "config.json"
        if not saved.exists():
            return
        try:
            previous = json.loads(saved.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            previous = None
        settings = json.loads(json.dumps(to_jsonable(settings)))
        if not isinstance(previous, dict) or any(previous.get(k) != v for k, v in settings.items()):
            raise DataError(
                f"{self.folder} holds an unfinished run of another configuration (or another command)",
                path=saved,
                fix="choose another --out folder, or delete this one",
            )
