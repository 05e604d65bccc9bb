"""Compacting a results folder changes no number: every reader reads both layouts to the same bytes."""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from optical_lab.columns import (
    decode_columns,
    encode_columns,
    encode_columns_checked,
    join_key_column,
    split_key_column,
    split_subtrees,
)
from optical_lab.data.errors import DataError
from optical_lab.experiments.compact import compact_cell, compact_folder, expand_folder, logical_manifest
from optical_lab.experiments.per_query import load_per_query
from optical_lab.experiments.records import FolderLock
from optical_lab.experiments.students import read_train_log
from optical_lab.experiments.summary import summarize_folder
from optical_lab.io import (
    read_bytes,
    read_jsonl,
    stored_exists,
    stored_glob,
    xz_bytes,
)
from optical_lab.methods.train_state import LOG_DIGITS, logged_value
from optical_lab.reports.v2_setup import diagnostics

LANGS, METHODS, SEEDS = ("hau", "swa"), ("zero-shot", "code-switch", "optical"), (0, 1)


def _log(rng: np.random.Generator, steps: int = 40) -> str:
    """A training log as the trainer writes it (json.dumps per record): dev and train records, float32 losses."""
    rows = [{"step": 0, "event": "dev", "dev_mrr": float(np.float32(rng.uniform())), "best": True}]
    for step in range(1, steps + 1):
        rows.append(
            {
                "step": step,
                "event": "train",
                "loss": float(np.float32(rng.uniform())),
                "token_cos": float(np.float32(rng.uniform())),
                "plan_entropy": float(rng.uniform()),
                "marginal_error": float(np.float32(rng.uniform() * 1e-4)),
                "lr": step * 1e-5 / 3,
                "ot_not_converged": int(rng.integers(0, 4)),
                "seconds": round(float(rng.uniform()), 4),
            }
        )
    return "".join(json.dumps(r) + "\n" for r in rows)


def _write_results(root) -> None:
    rng = np.random.default_rng(0)
    for lang in LANGS:
        dictionary = "".join(f"w{i}\tx{i}\n" for i in range(int(rng.integers(300, 400))))  # one per language
        for method in METHODS:
            for seed in SEEDS:
                cell = root / "runs" / lang / method / f"fold0-seed{seed}"
                cell.mkdir(parents=True)
                pd.DataFrame({"qid": [f"d{i}" for i in range(60)], "MRR@10": rng.uniform(size=60)}).to_csv(
                    cell / "clir.per_query.csv", float_format="%.6g", index=False
                )
                pd.DataFrame({"qid": [f"s{i}" for i in range(90)], "acc@1": rng.integers(0, 2, 90)}).to_csv(
                    cell / "sentence.per_query.csv", index=False
                )
                (cell / "config.json").write_text(json.dumps({"cell": {"lang": lang, "seed": seed}}, indent=2))
                if method != "zero-shot":
                    (cell / "train_log.jsonl").write_text(_log(rng))
                if method == "code-switch":
                    (cell / "dictionary.tsv").write_text(dictionary)
                (cell / "done.json").write_text(json.dumps({"lang": lang, "method": method, "fold": 0, "seed": seed}))
    (root / "compare.log").write_text("step 1\n" * 50)


def _reports(root, out) -> dict[str, str]:
    """What the readers make of a folder: the per-query table, the summary tables, the OT diagnostics, a log."""
    out.mkdir()
    load_per_query(root / "runs").to_csv(out / "per_query.csv", index=False)
    summarize_folder(root).write(out)
    diagnostics(root).to_csv(out / "diagnostics.csv", index=False)
    read_train_log(root / "runs/hau/optical/fold0-seed1").to_csv(out / "log.csv", index=False)
    return {p.name: p.read_text() for p in sorted(out.iterdir())}


def test_compaction_changes_no_number_and_is_idempotent(tmp_path):
    root = tmp_path / "results"
    _write_results(root)
    plain_bytes = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    manifest, before = logical_manifest(root), _reports(root, tmp_path / "before")
    done = compact_folder(root)
    assert logical_manifest(root) == manifest  # every logical file reads back as the very same bytes
    assert _reports(root, tmp_path / "after") == before  # so every table computed from them is identical
    # per-query scores keyed by their query ids; configs, the zero-shot logs' plain rest and compare.log as .xz
    assert done.files == {"cols.xz": 8, "keyed.xz": 24, "xz": 12 + 1, "blob references": 4}
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) < plain_bytes / 2
    # stored forms replace the plain files; what marks a cell finished stays plain
    cell = root / "runs/hau/code-switch/fold0-seed0"
    assert sorted(p.name for p in cell.iterdir()) == [
        "clir.per_query.csv.keyed.xz",
        "config.json.xz",
        "dictionary.tsv.ref",
        "done.json",
        "sentence.per_query.csv.keyed.xz",
        "train_log.jsonl.cols.xz",
    ]
    # one dictionary per language, not per seed; each sub-task's query ids once (the same in every cell here)
    assert len(list((root / "blobs").iterdir())) == len(LANGS) + 2
    assert stored_glob(cell, "*.per_query.csv") == [cell / "clir.per_query.csv", cell / "sentence.per_query.csv"]
    tree = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert compact_folder(root).files == {}  # idempotent: a second pass finds nothing and rewrites nothing
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == tree


def test_a_new_cell_compacts_beside_the_shared_blobs(tmp_path):
    root = tmp_path / "results"
    _write_results(root)
    compact_folder(root)
    cell = root / "runs/hau/code-switch/fold0-seed9"  # a cell the runner finishes later: same dictionary
    cell.mkdir()
    (cell / "dictionary.tsv").write_bytes(read_bytes(root / "runs/hau/code-switch/fold0-seed0/dictionary.tsv"))
    (cell / "done.json").write_text("{}")
    assert compact_cell(cell, root / "blobs").files == {"blob references": 1}
    assert len(list((root / "blobs").iterdir())) == len(LANGS) + 2


def test_a_folder_being_written_is_refused_and_an_unfinished_cell_left_alone(tmp_path):
    root = tmp_path / "results"
    _write_results(root)
    training = root / "runs/swa/optical/fold0-seed0"
    (training / "done.json").unlink()  # still training: the trainer appends to its plain log
    with FolderLock(root / "runs/hau/optical/fold0-seed1"):
        with pytest.raises(DataError, match="being written"):
            compact_folder(root)
    assert (root / "compare.log").is_file()  # nothing was touched
    compact_folder(root)
    assert (training / "train_log.jsonl").is_file() and (training / "clir.per_query.csv").is_file()


def test_columns_codec_is_lossless_or_declines():
    rng = np.random.default_rng(1)
    text = _log(rng).encode()
    encoded = encode_columns(text)
    assert decode_columns(encoded) == text
    assert encode_columns_checked(text) == encoded
    # not written by json.dumps' defaults (compact separators): decoding would change bytes, so it declines
    compact = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in map(json.loads, text.decode().splitlines()))
    assert encode_columns_checked(compact.encode()) is None
    assert encode_columns_checked(b"not json\n") is None


def test_the_reader_names_what_is_missing(tmp_path):
    (tmp_path / "x.tsv.ref").write_text(json.dumps({"sha256": "ab" * 32, "bytes": 1}))
    with pytest.raises(FileNotFoundError, match="blobs"):
        read_bytes(tmp_path / "x.tsv")
    with pytest.raises(FileNotFoundError, match="y.csv"):
        read_jsonl(tmp_path / "y.csv")
    assert not stored_exists(tmp_path / "y.csv")


def _f32(x: float) -> float:
    return float(np.float32(x))


def _every_form() -> bytes:
    """A log whose columns call for every stored and derived form, with the values that break naive codecs."""
    rng, rows = np.random.default_rng(3), []
    for step in range(1, 301):
        a, b = _f32(rng.uniform()), _f32(rng.uniform() * 1e-3)
        rows.append(
            {
                "step": step,  # int (differences)
                "event": "train",  # json
                "loss": _f32(np.float32(a) + np.float32(b)),  # sum, weight 1
                "total": _f32(np.float32(a) + np.float32(np.float32(0.3) * np.float32(b))),  # sum, weight 0.3
                "a": a,  # f4
                "b": b,
                "copy": a,  # same
                "noise": float(rng.normal()),  # f8
                "lr": step * 3e-4 / 7,  # f8p
                "elapsed": round(step * 1.2345 + float(rng.uniform()) * 1e-3, 4),  # dec4 (steady differences)
                "seconds": logged_value(float(rng.uniform() * 10)),  # sig4: at the log's declared precision
                "spread": logged_value(10 ** float(rng.uniform(-7, 1))),  # sig4 over eight orders of magnitude
                "flag": True,  # const
                "mixed": step if step % 2 else float(step),  # json: 3 and 3.0 differ in text
            }
        )
        if step % 50 == 0:
            rows.append({"step": step, "event": "dev", "dev_mrr": _f32(rng.uniform()), "best": bool(step % 100)})
    odd = [float("nan"), float("inf"), -float("inf"), -0.0, 5e-324, 1e308, 0.1, None, [1, 2], {"k": "é"}]
    rows.append({"step": 300, "event": "end", "odd": odd})
    rows += [{"step": 301, "event": "end", "weird": x} for x in odd]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def test_every_column_form_reads_back_exactly():
    text = _every_form()
    encoded = encode_columns(text)
    assert decode_columns(encoded) == text
    kinds = {entry[0]: entry[1] for entry in json.loads(encoded.partition(b"\n")[0])["columns"]}
    assert kinds["step"] == "int" and kinds["event"] == "json" and kinds["mixed"] == "json"
    assert kinds["b"] == "f4" and kinds["noise"] == "f8" and kinds["lr"] == "f8p" and kinds["elapsed"] == "dec4"
    assert kinds["seconds"] == kinds["spread"] == f"sig{LOG_DIGITS}"
    assert kinds["loss"] == kinds["total"] == "sum" and kinds["flag"] == "const"
    assert {kinds["a"], kinds["copy"]} == {"same", "f4"}  # one of two equal columns is stored
    assert decode_columns(encode_columns(text.rstrip(b"\n"))) == text.rstrip(b"\n")  # no final newline
    # each form is smaller than the plain text it replaces
    assert len(xz_bytes(encoded)) < 0.5 * len(xz_bytes(text))


def test_layout_1_logs_are_still_read_and_say_so():
    """A training log committed in layout 1 (format 1 columns, before this layout) reads as it did."""
    committed = Path(__file__).parents[2] / "results" / "v2-minilm" / "runs" / "swa" / "optical" / "fold0-seed2"
    stored = committed / "train_log.jsonl.cols.xz"
    header = json.loads(lzma.decompress(stored.read_bytes()).partition(b"\n")[0])
    assert header["format"] == "optical-lab columns 1"
    text = read_bytes(committed / "train_log.jsonl")
    assert text.count(b"\n") == 307 and text.startswith(b'{"step": 0, "event": "dev"')
    assert decode_columns(encode_columns(text)) == text  # and layout 2 stores it exactly


def test_per_query_scores_keep_their_ids_once_or_stay_whole(tmp_path):
    """A cell's per-query file: ids to a blob shared by every cell scored on those queries; a file whose first
    column is quoted (it could hold a comma) stays whole."""
    root = tmp_path / "results"
    ids = "".join(f"q{i},{i % 3}\n" for i in range(50))
    for seed in (0, 1):
        cell = root / "runs" / "hau" / "optical" / f"fold0-seed{seed}"
        cell.mkdir(parents=True)
        (cell / "done.json").write_text("{}")
        (cell / "clir.per_query.csv").write_text("qid,R@1\n" + ids.replace(",0", f",{seed}"))
        (cell / "quoted.per_query.csv").write_text('qid,R@1\n"a,b",1\n')
    before = logical_manifest(root)
    assert compact_folder(root).files == {"keyed.xz": 2, "xz": 2}
    assert logical_manifest(root) == before
    assert len(list((root / "blobs").iterdir())) == 1  # the ids, once
    assert (root / "runs/hau/optical/fold0-seed1/quoted.per_query.csv.xz").is_file()
    assert split_key_column(b"no comma\n") is None and split_key_column(b"") is None
    assert join_key_column(*split_key_column(b"a,1\nb,2")) == b"a,1\nb,2"


def test_expanding_undoes_compaction(tmp_path):
    root = tmp_path / "results"
    _write_results(root)
    plain = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    compact_folder(root)
    assert expand_folder(root) > 0
    assert {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()} == plain


def test_a_cells_config_keeps_the_plan_and_its_training_config_once_and_its_record_in_done_json(tmp_path):
    """config.json of a cell: the plan (every cell's) and the training configuration (every language's cell of a
    seed) as blobs; its cell record, done.json less the fingerprint, read from done.json, checked by its SHA-256."""
    from optical_lab.io import write_json

    root, plan = tmp_path / "results", {"langs": ["hau", "swa"], "train": {"lr": 1e-3, "note": "é"}, "seeds": 2}
    for lang in ("hau", "swa"):
        inputs = {"data": {f"{lang}.txt": lang * 20}, "epoch": 1}
        for seed in (0, 1):
            cell = root / "runs" / lang / "optical" / f"fold0-seed{seed}"
            cell.mkdir(parents=True)
            record = {"lang": lang, "seed": seed, "metrics": {"clir": {"MRR@10": 0.1 * (seed + 1)}}, "inputs": inputs}
            write_json({**record, "fingerprint": f"f{seed}"}, cell / "done.json")  # as ResultFolder.finish writes it
            write_json({"cell": record, "plan": plan, "train": {"lr": 1e-3, "seed": seed}}, cell / "config.json")
            (cell / "train_log.jsonl").write_text(_log(np.random.default_rng(seed), 5))
    before = logical_manifest(root)
    assert compact_folder(root).files == {"tree.xz": 4, "cols.xz": 4}
    assert logical_manifest(root) == before
    assert len(list((root / "blobs").iterdir())) == 1 + 2  # the plan once, each seed's training config once
    cell = root / "runs/swa/optical/fold0-seed1"
    skeleton = json.loads(lzma.decompress((cell / "config.json.tree.xz").read_bytes()))
    assert skeleton["cell"]["$sibling"] == "done.json" and skeleton["cell"]["without"] == ["fingerprint"]
    assert "swa" not in json.dumps(skeleton)  # nothing of the record is stored twice
    assert not split_subtrees(b'{"plan": {}}', (("plan",),))  # not written by write_json: stays whole
    # a done.json changed after compaction is named, not silently read into config.json
    (cell / "done.json").write_text((cell / "done.json").read_text().replace("0.2", "0.3"))
    with pytest.raises(ValueError, match="done.json has changed"):
        read_bytes(cell / "config.json")


def test_a_config_whose_record_is_not_done_json_keeps_it(tmp_path):
    """A cell record that differs from done.json in more than dropped keys (a value, the order) stays in config.json."""
    from optical_lab.columns import join_subtrees
    from optical_lab.io import write_json

    write_json({"a": 1, "b": 2.0, "c": 3}, tmp_path / "done.json")
    done = (tmp_path / "done.json").read_bytes()
    for record in ({"a": 1, "b": 2}, {"b": 2.0, "a": 1}, {"a": 1, "b": 2.0, "d": 4}):
        write_json({"cell": record, "plan": {"x": 1}}, tmp_path / "config.json")
        data = (tmp_path / "config.json").read_bytes()
        skeleton, _ = split_subtrees(data, (("plan",),), (("cell",), "done.json", done))
        assert "$sibling" not in skeleton.decode() and json.loads(skeleton)["cell"] == record
    write_json({"cell": {"a": 1, "c": 3}, "plan": {"x": 1}}, tmp_path / "config.json")
    data = (tmp_path / "config.json").read_bytes()
    skeleton, parts = split_subtrees(data, (("plan",),), (("cell",), "done.json", done))
    assert json.loads(skeleton)["cell"]["without"] == ["b"]
    assert join_subtrees(skeleton, lambda sha: parts[0], lambda name, sha: done) == data


def test_a_recomputed_cell_leaves_no_older_form_behind(tmp_path):
    """A cell compacted in layout 1 (config.json.xz), then recomputed: its new config.json.tree.xz is the only form."""
    from optical_lab.io import write_json

    cell = tmp_path / "results" / "runs" / "hau" / "optical" / "fold0-seed0"
    cell.mkdir(parents=True)
    (cell / "done.json").write_text("{}")
    (cell / "train_log.jsonl").write_text(_log(np.random.default_rng(0), 3))
    (cell / "config.json.xz").write_bytes(xz_bytes(b'{"old": 1}\n'))  # what layout 1 left
    write_json({"cell": {"inputs": {"data": {}}}, "plan": {"langs": ["hau"]}}, cell / "config.json")
    new = read_bytes(cell / "config.json")
    compact_cell(cell, tmp_path / "results" / "blobs")
    assert not (cell / "config.json.xz").exists() and read_bytes(cell / "config.json") == new
