"""The compute plan (plan.json): cut rates from the real tokenizer, step rates from cell logs, the grid."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from optical_lab.data.errors import DataError
from optical_lab.data.mafand import load_mafand, mafand_files
from optical_lab.experiments.compute_plan import (
    cell_device,
    compute_plan,
    cut_fraction,
    eval_seconds,
    step_seconds,
    token_counts,
)
from optical_lab.experiments.plan import ComparePlan
from optical_lab.experiments.records import environment
from optical_lab.methods.config import TrainConfig
from optical_lab.methods.runtime import device_description


def test_cut_fraction_counts_only_texts_longer_than_the_limit():
    assert cut_fraction([3, 4, 5, 6], 4) == 0.5
    assert cut_fraction([3, 4], 4) == 0.0
    assert cut_fraction([], 4) == 0.0


def test_token_counts_include_special_tokens_and_grow_with_the_prefix():
    from transformers import AutoTokenizer

    from optical_lab.models.registry import minilm_path

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    plain, prefixed = token_counts(tokenizer, ["hello world"]), token_counts(tokenizer, ["hello world"], "passage: ")
    assert plain == [4]  # [CLS] hello world [SEP]
    assert prefixed[0] > plain[0]


def _log(folder, seconds):
    folder.mkdir(parents=True)
    (folder / "train_log.jsonl").write_text(
        "\n".join(json.dumps({"event": "train", "step": i + 1, "seconds": s}) for i, s in enumerate(seconds))
        + "\n"
        + json.dumps({"event": "dev", "step": 50, "seconds": 99.0})
    )


def test_step_seconds_are_medians_per_method_over_compare_and_sweep_cells(tmp_path):
    _log(tmp_path / "runs" / "hau" / "optical" / "fold0-seed0", [1.0, 2.0, 3.0])
    _log(tmp_path / "runs" / "yor" / "optical" / "fold0-seed0", [4.0])
    _log(tmp_path / "sweep" / "sentence-kd" / "lr0.001", [0.5, 0.7])
    _log(tmp_path / "runs" / "hau" / "optical+aug@100" / "fold0-seed0", [9.0])
    (tmp_path / "runs" / "hau" / "optical" / "fold0-seed0" / "done.json").write_text(json.dumps({"threads": 1}))
    rates = step_seconds([tmp_path])
    # dev events not counted; threads: as the finished cells recorded them
    assert rates["optical"] == {
        "median_s": 2.5,
        "steps_measured": 4,
        "cells": 2,
        "threads": [1],
        "other_device_cells": 0,
    }
    assert rates["sentence-kd"]["median_s"] == 0.6
    assert rates["optical+aug"]["median_s"] == 9.0


def test_step_seconds_count_only_cells_of_this_kind_of_device(tmp_path):
    """A sweep run on a lent GPU says nothing about the CPU that finishes the grid."""
    _log(tmp_path / "sweep" / "optical" / "lr1e-05", [0.1, 0.1])  # the sweep's environment record: a GPU
    (tmp_path / "sweep" / "environment.json").write_text(json.dumps({"cuda": "NVIDIA H100", "cpu": "Xeon"}))
    _log(tmp_path / "runs" / "hau" / "optical" / "fold0-seed0", [1.0, 3.0])  # a grid cell that says: this CPU
    (tmp_path / "runs" / "hau" / "optical" / "fold0-seed0" / "done.json").write_text(
        json.dumps({"threads": 1, "device": "cpu: EPYC", "eval_s": 60.0})
    )
    _log(tmp_path / "runs" / "yor" / "optical" / "fold0-seed0", [2.0])  # running, the comparison's record: this CPU
    (tmp_path / "environment_compare.json").write_text(json.dumps({"cuda": None, "cpu": "EPYC"}))
    rates = step_seconds([tmp_path], device="cpu: EPYC")
    assert rates["optical"]["median_s"] == 2.0 and rates["optical"]["cells"] == 2
    assert rates["optical"]["other_device_cells"] == 1
    assert step_seconds([tmp_path])["optical"]["cells"] == 3  # no device given: every cell
    assert eval_seconds(tmp_path / "runs", "cpu: EPYC") == 60.0 and eval_seconds(tmp_path / "runs", "cuda: X") is None


def test_a_cell_without_done_json_names_its_device_as_a_finished_cell_would(tmp_path):
    """cell_device reads the run's environment record in done.json's format: a cell still running on this
    machine counts as this machine's (else compute_plan would ignore every running cell's steps)."""
    cell = tmp_path / "runs" / "hau" / "optical" / "fold0-seed0"
    cell.mkdir(parents=True)
    (tmp_path / "environment_compare.json").write_text(json.dumps(environment()))
    assert cell_device(cell, tmp_path) == device_description("cpu")
    (tmp_path / "environment_compare.json").write_text(json.dumps({"cuda": "NVIDIA H100", "cpu": "Xeon"}))
    assert cell_device(cell, tmp_path) == "cuda: NVIDIA H100"


def _has_mafand_hau() -> bool:
    try:
        return all(p.exists() for p in mafand_files("hau", ("train",)))
    except (DataError, KeyError):  # no data folder, or no MAFAND-MT hau in it
        return False


@pytest.mark.skipif(not _has_mafand_hau(), reason="MAFAND-MT hau not in the data folder")
def test_plan_json_measures_the_cut_rate_and_counts_cells_left(tmp_path):
    plan = ComparePlan(
        langs=["hau"],
        methods=["zero-shot", "optical"],
        folds=1,
        seeds=2,
        task="ntrex-clir",
        bitext="mafand",
        train=TrainConfig(steps=10, batch_size=4, max_length=128, max_train_pairs=None),
    )
    (tmp_path / "config.json").write_text(json.dumps({"kind": "compare", **asdict(plan)}))
    _log(tmp_path / "runs" / "hau" / "optical" / "fold0-seed0", [2.0, 2.0])
    (tmp_path / "runs" / "hau" / "optical" / "fold0-seed0" / "done.json").write_text(json.dumps({"eval_s": 30.0}))
    out = compute_plan(tmp_path, seeds=3)
    assert json.loads((tmp_path / "plan.json").read_text()) == out
    hau = out["truncation"]["hau"]
    assert hau["pairs"] == len(load_mafand("hau", "train")) and hau["distinct_pairs"] == 40
    assert 0 < hau["cut_foreign"]["128"] < hau["cut_foreign"]["64"] < 1  # longer limit, fewer cuts
    # every method has a cell per seed, zero-shot too (the runner evaluates it per seed)
    assert out["grid"] == {
        "zero-shot": {"planned": 3, "finished": 0, "left": 3},
        "optical": {"planned": 3, "finished": 1, "left": 2},
    }
    # left: 3 zero-shot cells (evaluation only) + 2 optical cells of 10 steps at 2 s, each also evaluated
    assert out["hours_left"] == round((3 * 30.0 + 2 * (10 * 2.0 + 30.0)) / 3600, 3)
    assert out["step_seconds"]["optical"]["median_s"] == 2.0


def test_a_described_grid_is_priced_from_measured_rates_and_says_what_it_assumed(tmp_path):
    """plan_grid (protocol v3 before it runs): CPU-hours from this CPU's cells, GPU minutes from a sibling folder
    that ran on a GPU, an arm never measured at its stated proxy's rate."""
    from optical_lab.experiments.compute_plan import GPU_PROCESSES, GridDescription, plan_grid

    reference = tmp_path / "v2"
    for method, seconds in (("optical", [2.0, 2.0]), ("sentence-kd", [1.0, 1.0])):
        cell = reference / "runs" / "hau" / method / "fold0-seed0"
        _log(cell, seconds)
        (cell / "done.json").write_text(json.dumps({"device": "cpu: EPYC", "eval_s": 30.0}))
        (cell / "clir.per_query.csv").write_text("qid,MRR@10\n" + "".join(f"q{i},0.5\n" for i in range(10)))
    (reference / "config.json").write_text(json.dumps({"eval_tasks": ["flores-sentences"], "langs": ["hau"]}))
    gpu = tmp_path / "me5" / "sweep"
    for method in ("optical", "sentence-kd"):
        _log(gpu / method / "lr1e-05", [0.1, 0.1])
    (gpu / "environment.json").write_text(json.dumps({"cuda": "NVIDIA H100", "cpu": "Xeon"}))
    grid = GridDescription(
        name="t",
        langs=("hau", "yor"),
        arms=("zero-shot", "sentence-kd", "optical", "optical-plain"),
        seeds=2,
        step_cap=100,
        sweep_settings=3,
        sweep_langs=1,
        sweep_steps=50,
        eval_tasks=("ntrex-clir", "ntrex-sentences", "flores-sentences", "sib-topics"),
        reference=str(reference),
        same_rate_as=(("optical-plain", "optical"),),
        ot_cost_factor=1.5,
    )
    planned = plan_grid(grid, device="cpu: EPYC")
    steps = 2 * 2 * 100 + 3 * 50  # per trained arm: languages x seeds x cap + sweep settings x steps
    assert planned["trained_steps"] == {"sentence-kd": steps, "optical": steps, "optical-plain": steps}
    assert planned["cpu_step_seconds"] == {"sentence-kd": 1.0, "optical": 3.0, "optical-plain": 3.0}
    evaluation = 2 * 2 * 4 * 30.0 * 4 / 2  # cells x measured seconds x (4 tasks / the reference's 2)
    assert planned["cpu_hours"] == round((steps * (1.0 + 3.0 + 3.0) + evaluation) / 3600, 1)
    assert planned["gpu_minutes"] == round(steps * (0.1 + 0.15 + 0.15) / 60 / GPU_PROCESSES, 1)
    assert any("optical-plain steps at optical's" in line for line in planned["assumed"])
    assert planned["committed_mib"] > 0


def _train_log(folder, steps: int, seed: int) -> bytes:
    """A finished cell's log as the trainer writes it: float32 terms, their float32 sum, a schedule, seconds."""
    import numpy as np

    rng, rows = np.random.default_rng(seed), []
    for step in range(1, steps + 1):
        a, b = (float(np.float32(rng.uniform())) for _ in range(2))
        total = float(np.float32(a) + np.float32(b))
        rows.append({"step": step, "event": "train", "loss": total, "a": a, "b": b, "lr": step * 1e-5 / 7})
        rows[-1]["seconds"] = round(float(rng.uniform()), 4)
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    folder.mkdir(parents=True)
    (folder / "train_log.jsonl").write_bytes(data)
    (folder / "done.json").write_text(json.dumps({"eval_s": 30.0, "metrics": {"clir": {"MRR@10": 0.5}}}, indent=2))
    return data


def test_the_committed_size_is_measured_by_compacting_committed_files_in_the_current_layout(tmp_path, monkeypatch):
    """committed_mib comes from the files, compacted as a new cell would be now: the grid's own finished logs before
    the reference's, per-query scores per cell and their query ids once per (sub-task, language)."""
    from optical_lab.columns import encode_columns_checked, split_key_column
    from optical_lab.experiments.compute_plan import GridDescription, plan_grid
    from optical_lab.io import xz_bytes
    from optical_lab.methods.train_state import LOG_DIGITS, logged_lines

    monkeypatch.chdir(tmp_path)
    reference, own = tmp_path / "results" / "v2", tmp_path / "results" / "v3"
    kd_v2 = _train_log(reference / "runs" / "hau" / "sentence-kd" / "fold0-seed0", 40, 0)
    kd_v3 = _train_log(own / "sweep" / "sentence-kd" / "lr0.001" / "hau", 120, 1)  # the grid's own: preferred
    optical = _train_log(reference / "runs" / "hau" / "optical" / "fold0-seed0", 60, 2)
    scores = "qid,MRR@10\n" + "".join(f"q{i},{i % 7 / 7:.6g}\n" for i in range(200))
    for cell in (reference / "runs" / "hau").glob("*/*"):
        (cell / "clir.per_query.csv").write_text(scores)
    (reference / "config.json").write_text(json.dumps({"eval_tasks": [], "langs": ["hau"]}))
    grid = GridDescription(
        name="t",
        langs=("hau", "yor"),
        arms=("zero-shot", "sentence-kd", "optical"),
        seeds=2,
        step_cap=100,
        sweep_settings=3,
        sweep_langs=1,
        sweep_steps=50,
        eval_tasks=("ntrex-clir",),
        reference="results/v2",
        folder="results/v3",
    )
    planned = plan_grid(grid, device="cpu: EPYC")
    parts, steps = planned["stored_sizes"]["parts"], 2 * 2 * 100 + 3 * 50  # bytes

    def stored(log: bytes) -> int:  # a log as the trainer writes it now (its diagnostics rounded), compacted
        return len(xz_bytes(encode_columns_checked(logged_lines(log))))

    def price(log: bytes, n: int) -> tuple[float, float]:  # (bytes per log, per step): what a step adds to a log
        lines = log.splitlines(keepends=True)
        half = b"".join(lines[: len(lines) // 2])
        per_step = (stored(log) - stored(half)) / (n - half.count(b'"train"'))
        return stored(log) - per_step * n, per_step

    logs_per_arm = 2 * 2 + 3 * 1  # grid cells (languages x seeds) + sweep runs (settings x languages)
    assert parts["train_logs"] == pytest.approx(
        sum(logs_per_arm * fixed + steps * per_step for fixed, per_step in (price(kd_v3, 120), price(optical, 60)))
    )
    assert 0 < price(optical, 60)[0] < stored(optical)  # a log's fixed part: its header, xz's own
    assert stored(optical) < len(xz_bytes(encode_columns_checked(optical)))  # rounding pays
    assert any(f"at {LOG_DIGITS} significant digits" in line for line in planned["assumed"])
    rates = planned["stored_sizes"]["log_rates"]
    assert rates["sentence-kd"]["folder"] == "results/v3" and rates["optical"]["folder"] == "results/v2"
    assert rates["sentence-kd"]["bytes_per_step"] != price(kd_v2, 40)[1]  # the v2 log is not what priced it
    # the ids column is taken out of every cell: the cells keep the scores, the ids are stored once per language
    keys, rest = split_key_column(scores.encode())
    measured = planned["stored_sizes"]["per_query"]["clir"]["by_lang"]
    assert measured["hau"] == measured["yor"]  # yor has no committed scores: priced at the median language
    assert measured["hau"]["ids"] == len(xz_bytes(keys))
    assert measured["hau"]["cell"] < len(xz_bytes(scores.encode())) - len(xz_bytes(keys)) / 2
    assert parts["query_ids_once"] == 2 * len(xz_bytes(keys))
    assert parts["per_query_scores"] == 2 * 2 * 3 * measured["hau"]["cell"]  # languages x seeds x arms
    assert any("clir on yor: no committed scores" in line for line in planned["assumed"])
    assert planned["committed_mib"] == round(sum(parts.values()) / 2**20, 2)
