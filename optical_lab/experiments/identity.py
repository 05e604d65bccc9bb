"""What a cell is: its identity (:func:`cell_fingerprint` + :func:`cell_inputs`), its folder (:func:`cell_folder`)
and every cell a plan runs (:func:`plan_cells`).

A comparison's **cell** is one (language, method, fold, seed[, size]). Its folder
``<out>/runs/<lang>/<method>[@<size>]/fold<k>-seed<s>/`` is a :class:`~.cache.ResultFolder`: finished when
its ``done.json`` (written last) is there, served again only when that record matches both

* the configuration fingerprint (:func:`cell_fingerprint`: a hash of every setting the numbers depend on;
  training settings do not matter for zero-shot), and
* the inputs (:func:`cell_inputs`: a SHA-256 of every data file the cell reads, of the teacher's files, and
  :data:`RESULTS_EPOCH`); :func:`input_changes` says in words what differs.

Where a cell ran (``device``, ``precision``, ``threads``) is provenance, not identity. Running cells:
:mod:`.runner`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..data.collections import LEGACY_FOLD_SCHEME
from ..methods.runtime import resolve_mixed_precision
from ..models.registry import uses_prefixes
from .cache import fingerprint_of
from .plan import ComparePlan

RUNS = "runs"
# Part of every cell's identity: bump it when a code change alters the numbers of a finished cell
# (a fixed bug in an objective, a new metric definition). The git commit and package versions are
# provenance (environment_*.json), not identity: most commits (docs, speed, refactors) leave every
# number unchanged, and must not invalidate committed results.
RESULTS_EPOCH = 1


def cell_fingerprint(plan: ComparePlan, method: str, size: int | None | str = "default") -> str:
    """What a finished cell's numbers depend on; training settings do not matter for zero-shot."""
    data: dict[str, Any] = {
        "task": plan.task,
        "model": plan.model,
        "eval_max_length": plan.eval_max_length,
        "eval_batch_size": plan.eval_batch_size,
        "folds": plan.folds,
        "fold_seed": plan.fold_seed,
        "precision": resolve_mixed_precision(plan.train.mixed_precision),
    }
    if plan.task_options:  # absent when empty: results from before task options keep their fingerprints
        data["task_options"] = plan.task_options
    if plan.eval_tasks:  # likewise for evaluation tasks and the fold scheme (issue #12)
        data["eval_tasks"] = plan.eval_tasks
    if plan.fold_scheme != LEGACY_FOLD_SCHEME:
        data["fold_scheme"] = plan.fold_scheme
    if method != "zero-shot":
        # use_prefixes changes no number on a backbone without prefixes (MiniLM): left out there, so
        # results trained before the setting existed keep their fingerprints
        ignore = () if uses_prefixes(plan.model) else ("use_prefixes",)
        ignore += ("seed", "progress", "checkpoint_every", "keep_checkpoint")
        train = {k: v for k, v in plan.train_config(method).fingerprint_fields().items() if k not in ignore}
        data.update(method=method, bitext=plan.bitext, train=train, size=size)
        if plan.bitext_files:
            data["bitext_files"] = plan.bitext_files
    return fingerprint_of(data)


def precision_hint(plan: ComparePlan, fingerprint: str | None, method: str, size: int | None | str) -> str:
    """Why a cell does not match when only the resolved precision differs: ``auto`` resolves by
    machine (bf16 where the CPU has native bf16), so a run resumed on another kind of CPU meets
    cells of the other precision."""
    here = resolve_mixed_precision(plan.train.mixed_precision)
    for other in ("bf16", "no"):
        changed = replace(plan, train=plan.train.replace(mixed_precision=other))
        if other != here and cell_fingerprint(changed, method, size) == fingerprint:
            return (
                f" (only the precision differs: the cell was computed with {other}, this machine resolves "
                f"--mixed-precision {plan.train.mixed_precision} to {here}; pass --mixed-precision "
                f"{other} to continue the run at its precision — bf16 without native bf16 is ~100x slower — "
                "or keep the precisions apart in two folders)"
            )
    return ""


def cell_folder(root: Path, lang: str, method: str, size: int | None | str, fold: int, seed: int) -> Path:
    """``<root>/<lang>/<method>[@<size>]/fold<k>-seed<s>``: where a cell's files live."""
    name = method if size == "default" else f"{method}@{size_label(size)}"
    return root / lang / name / f"fold{fold}-seed{seed}"


def plan_cells(
    plan: ComparePlan, root: Path, variants: list[tuple[str, int | None | str]] | None = None
) -> Iterator[tuple[str, str, int | None | str, int, int, Path]]:
    """Every cell a plan runs: (lang, method, size, fold, seed, folder). Every method, zero-shot too,
    has one cell per seed (zero-shot's are identical: it is evaluated per seed like the others, so
    per-query tables pair by fold and seed)."""
    variants = variants if variants is not None else [(method, "default") for method in plan.methods]
    for lang in plan.langs:
        for method, size in variants:
            for fold in range(plan.folds):
                for seed in plan.seed_list():
                    yield lang, method, size, fold, seed, cell_folder(root, lang, method, size, fold, seed)


# ------------------------------------------------------------------ inputs
def _data_key(path: str, data_root: str | None) -> str:
    """A data file's name in a cell's identity: its path inside the data folder (the same bytes in
    another clone's data folder are the same input, so the folder itself is provenance, not
    identity), or the path as given for a file outside it (a user's TREC collection)."""
    if data_root:
        try:
            return Path(path).absolute().relative_to(Path(data_root).absolute()).as_posix()
        except ValueError:
            pass
    return str(path)


def cell_inputs(record: dict[str, Any], files: Sequence[str | Path], model: str) -> dict[str, Any]:
    """What a cell's numbers depend on besides its configuration, from a :func:`~.records.provenance`
    record (hashed once per run): ``epoch`` (:data:`RESULTS_EPOCH`), ``data`` (data file -> SHA-256,
    None for a file that does not exist) and ``model`` (one SHA-256 over the teacher's files; the hub
    id when the teacher is not a local folder)."""
    hashes = record["data_files_sha256"]
    teacher = record.get("teacher_files") or {}
    return {
        "epoch": RESULTS_EPOCH,
        "data": {_data_key(str(f), record.get("data_dir")): hashes[str(f)] for f in files},
        "model": teacher.get("sha256") or f"hub:{model}",
    }


def input_changes(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between two :func:`cell_inputs` records, in words (empty when nothing does)."""
    changes = []
    if saved.get("epoch") != current["epoch"]:
        changes.append(f"results epoch {saved.get('epoch')} -> {current['epoch']} (a code change altered the numbers)")
    if saved.get("model") != current["model"]:
        changes.append("the teacher model's files changed")
    old, new = saved.get("data", {}), current["data"]
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            what = (
                "now read"
                if name not in old
                else "no longer read"
                if name not in new
                else "missing now"
                if new[name] is None
                else "content changed"
            )
            changes.append(f"{name} ({what})")
    return changes


def size_label(size: int | None | str) -> str:
    return "all" if size is None else f"n{size}"
