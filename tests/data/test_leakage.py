"""Leak guard: a planted evaluation sentence in the training bitext is caught, exactly and normalised."""

from __future__ import annotations

import json

import pytest

from optical_lab.data import Bitext, DataError
from optical_lab.data.leakage import guard_overlap, measure_overlap, normalise_text

EVAL = {
    "queries.en": ["Where is the station?", "The cat sleeps."],
    "documents.xx": ["Kituo kiko wapi?", "Paka analala."],
}


def _train(*pairs):
    return Bitext([p[0] for p in pairs], [p[1] for p in pairs], "swa", source="train")


def test_normalisation():
    assert normalise_text("  The  CAT, sleeps!\u00a0") == "the cat sleeps"
    assert normalise_text("ﬁne") == "fine"  # NFKC: the ligature is two letters
    assert normalise_text("...") == ""


def test_clean_bitext_passes_and_records_zero(tmp_path):
    report = guard_overlap(_train(("Good morning", "Habari za asubuhi")), EVAL, write_to=tmp_path / "leak.json")
    saved = json.loads((tmp_path / "leak.json").read_text(encoding="utf-8"))
    assert report.leaked == saved["leaked"] == 0 and [s["n_texts"] for s in saved["sets"]] == [2, 2]


def test_planted_exact_duplicate_on_the_foreign_side():
    train = _train(("Good morning", "Habari za asubuhi"), ("unrelated", "Paka analala."))
    report = measure_overlap(train, EVAL)
    counts = {s.name: (s.exact, s.normalised) for s in report.sets}
    assert counts == {"queries.en": (0, 0), "documents.xx": (1, 1)}
    with pytest.raises(
        DataError, match=r"(?s)1 evaluation texts also occur.*documents.xx: 1 of 2 \(1 exact\).*--allow-overlap 1"
    ):
        report.check(0)
    assert report.check(allow_overlap=1) is report


def test_planted_normalised_duplicate_on_the_english_side(tmp_path):
    train = _train(("where IS the   station", "x"), ("THE CAT SLEEPS", "y"))
    report = measure_overlap(train, EVAL)
    assert [(s.exact, s.normalised) for s in report.sets] == [(0, 2), (0, 0)]
    with pytest.raises(DataError, match="2 evaluation texts"):
        guard_overlap(train, EVAL, allow_overlap=1, write_to=tmp_path / "leak.json")
    assert json.loads((tmp_path / "leak.json").read_text(encoding="utf-8"))["sets"][0]["examples"] == EVAL["queries.en"]
