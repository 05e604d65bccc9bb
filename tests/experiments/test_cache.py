"""The one fingerprinted-folder cache (experiments/cache.py): finished only by done.json, never served under
another fingerprint, done.json written last with its fingerprint, one-shot folders' restart rule."""

from __future__ import annotations

import json

import pytest

from optical_lab.data import DataError
from optical_lab.experiments.cache import ResultFolder, fingerprint_of


def test_a_folder_is_finished_by_its_record_and_served_only_under_its_fingerprint(tmp_path):
    cell = ResultFolder(tmp_path / "cell", fingerprint_of({"lr": 1e-4}), what="a sweep cell", fix="sweep elsewhere")
    assert cell.read() is None and not cell.folder.exists()  # unfinished: nothing to serve, nothing created
    record = cell.finish({"best": 0.5, "fingerprint": None, "steps": 3})
    saved = json.loads((tmp_path / "cell" / "done.json").read_text())
    assert saved == record and list(saved) == ["best", "fingerprint", "steps"]  # a record's own key keeps its place
    assert saved["fingerprint"] == cell.fingerprint and cell.read() == record
    other = ResultFolder(cell.folder, fingerprint_of({"lr": 1e-3}), what="a sweep cell", fix="sweep elsewhere")
    with pytest.raises(DataError, match="holds a sweep cell of another configuration") as error:
        other.read()
    assert "sweep elsewhere" in str(error.value)
    hinted = ResultFolder(cell.folder, "x", explain=lambda saved: f" (saved {saved})")
    with pytest.raises(DataError, match=rf"holds results of another configuration \(saved {cell.fingerprint}\)"):
        hinted.read()
    cell.reopen()
    assert cell.read() is None and other.read() is None  # unfinished again: recomputed by whoever comes


def test_the_fingerprint_is_the_sorted_settings_and_a_damaged_record_is_named(tmp_path):
    assert fingerprint_of({"a": 1, "b": [2]}) == fingerprint_of({"b": [2], "a": 1}) != fingerprint_of({"a": 2})
    assert len(fingerprint_of({"path": tmp_path})) == 12  # values JSON cannot hold count by their text
    (tmp_path / "done.json").write_text("{not json")
    with pytest.raises(DataError, match="damaged completion marker") as error:
        ResultFolder(tmp_path, "f").read()
    assert "done.json" in str(error.value)


def test_a_one_shot_folder_refuses_a_finished_run_and_another_crashed_configuration(tmp_path):
    folder = ResultFolder(tmp_path / "eval", fingerprint_of({"langs": ["hau"]}))
    with folder.lock():
        folder.check_restartable({"langs": ["hau"]}, "evaluation")  # empty: allowed
    (tmp_path / "eval" / "config.json").write_text(json.dumps({"langs": ["hau"]}))
    folder.check_restartable({"langs": ["hau"]}, "evaluation")  # a crashed run of the same settings: redone
    with pytest.raises(DataError, match="unfinished run of another configuration"):
        folder.check_restartable({"langs": ["swa"]}, "evaluation")
    folder.finish({"seconds": 1.0})
    with pytest.raises(DataError, match="already holds evaluation results"):
        folder.check_restartable({"langs": ["hau"]}, "evaluation")
