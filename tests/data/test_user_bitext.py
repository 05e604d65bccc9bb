"""User bitext (TSV or two line-aligned files): read strictly, every bad input a clear error."""

from __future__ import annotations

import pytest

from optical_lab.data import DataError
from optical_lab.data.user_bitext import load_bitext_files, load_bitext_tsv


def test_tsv_with_and_without_header(tmp_path):
    (tmp_path / "a.tsv").write_text(
        "english\tswahili\nGood morning\tHabari za asubuhi\nThank you\tAsante\n", encoding="utf-8"
    )
    bitext = load_bitext_tsv(tmp_path / "a.tsv", "sw")
    assert bitext.pairs() == [("Good morning", "Habari za asubuhi"), ("Thank you", "Asante")] and bitext.lang == "swa"
    (tmp_path / "b.tsv").write_text("Good morning\tHabari za asubuhi\r\n", encoding="utf-8")
    assert load_bitext_tsv(tmp_path / "b.tsv", "swa").pairs() == [("Good morning", "Habari za asubuhi")]
    assert len(load_bitext_tsv(tmp_path / "a.tsv", "swa", header=False)) == 3


@pytest.mark.parametrize(
    "content,message",
    [
        ("a\tb\nc\n", r"line 2: 0 tabs, expected exactly 1"),
        ("a\tb\nc\td\te\n", r"line 2: 2 tabs, expected exactly 1"),
        ("a\tb\n\tx\n", r"line 2: the English side is empty"),
        ("a\tb\nx\t \n", r"line 2: the foreign side is empty"),
        ("a\tb\n\nc\td\n", r"line 2: empty line"),
        ("", r"file is empty"),
        ("english\tforeign\n", r"no sentence pairs after the header"),
    ],
)
def test_bad_tsv(tmp_path, content, message):
    (tmp_path / "bad.tsv").write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=rf"(?s)bad.tsv(, |: ){message}.*Fix: "):
        load_bitext_tsv(tmp_path / "bad.tsv", "swa")


def test_tsv_not_utf8(tmp_path):
    (tmp_path / "bad.tsv").write_bytes("a\tb\ncaf\xe9\tkahawa\n".encode("latin-1"))
    with pytest.raises(DataError, match="bad.tsv, line 2: not valid UTF-8"):
        load_bitext_tsv(tmp_path / "bad.tsv", "swa")


def test_two_files(tmp_path):
    (tmp_path / "t.en").write_text("one\ntwo\n", encoding="utf-8")
    (tmp_path / "t.xx").write_text("moja\nmbili\n", encoding="utf-8")
    bitext = load_bitext_files(tmp_path / "t.en", tmp_path / "t.xx", "swh_Latn")
    assert bitext.pairs() == [("one", "moja"), ("two", "mbili")] and bitext.lang == "swa"
    (tmp_path / "short.xx").write_text("moja\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"t.en, line 2: bitext is ragged: 2 lines here but 1"):
        load_bitext_files(tmp_path / "t.en", tmp_path / "short.xx", "swa")
    (tmp_path / "gap.xx").write_text("moja\n\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"gap.xx, line 2: empty line"):
        load_bitext_files(tmp_path / "t.en", tmp_path / "gap.xx", "swa")
