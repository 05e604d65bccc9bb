"""The Sinkhorn benchmark's ``--ntrex-file``: encoded pairs carried to a machine without the teacher
(a lent GPU) must give the same transport problems as encoding them there."""

import importlib.util
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_sinkhorn.py"


@pytest.fixture()
def bench():
    pytest.importorskip("ot")
    spec = importlib.util.spec_from_file_location("bench_sinkhorn", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ntrex_file_round_trip_gives_the_same_problems(bench, tmp_path):
    bench.NTREX_PAIRS = 6
    x, y, C, a, b = bench.make_ntrex_problem(6)  # encoded here, in float32
    bench._NTREX.clear()
    bench.NTREX_FILE = tmp_path / "pairs.pt"
    bench.make_ntrex_problem(6)  # encodes and writes the file
    assert bench.NTREX_FILE.stat().st_size > 0
    bench._NTREX.clear()
    x2, y2, C2, a2, b2 = bench.make_ntrex_problem(6)  # read back, as on the machine without the teacher
    assert C2.shape == C.shape and x2.shape == x.shape and y2.shape == y.shape
    assert torch.equal(a2, a) and torch.equal(b2, b)  # the same tokens carry the same mass
    assert (C2 - C).abs().max() < 2e-3  # float16-rounded embeddings
    assert (C2[a2 == 0] == 0).all() and (C2[a2 > 0] != 0).any()  # massless rows masked, the others real costs
    bench._NTREX.clear()
    bench.make_ntrex_problem(1)  # the file read at a small B first ...
    with pytest.raises(SystemExit, match="holds 6 encoded pairs"):
        bench.make_ntrex_problem(8)  # ... still refuses a B larger than what it holds (not 6 problems timed as 8)
