"""MTEB's bitext-mining metric (optical_lab.evaluation.bitext_mining), the ``ntrex-mining`` task on a
synthetic NTREX folder, and the calibration document (docs/calibration.md) kept in sync with its inputs.

Every expected value is computed independently: by hand for the tiny cases, and by scikit-learn's
``f1_score(..., average="weighted", zero_division=0)`` (what MTEB calls) for the others.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from optical_lab.evaluation.bitext_mining import mining_scores, nearest_neighbours, query_f1


def sklearn_scores(gold, predicted) -> dict[str, float]:
    kw = dict(zero_division=0, average="weighted")
    return {
        "precision": precision_score(gold, predicted, **kw),
        "recall": recall_score(gold, predicted, **kw),
        "f1": f1_score(gold, predicted, **kw),
        "accuracy": accuracy_score(gold, predicted),
    }


def test_hand_made_embeddings_hub_sentence():
    # 4 English queries, 4 target sentences in 2-d. Queries 0 and 1 both point near target 0 (a hub),
    # query 2 finds target 2, query 3 finds target 2 too (wrong); target 1 and 3 are never picked.
    queries = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 1.0]])
    corpus = np.array([[1.0, 0.05], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    predicted, cosine = nearest_neighbours(queries, corpus)
    assert predicted.tolist() == [0, 0, 2, 2]
    assert cosine[2] == pytest.approx(1.0)
    gold = np.arange(4)
    # by hand: label 0: tp 1, picked 2 -> P .5 R 1 F1 2/3; label 1: tp 0 -> 0; label 2: tp 1, picked 2 -> 2/3;
    # label 3: 0. Weighted by support (1 each): F1 = (2/3 + 2/3) / 4 = 1/3; accuracy 2/4; precision (.5 + .5)/4
    scores = mining_scores(gold, predicted)
    assert scores == pytest.approx({"precision": 0.25, "recall": 0.5, "f1": 1 / 3, "accuracy": 0.5})
    assert scores == pytest.approx(sklearn_scores(gold, predicted))
    assert query_f1(gold, predicted).tolist() == pytest.approx([2 / 3, 0, 2 / 3, 0])


def test_cosine_not_dot_product_and_chunks_do_not_matter():
    # a long vector far off the query's direction must lose to a short one along it (cosine, as MTEB)
    queries = np.array([[1.0, 0.0]])
    corpus = np.array([[10.0, 10.0], [0.1, 0.0]])
    assert nearest_neighbours(queries, corpus)[0].tolist() == [1]
    rng = np.random.default_rng(1)
    q, c = rng.normal(size=(250, 16)), rng.normal(size=(300, 16))
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    expected = np.argmax(unit(q) @ unit(c).T, axis=1)
    for chunk in (1, 7, 100, 1000):
        assert nearest_neighbours(torch.tensor(q), torch.tensor(c), chunk=chunk)[0].tolist() == expected.tolist()


@pytest.mark.parametrize("seed", range(6))
def test_matches_sklearn_on_random_predictions(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    gold = np.arange(n)
    predicted = np.where(rng.random(n) < rng.random(), gold, rng.integers(0, n + 5, n))  # labels outside gold too
    assert mining_scores(gold, predicted) == pytest.approx(sklearn_scores(gold, predicted), abs=1e-12)
    weighted = f1_score(gold, predicted, average="weighted", zero_division=0)
    assert query_f1(gold, predicted).mean() == pytest.approx(weighted)
    # repeated gold labels (BUCC-style gold lists): the weighting by support still matches scikit-learn
    gold = rng.integers(0, max(2, n // 3), n)
    assert mining_scores(gold, predicted) == pytest.approx(sklearn_scores(gold, predicted), abs=1e-12)
    with pytest.raises(ValueError, match="one query per gold label"):
        query_f1(gold, predicted) if len(set(gold)) < n else query_f1(np.zeros(n, int), predicted)


def test_weighted_is_not_macro():
    # a label only predicted (never gold) counts in macro F1 but has weight 0 in MTEB's weighted F1
    gold, predicted = [0, 1, 2], [0, 1, 5]
    assert mining_scores(gold, predicted)["f1"] == pytest.approx(2 / 3)
    assert f1_score(gold, predicted, average="macro", zero_division=0) == pytest.approx(2 / 4)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="equal-length"):
        mining_scores([0, 1], [0])
    with pytest.raises(ValueError, match=">= 0"):
        mining_scores([0, 1], [0, -1])


# ----------------------------------------------------------------------------- the task
class HashEncoder:
    """A stand-in encoder: a fixed random 64-d vector per line number found in the text; target lines
    whose number is a multiple of 10 all get line 0's vector (one hub sentence picked 200 times)."""

    def encode(self, texts, role=None, **_):
        rows = []
        for text in texts:
            number = int(re.search(r"\d+", text).group())
            seed = 0 if text.startswith("tzij") and number % 10 == 0 else number
            rows.append(np.random.default_rng(seed).normal(size=64))
        return torch.tensor(np.array(rows), dtype=torch.float32)


def test_ntrex_mining_task_on_a_synthetic_ntrex(tmp_path, monkeypatch):
    from optical_lab.tasks.base import TaskFold
    from optical_lab.tasks.ntrex_mining import EN_XX, XX_EN
    from optical_lab.tasks.registry import get_task

    ntrex = tmp_path / "ntrex-128"
    ntrex.mkdir()
    (ntrex / "newstest2019-src.eng.txt").write_text("".join(f"News line {i}\n" for i in range(1997)))
    (ntrex / "newstest2019-ref.hau.txt").write_text("".join(f"tzij {i}\n" for i in range(1997)))
    (ntrex / "DOCUMENT_IDS.tsv").write_text("".join(f"doc{i * 123 // 1997}\tx\n" for i in range(1997)))
    monkeypatch.setenv("OPTICAL_LAB_DATA", str(tmp_path))
    task = get_task("ntrex-mining")
    encoder = HashEncoder()
    results = task.evaluate("hau", TaskFold(0, None, None, None), encoder, encoder)
    assert set(results) == {EN_XX, XX_EN}
    back = results[XX_EN]
    # X -> English: the 200 multiple-of-10 target lines are one vector, nearest to English line 0: only line 0
    # is right among them, and 200 queries picked it; every other line finds itself (by hand)
    assert back.summary["acc@1"] == pytest.approx(1798 / 1997)
    assert back.summary["f1"] == pytest.approx((1797 + 2 / 201) / 1997)
    for result in results.values():
        predicted = [int(next(iter(docs))[1:]) - 1 for docs in result.run.values()]
        gold = [int(q[1:]) - 1 for q in result.run]
        expected = sklearn_scores(gold, predicted)
        assert result.summary["f1"] == pytest.approx(expected["f1"])
        assert result.summary["precision"] == pytest.approx(expected["precision"])
        assert result.summary["acc@1"] == pytest.approx(expected["accuracy"])
        assert 0 < result.summary["f1_ci95"] < 0.05 and len(result.per_query) == 1997
    # a fold restricts the evaluated lines to its documents, as ntrex-sentences does
    fold = task.folds("hau", k=2, seed=0)[0]
    part = task.evaluate("hau", fold, encoder, encoder)[EN_XX]
    assert 0 < len(part.per_query) < 1997


# ------------------------------------------------------------------- the calibration document
def test_calibration_document_is_generated_from_the_committed_files():
    from optical_lab.experiments.calibration import DOC, render

    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/calibration.md is stale: run `optical-lab calibration render`"
    )


def test_english_subsets_and_verdicts():
    from optical_lab.experiments.calibration import verdict
    from optical_lab.experiments.mteb_reference import english_subsets

    rows = [
        {"hf_subset": s, "f1": 0.5, "accuracy": 0.6, "precision": 0.4, "recall": 0.6, "main_score": 0.5}
        for s in ("eng_Latn-hau_Latn", "hau_Latn-eng_Latn", "fra_Latn-hau_Latn", "eng_Latn-xho_Latn")
    ]
    picked = english_subsets(rows, ["hau"])
    assert list(picked) == ["hau"] and set(picked["hau"]) == {"eng_Latn-hau_Latn", "hau_Latn-eng_Latn"}
    assert picked["hau"]["eng_Latn-hau_Latn"] == {"f1": 0.5, "accuracy": 0.6, "precision": 0.4, "recall": 0.6}
    ours = {"f1": 0.50001, "ci95": 0.02}
    assert verdict(0.5, 100, ours, 100) == "same"
    assert verdict(0.5, 100, ours, 101) == "within noise"
    assert verdict(0.45, 100, ours, 100) == "**beyond noise**"


def test_extract_reads_the_committed_files_with_their_provenance(tmp_path):
    import json
    import subprocess

    from optical_lab.experiments.mteb_reference import MTEB_MODELS, extract

    repo = tmp_path / "results-repo"
    for i, name in enumerate(MTEB_MODELS.values()):
        folder = repo / "results" / name.replace("/", "__") / f"rev{i}"
        folder.mkdir(parents=True)
        rows = [
            {"hf_subset": s, "f1": 0.1 * (i + 1), "accuracy": 0.2, "precision": 0.1, "recall": 0.2}
            for s in ("eng_Latn-hau_Latn", "hau_Latn-eng_Latn", "eng_Latn-fra_Latn")
        ]
        (folder / "NTREXBitextMining.json").write_text(
            json.dumps({"mteb_version": "1.0", "dataset_revision": "abc", "scores": {"test": rows}})
        )
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "scores"], check=True)
    record = extract(repo, langs=["hau"])
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert record["source"]["commit"] == head
    me5 = record["models"]["me5-small"]
    assert me5["path"] == "results/intfloat__multilingual-e5-small/rev1/NTREXBitextMining.json"
    assert me5["model_revision"] == "rev1" and me5["last_commit"] == head and len(me5["blob"]) == 40
    assert set(me5["scores"]) == {"hau"} and me5["scores"]["hau"]["eng_Latn-hau_Latn"]["f1"] == pytest.approx(0.2)
