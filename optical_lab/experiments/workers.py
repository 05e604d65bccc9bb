"""Several processes on one comparison folder: the folder's lock under data-parallel (:func:`locked`), one
lock per cell (:func:`claim`), and what a ``--join`` worker checks before it helps (:func:`wait_for_plan`).

* ``accelerate launch`` (data-parallel): the main process takes every lock and tells the others
  (``broadcast_object_list``) whether it got it; only it writes.
* ``compare --join``: independent processes share a grid. Each cell is claimed by its folder's
  :class:`~.records.FolderLock`; a worker computes the cells nobody holds, the run that owns the folder
  waits for the others and summarises (:meth:`.runner.Runner.run_variants`). A worker joins only the
  very plan the owner wrote to ``config.json`` (threads and progress bars may differ).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any, Iterator

from accelerate import Accelerator
from accelerate.utils import broadcast_object_list
from tqdm.auto import tqdm

from ..data.errors import DataError
from .records import FolderInUse, FolderLock, refuse_links


@contextlib.contextmanager
def locked(out: Path, accelerator: Accelerator) -> Iterator[None]:
    """Hold the results folder's :class:`~.records.FolderLock` while the body runs (the main
    process takes it; under data-parallel every process learns whether it got it)."""
    lock, failure = FolderLock(out), None
    if accelerator.is_main_process:
        try:
            lock.acquire()
        except DataError as exc:
            failure = exc
    if accelerator.num_processes > 1:
        message = broadcast_object_list([str(failure) if failure else None])[0]
        failure = failure or (DataError(message) if message else None)
    if failure is not None:
        raise failure
    try:
        yield
    finally:
        lock.release()


def claim(folder: Path, out: Path, accelerator: Accelerator) -> FolderLock | bool | None:
    """The cell's lock (its folder's :class:`~.records.FolderLock`), or None when another process
    holds it. Under data-parallel the main process decides for all (True: no lock of our own)."""
    lock = None
    if accelerator.is_main_process:
        refuse_links(folder, root=out)  # a linked cell folder would be written (and emptied) elsewhere
        try:
            lock = FolderLock(folder).acquire()
        except FolderInUse:  # (a folder that cannot be created is an error, not someone else's cell)
            lock = None
    if accelerator.num_processes > 1:
        held = broadcast_object_list([lock is not None])[0]
        return (lock or True) if held else None
    return lock


def joinable(record: dict[str, Any]) -> dict[str, Any]:
    """A plan record as ``--join`` compares it: a worker may use other threads and show no progress bars;
    everything else must be the same plan."""
    plan = {k: v for k, v in json.loads(json.dumps(record, default=str)).items() if k not in ("threads", "kind")}
    plan["train"] = {k: v for k, v in plan.get("train", {}).items() if k != "progress"}
    return plan


def wait_for_plan(out: Path, record: dict[str, Any], join_wait: float, poll_seconds: float) -> None:
    """Return once ``<out>/config.json`` holds the plan ``record`` (waiting up to ``join_wait`` seconds for
    the owner to write it); refuse (:class:`DataError`) a folder without one, or holding another plan. A
    worker only reads that file (written atomically), so it never races the owner for the folder."""
    saved = out / "config.json"
    mine = joinable(record)
    deadline, told = time.monotonic() + join_wait, False
    while True:
        theirs = joinable(json.loads(saved.read_text(encoding="utf-8"))) if saved.exists() else None
        if theirs == mine or time.monotonic() >= deadline:
            break
        if not told:
            told = True
            tqdm.write(
                f"--join: waiting up to {join_wait:.0f} s for {saved} to hold this plan "
                f"({'it does not exist yet' if theirs is None else 'it holds another plan'})"
            )
        time.sleep(min(poll_seconds, 5.0))
    if theirs is None:
        raise DataError(
            f"{out} holds no comparison to join (no config.json)",
            fix="start the comparison without --join first; workers join it while it runs "
            "(--join-wait SECONDS: wait for it)",
        )
    if mine != theirs:
        differ = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
        raise DataError(
            f"--join: this plan differs from the comparison in {out} in {', '.join(differ)}",
            fix="give the worker exactly the command line of the run it joins (threads may differ)",
        )
