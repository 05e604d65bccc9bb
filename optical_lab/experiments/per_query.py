"""A comparison's finished cells as tables: every cell's record (:func:`cell_records`), its training steps
(:func:`train_steps`) and the long per-query table (:func:`load_per_query`) that every statistic of
:mod:`.summary`, the size curve, the protocol-v2/v3 analyses and the figures start from. Reading only: nothing
here computes a statistic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from ..io import open_stored, read_json, read_jsonl, stored_exists, stored_glob


def cell_records(folder: str | Path, name: str) -> Iterator[tuple[Path, dict[str, Any]]]:
    """``(path, parsed JSON)`` of the file ``name`` (``done.json``, ``train_summary.json``) in every
    cell folder ``<folder>/<lang>/<method>/<fold-seed>/``."""
    for path in stored_glob(folder, f"*/*/*/{name}"):
        yield path, read_json(path)


def train_steps(folder: str | Path, method: str | None = None) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """``(done.json record, its training steps)`` of every finished cell under ``folder`` (of ``method`` only,
    when given) that kept a training log: the ``"train"`` events of its ``train_log.jsonl``, plain or compacted."""
    for done, info in cell_records(folder, "done.json"):
        log = done.parent / "train_log.jsonl"
        if (method is None or info["method"] == method) and stored_exists(log):
            yield info, [r for r in read_jsonl(log) if r.get("event") == "train"]


def load_per_query(cells_root: str | Path, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """Long per-query table from every finished cell under ``cells_root`` (``<lang>/<method>/fold<k>-seed<s>``).

    ``extra`` names further fields of each cell's ``done.json`` to copy into columns (e.g. ``size``).

    >>> import pathlib
    >>> import optical_lab
    >>> from optical_lab import load_per_query
    >>> runs = pathlib.Path(optical_lab.__file__).parents[1] / "results" / "compare-minilm" / "runs"  # committed
    >>> table = load_per_query(runs)
    >>> list(table.columns[:7])
    ['lang', 'method', 'fold', 'seed', 'task', 'qid', 'MRR@10']
    >>> means = table.query("task == 'clir'").groupby("method")["MRR@10"].mean()
    >>> bool(means["zero-shot"] > 0), "optical" in means
    (True, True)
    """
    frames = []
    for done, info in cell_records(cells_root, "done.json"):
        for csv in stored_glob(done.parent, "*.per_query.csv"):
            table = pd.read_csv(open_stored(csv), dtype={"qid": str})
            table.insert(0, "task", csv.name.split(".")[0])
            for column in extra:
                table[column] = info.get(column)
            for column, value in (
                ("seed", info["seed"]),
                ("fold", info["fold"]),
                ("method", info["method"]),
                ("lang", info["lang"]),
            ):
                table.insert(0, column, value)
            frames.append(table)
    if not frames:
        raise FileNotFoundError(f"no finished cells under {cells_root}")
    return pd.concat(frames, ignore_index=True)
