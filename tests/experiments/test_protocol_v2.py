"""Protocol v2 end to end at test size: MAFAND bitext, every NTREX document evaluated, FLORES too."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from optical_lab.cli import main
from optical_lab.data.collections import document_folds
from optical_lab.data.errors import DataError
from optical_lab.experiments.plan import ComparePlan
from optical_lab.io import open_stored, read_json, read_jsonl


def test_all_eval_scheme_evaluates_every_document_and_trains_on_none():
    docs = [f"d{i}" for i in range(10)]
    (fold,) = document_folds(docs, k=1, scheme="all-eval")
    assert fold.eval == tuple(sorted(docs)) and fold.train == () and fold.dev == ()
    with pytest.raises(ValueError, match="one fold"):
        document_folds(docs, k=2, scheme="all-eval")
    with pytest.raises(DataError, match="other bitext"):
        ComparePlan(langs=["hau"], methods=["optical"], folds=1, fold_scheme="all-eval")  # bitext ntrex


def test_v2_comparison_trains_on_mafand_and_is_scored_on_all_of_ntrex_and_flores(tmp_path):
    out = tmp_path / "v2"
    chosen = tmp_path / "chosen.json"
    chosen.write_text(json.dumps({"optical": {"lr": 1e-4, "ot_variant": "centred"}}))
    code = main(
        [
            "compare",
            "--langs",
            "hau",
            "--methods",
            "zero-shot,optical",
            "--preset",
            "tiny",
            "--steps",
            "2",
            "--bitext",
            "mafand",
            "--fold-scheme",
            "all-eval",
            "--folds",
            "1",
            "--task",
            "ntrex-clir",
            "--eval-tasks",
            "flores-sentences",
            "--method-config",
            str(chosen),
            "--threads",
            "1",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    cell = out / "runs" / "hau" / "optical" / "fold0-seed0"
    assert len(pd.read_csv(open_stored(cell / "clir.per_query.csv"))) == 123  # every NTREX document is a query's target
    assert len(pd.read_csv(open_stored(cell / "flores-en-xx.per_query.csv"))) == 1004
    done = json.loads((cell / "done.json").read_text())
    assert done["bitext"] == "mafand-mt" and done["train_pairs"] > 0
    config = read_json(cell / "config.json")
    assert config["train"]["lr"] == 1e-4 and config["train"]["ot_variant"] == "centred"
    log = read_jsonl(cell / "train_log.jsonl")
    assert all("token_cos" in r for r in log if r.get("event") == "train")
    assert json.loads((out / "leakage.json").read_text())
