"""TREC readers: conflicting qrels, byte-order marks, non-finite run scores."""

from __future__ import annotations

import pytest

from optical_lab.data import DataError
from optical_lab.data.trec import read_qrels, read_run, read_topics


def _write(tmp_path, name, text, bom=False):
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def test_conflicting_qrels_duplicate_is_refused(tmp_path):
    path = _write(tmp_path, "q.qrels", "q1 0 d1 1\nq1 0 d2 0\nq1 0 d1 0\n")
    with pytest.raises(
        DataError, match=r"(?s)q.qrels, line 3: query 'q1', document 'd1' judged 0 here but 1 on line 1.*Fix: keep one"
    ):
        read_qrels(path)


def test_identical_qrels_duplicate_is_accepted(tmp_path):
    assert read_qrels(_write(tmp_path, "q.qrels", "q1 0 d1 1\nq1 0 d1 1\n")) == {"q1": {"d1": 1}}


def test_bom_is_stripped(tmp_path):
    assert read_qrels(_write(tmp_path, "q.qrels", "q1 0 d1 1\n", bom=True)) == {"q1": {"d1": 1}}
    assert read_topics(_write(tmp_path, "t.tsv", "q1\thello\n", bom=True)) == {"q1": "hello"}
    assert read_run(_write(tmp_path, "r.run", "q1 Q0 d1 1 0.5 x\n", bom=True)) == {"q1": {"d1": 0.5}}


@pytest.mark.parametrize("score", ["nan", "NaN", "inf", "-inf", "Infinity"])
def test_non_finite_run_score_is_refused(tmp_path, score):
    path = _write(tmp_path, "r.run", f"q1 Q0 d1 1 0.5 x\nq1 Q0 d2 2 {score} x\n")
    with pytest.raises(DataError, match=rf"(?s)r.run, line 2: score '{score}' is not a finite number.*Fix: "):
        read_run(path)


def test_run_ranking_a_document_twice_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"r.run, line 2: query 'q1' ranks document 'd1' twice"):
        read_run(_write(tmp_path, "r.run", "q1 Q0 d1 1 0.5 x\nq1 Q0 d1 2 0.4 x\n"))
