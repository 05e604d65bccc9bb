"""Metrics against hand-computed values, and the significance helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optical_lab.evaluation import aggregate, holm, mean_ci, paired_randomization_test, per_query
from optical_lab.retrieval import dense_search

QRELS = {"q1": {"d1": 1}, "q2": {"d3": 1}, "q3": {"d9": 1}}
RUN = {"q1": {"d2": 0.9, "d1": 0.5}, "q2": {"d5": 0.3, "d4": 0.2, "d3": 0.1}}  # q3 retrieved nothing


def test_hand_computed_tiny_example():
    table = per_query(RUN, QRELS)
    # q1: relevant at rank 2 -> RR 1/2, nDCG 1/log2(3); q2: rank 3 -> RR 1/3, nDCG 1/log2(4) = 0.5; q3: 0
    assert table.loc["q1", "MRR@10"] == pytest.approx(0.5)
    assert table.loc["q2", "MRR@10"] == pytest.approx(1 / 3)
    assert table.loc["q1", "nDCG@10"] == pytest.approx(1 / math.log2(3))
    assert table.loc["q2", "nDCG@10"] == pytest.approx(0.5)
    assert table.loc["q3"].sum() == 0  # an empty result counts as zero, not as missing
    assert aggregate(table)["MRR@10"] == pytest.approx((0.5 + 1 / 3) / 3)
    assert table.loc["q1", "R@1"] == 0 and table.loc["q1", "R@10"] == 1


def test_matches_ir_measures_directly():
    import ir_measures

    direct = ir_measures.calc_aggregate(
        [ir_measures.parse_measure("AP")], {k: v for k, v in QRELS.items() if k in RUN}, RUN
    )
    table = per_query(RUN, {k: v for k, v in QRELS.items() if k in RUN})
    assert aggregate(table)["MAP"] == pytest.approx(list(direct.values())[0])


def test_dense_search_ranks_by_cosine():
    import torch

    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    d = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.7, 0.7]])
    run = dense_search(q, d, ["a", "b"], ["x", "y", "z"], k=2)
    assert list(run["a"]) == ["y", "z"] and list(run["b"]) == ["x", "z"]


def test_dense_search_scores_in_float32_under_bf16_autocast():
    """The runner evaluates inside bf16 autocast; a bf16 product would tie close documents."""
    import torch

    generator = torch.Generator().manual_seed(0)
    base = torch.nn.functional.normalize(torch.randn(1, 64, generator=generator), dim=1)
    docs = torch.nn.functional.normalize(base + 0.03 * torch.randn(50, 64, generator=generator), dim=1)
    ids = [f"d{i}" for i in range(50)]
    exact = dense_search(docs[:5], docs, ids[:5], ids, k=50)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = dense_search(docs[:5], docs, ids[:5], ids, k=50)
    assert all(list(under_autocast[q].items()) == list(exact[q].items()) for q in exact)  # same order, same scores
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rounded = docs[:5] @ docs.T
    assert len(set(rounded[0].tolist())) < 50 == len(set(exact["d0"].values()))  # bf16 would tie some


def test_randomization_test_detects_and_ignores():
    rng = np.random.default_rng(0)
    a = rng.random(100)
    assert paired_randomization_test(a, a) == 1.0
    assert paired_randomization_test(a + 0.2, a) < 0.01
    assert paired_randomization_test(a, a + rng.normal(0, 0.01, 100)) > 0.05


def test_holm():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_mean_ci():
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(2.4841, abs=1e-3)  # t(0.975, 2) * 1 / sqrt(3)
