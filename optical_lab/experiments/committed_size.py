"""What a grid not run yet will add to git, measured by compacting committed results in the current layout.

:func:`.compute_plan.plan_grid` prices a described grid (protocol v3) before it exists. Its committed size
(:func:`committed_bytes`) is not read off the stored files (they may be in an older, larger layout) but measured
by storing committed files again, in memory, the way :func:`.compact.compacted_form` stores a new cell's now:

* **training logs** — bytes per log and per training step of each arm's finished logs (:func:`log_rates`: a log
  of the grid's length priced at that length), taken from the
  first folder that has finished cells of that arm (the grid's own folder first: a v3 log has v3's columns and
  length), at most :data:`LOG_SAMPLE` logs per arm spread over its languages, each as the trainer writes it now:
  its steps' diagnostics at the log's declared precision (:func:`~optical_lab.methods.train_state.logged_lines`;
  a log written at that precision is unchanged by it);
* **per-query scores** — for every sub-task of the grid's evaluation tasks and every language, the committed
  per-query files of that sub-task and language in any results folder (a zero-shot evaluation, an older grid):
  what a cell keeps (the scores) and what is stored once per sub-task and language (the query ids)
  (:func:`per_query_sizes`); a language the task's data lacks has no file, one no committed result covers is
  priced at the median of its sub-task's languages;
* **a cell's records** — ``done.json`` (plain), ``config.json`` and ``train_summary.json`` (compacted, beside the
  cell's ``done.json``: a grid cell's ``config.json`` refers to it for its ``cell`` record) of the reference's grid
  cells and of sweep runs (the grid's own sweep first) (:func:`record_sizes`); what they store once as blobs (the
  plan, a training configuration) priced once per trained arm and seed (grid) or per setting (sweep);
* **the folder's own files** — summaries, analyses, logs, run records: the reference's (:func:`folder_bytes`).
"""

from __future__ import annotations

import json
import lzma
import statistics
from pathlib import Path
from typing import Any, Iterable

from ..columns import SIBLING_KEY
from ..io import BLOBS, read_bytes, read_json, stored_exists, stored_form, stored_glob, xz_bytes
from ..methods.registry import METHODS
from ..methods.train_state import LOG_DIGITS, logged_lines
from ..tasks.registry import TASKS
from .compact import compacted_form

LOG_SAMPLE = 8  # finished logs per arm whose compacted size is measured (re-encoding every log takes minutes)
PER_QUERY_SAMPLE = 4  # committed per-query files per (sub-task, language) measured
RECORD_SAMPLE = 32  # finished cells whose records are measured
PER_QUERY = ".per_query.csv"
RECORDS = ("done.json", "config.json", "train_summary.json")  # a finished cell's records besides what it measured


def method_of(path: Path, root: Path) -> str | None:
    """The method of a cell's file: ``runs/<lang>/<method>/<cell>`` or ``sweep/<method>/<setting>``."""
    for part in path.relative_to(root).parts:
        if part.split("@")[0] in METHODS:
            return part.split("@")[0]
    return None


def _spread(paths: list[Path], count: int) -> list[Path]:
    """At most ``count`` of ``paths`` (sorted), evenly spaced: every language and seed has its turn."""
    return paths[:: max(1, len(paths) // count)][:count]


def stored_bytes(name: str, data: bytes, in_cell: bool = True) -> int:
    """Bytes the file ``name`` holding ``data`` takes in a cell once compacted now (a blob it names not counted)."""
    return len(compacted_form(name, data, in_cell)[1])


def log_rates(folders: Iterable[Path], arms: list[str]) -> dict[str, dict[str, Any]]:
    """Per arm: compacted training-log bytes, from the first of ``folders`` with finished logs of that arm, as
    ``bytes_per_log`` + ``bytes_per_step`` x steps: the bytes a step adds (measured between each log's first half
    and the whole log) and what a log takes whatever its length (its header, xz's own), so a log of another length
    than the measured ones (a v3 cell runs to 1000 steps, a v2 log has 300) is priced at its length; also
    ``mean_bytes_per_step`` (of the measured logs), ``logs`` measured, ``steps``, ``folder``. An arm none has is
    absent."""
    folders = [Path(f) for f in folders if Path(f).is_dir()]
    logs = {
        folder: [
            log
            for log in stored_glob(folder, "train_log.jsonl", recursive=True)
            if (log.parent / "done.json").is_file()
        ]
        for folder in folders
    }
    rates = {}
    for arm in arms:
        for folder in folders:
            mine = _spread([log for log in logs[folder] if method_of(log, folder) == arm], LOG_SAMPLE)
            if mine:
                rates[arm] = {**_log_bytes([logged_lines(read_bytes(log)) for log in mine]), "folder": str(folder)}
                break
    return rates


def _log_bytes(data: list[bytes]) -> dict[str, Any]:
    """:func:`log_rates`' measures of the logs ``data`` (each as the trainer writes it now)."""

    def measure(logs: list[bytes]) -> tuple[int, int]:
        return sum(stored_bytes("train_log.jsonl", d) for d in logs), sum(d.count(b'"event": "train"') for d in logs)

    (stored, steps), (half, half_steps) = measure(data), measure([_first_half(d) for d in data])
    per_step = (stored - half) / max(1, steps - half_steps)
    per_log = (stored - per_step * steps) / len(data)
    if per_log < 0:  # a step costs more in a log's second half than on average: no fixed part, the mean
        per_step, per_log = stored / max(1, steps), 0.0
    return {
        "bytes_per_step": per_step,
        "bytes_per_log": per_log,
        "mean_bytes_per_step": stored / max(1, steps),
        "logs": len(data),
        "steps": steps,
    }


def _first_half(data: bytes) -> bytes:
    lines = data.splitlines(keepends=True)
    return b"".join(lines[: len(lines) // 2])


def per_query_sizes(results: Path, langs_of: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """Per sub-task (``langs_of``: sub-task -> the languages it is evaluated on): per language, the median bytes a
    cell keeps of its per-query file (``cell``) and the bytes of its query ids stored once (``ids``), measured on
    committed files under ``results``; ``unmeasured``: languages no committed file covers (priced at the
    sub-task's median language)."""
    languages = {lang for langs in langs_of.values() for lang in langs}
    found: dict[tuple[str, str], list[Path]] = {}
    for path in stored_glob(results, f"*{PER_QUERY}", recursive=True):
        parts = path.relative_to(results).parts
        lang = next((p for p in parts if p in languages), None)
        if lang is not None and BLOBS not in parts:
            found.setdefault((path.name.removesuffix(PER_QUERY), lang), []).append(path)
    sizes: dict[str, dict[str, Any]] = {}
    for sub, langs in langs_of.items():
        measured = {}
        for lang in langs:
            files = [_split_sizes(path) for path in _spread(found.get((sub, lang), []), PER_QUERY_SAMPLE)]
            if files:
                measured[lang] = {k: statistics.median(f[k] for f in files) for k in ("cell", "ids")}
        if not measured:
            continue
        typical = {k: statistics.median(m[k] for m in measured.values()) for k in ("cell", "ids")}
        sizes[sub] = {
            "by_lang": {lang: measured.get(lang, typical) for lang in langs},
            "unmeasured": [lang for lang in langs if lang not in measured],
        }
    return sizes


def _split_sizes(path: Path) -> dict[str, int]:
    _, content, shared = compacted_form(path.name, read_bytes(path), in_cell=True)
    return {"cell": len(content), "ids": sum(len(compacted_form("ids", part, False)[1]) for part in shared)}


def record_sizes(folders: Iterable[Path], part: str) -> dict[str, Any] | None:
    """Median bytes per finished cell under ``<folder>/<part>`` of each of :data:`RECORDS` as a cell stores it
    now (``done.json`` plain, the others compacted; ``<name> blobs``: what it stores once as blobs, shared with
    other cells), from the first folder with such cells, and the median ``done.json`` itself (``median_done``);
    None when none has."""
    for folder in folders:
        cells = _spread(sorted(done.parent for done in Path(folder).glob(f"{part}/**/done.json")), RECORD_SAMPLE)
        if not cells:
            continue
        sizes = {}
        for name in RECORDS:
            present = [cell / name for cell in cells if stored_form(cell / name) is not None]
            if name == "done.json":
                texts = sorted((read_bytes(p).decode("utf-8") for p in present), key=len)
                median_done = texts[len(texts) // 2]
                sizes[name] = len(median_done.encode("utf-8"))
            else:
                forms = [compacted_form(name, read_bytes(p), True, p.parent) for p in present] or [("", b"", [])]
                sizes[name] = statistics.median(len(content) for _, content, _ in forms)
                if name == "config.json":  # its cell record a reference to done.json: it grows with done.json only
                    sizes["config.json refers to done.json"] = all(
                        SIBLING_KEY.encode() in lzma.decompress(content) for _, content, _ in forms if content
                    )
                sizes[f"{name} blobs"] = statistics.median(
                    sum(len(xz_bytes(b)) for b in shared) for _, _, shared in forms
                )
        return {"bytes": sizes, "cells_measured": len(cells), "folder": str(folder), "median_done": median_done}
    return None


def folder_bytes(folder: Path) -> int:
    """Bytes of what a results folder stores outside its cells and ``blobs/``: summaries, analyses, run logs and
    records (as stored)."""
    cells = {done.parent for done in folder.rglob("done.json")}
    return sum(
        path.stat().st_size
        for path in folder.rglob("*")
        if path.is_file() and BLOBS not in path.relative_to(folder).parts and not cells.intersection(path.parents)
    )


def committed_bytes(grid: Any, steps: dict[str, int], task_factor: float) -> dict[str, Any]:
    """Bytes a described grid (a :class:`.compute_plan.GridDescription`) adds to git, by part, for ``steps``
    training steps per trained arm and evaluation ``task_factor`` times the reference's; ``assumed``: what the
    measurement could not see."""
    reference, own = Path(grid.reference), Path(grid.folder) if grid.folder else None
    proxies, folders = dict(grid.same_rate_as), [f for f in (own, reference) if f is not None]
    trained = list(steps)
    logs = log_rates(folders, list(dict.fromkeys([*trained, *proxies.values()])))
    evaluated = {task: [lang for lang in grid.langs if not TASKS[task]().unavailable(lang)] for task in grid.eval_tasks}
    per_query = per_query_sizes(reference.parent, {s: evaluated[t] for t in grid.eval_tasks for s in TASKS[t].reported})
    cells, sweep = _record_bytes(folders, "runs"), _record_bytes(folders, "sweep")
    assumed = [
        "committed size measured by storing committed files again as compaction stores a new cell now: "
        + ", ".join(
            f"{arm} logs {r['bytes_per_log']:.0f} B + {r['bytes_per_step']:.1f} B/step ({r['logs']} logs of "
            f"{r['folder']}, {r['mean_bytes_per_step']:.1f} B/step at their length)"
            for arm, r in logs.items()
        ),
        f"training logs as the trainer writes them now: a step's diagnostics (loss, its terms, gradient norm, "
        f"seconds, OT plan indicators) at {LOG_DIGITS} significant digits, the reference logs rounded so "
        "(counts, lr and dev scores exact)",
        *[f"{arm}'s log at {proxy}'s bytes per step" for arm, proxy in proxies.items() if arm not in logs],
        *[
            f"{sub} on {', '.join(p['unmeasured'])}: no committed scores, priced at its median language"
            for sub, p in per_query.items()
            if p["unmeasured"]
        ],
        *[
            f"{task} not evaluated on {', '.join(sorted(set(grid.langs) - set(langs)))} (the data folder lacks them)"
            for task, langs in evaluated.items()
            if len(langs) < len(grid.langs)
        ],
        *[
            f"{sub}: no committed scores on any of its languages, not priced"
            for task in grid.eval_tasks
            for sub in TASKS[task].reported
            if sub not in per_query
        ],
        f"a grid cell's done.json and config.json: {cells['folder']}'s, their metrics and inputs {task_factor:.2f}x "
        "larger (as many more tasks; config.json refers to done.json for them)",
        "zero-shot cells' scores stored per seed (compact_folder later shares identical files)",
        f"dictionaries (blobs): {reference}'s, per language; summaries, logs and run records: {reference}'s",
    ]
    logs_per_arm = len(grid.langs) * grid.seeds + grid.sweep_settings * grid.sweep_langs  # grid cells + sweep runs
    rate_of = {arm: logs.get(arm, logs.get(proxies.get(arm, ""), {})) for arm in trained}
    log_bytes = sum(
        steps[arm] * rate_of[arm].get("bytes_per_step", 0) + logs_per_arm * rate_of[arm].get("bytes_per_log", 0)
        for arm in trained
    )
    cells_per_lang = grid.seeds * len(grid.arms)
    scores = sum(cells_per_lang * size["cell"] for p in per_query.values() for size in p["by_lang"].values())
    ids = sum(size["ids"] for p in per_query.values() for size in p["by_lang"].values())
    sweep_runs = grid.sweep_settings * grid.sweep_langs * len(trained)
    done_growth = _done_growth(cells, task_factor)
    record = cells["bytes"]
    refers = record.get("config.json refers to done.json")  # then only done.json grows with the tasks
    cell_rest = record["config.json"] * (1 if refers else done_growth) + record["train_summary.json"]
    saved = read_json(reference / "config.json") if stored_exists(reference / "config.json") else {}
    blobs = sum(p.stat().st_size for p in (reference / BLOBS).glob("*")) if (reference / BLOBS).is_dir() else 0
    parts = {
        "train_logs": log_bytes,
        "per_query_scores": scores,
        "query_ids_once": ids,
        "cell_records": len(grid.langs) * cells_per_lang * (record["done.json"] * done_growth + cell_rest),
        # a cell's blobs (the plan, its training configuration) once per trained arm and seed: every language's
        "cell_records_shared": len(trained) * grid.seeds * record.get("config.json blobs", 0),
        # a sweep setting's training configuration, once for its languages
        "sweep_records": sweep_runs
        * (
            sum(n for name, n in sweep["bytes"].items() if name in RECORDS)
            + sweep["bytes"].get("config.json blobs", 0) / max(1, grid.sweep_langs)
        ),
        "folder_records": folder_bytes(reference),
        "dictionary_blobs": blobs * len(grid.langs) / max(1, len(saved.get("langs", [])) or 1),
    }
    return {
        "parts": parts,
        "log_rates": logs,
        "per_query": per_query,
        "cell_records": cells,
        "sweep_records": sweep,
        "done_growth": round(done_growth, 3),  # the reference's median done.json: cells["median_done"]
        "assumed": assumed,
    }


def _record_bytes(folders: list[Path], part: str) -> dict[str, Any]:
    return record_sizes(folders, part) or {
        "bytes": dict.fromkeys(RECORDS, 0),
        "folder": "none",
    }


def _done_growth(cells: dict[str, Any], task_factor: float) -> float:
    """How much larger a grid cell's ``done.json`` gets when its ``metrics`` and ``inputs`` (the data files' hashes)
    grow with the number of tasks, measured on the reference cell with the median ``done.json``."""
    done = cells.get("median_done")
    if not done:
        return 1.0
    record = json.loads(done)
    rest = len(json.dumps({k: v for k, v in record.items() if k not in ("metrics", "inputs")}, indent=2))
    return (rest + (len(done) - rest) * task_factor) / len(done)
