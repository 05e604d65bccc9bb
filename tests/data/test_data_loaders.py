"""Loaders on the real files, and every bad-input case raising the one clear error."""

from __future__ import annotations

import pytest

from optical_lab.data import DataError, load_mafand, load_ntrex, normalize_lang, parse_langs
from optical_lab.data.paths import DATA_ENV, data_dir
from optical_lab.data.text_files import read_lines, read_parallel
from optical_lab.data.trec import load_trec_collection, read_documents, read_qrels, read_run, write_qrels, write_run


def test_ntrex_counts_and_document_ids():
    corpus = load_ntrex("hau")
    assert len(corpus.english) == len(corpus.target) == len(corpus.doc_ids) == 1997
    assert len(corpus.documents()) == 123
    assert corpus.doc_ids[0] == "bbc.381790"
    assert corpus.english[0].startswith("Welsh AMs worried")


def test_ntrex_english_is_the_monolingual_ceiling():
    corpus = load_ntrex("eng")
    assert corpus.target == corpus.english


@pytest.mark.parametrize("lang,lines", [("hau", 3098), ("zul", 3500)])
def test_mafand_train_counts(lang, lines):
    bitext = load_mafand(lang, "train")
    assert len(bitext) == lines and bitext.lang == lang


def test_mafand_unknown_pair():
    with pytest.raises(DataError, match="no en-fra pair"):
        load_mafand("fra")


def test_unknown_language_names_the_fix():
    with pytest.raises(DataError, match=r"(?s)unknown language code .xyz.*Fix: use one of"):
        normalize_lang("xyz")
    assert parse_langs("uk, hau") == ["ukr", "hau"]


def test_ragged_bitext(tmp_path):
    (tmp_path / "a.en").write_text("one\ntwo\nthree\n", encoding="utf-8")
    (tmp_path / "a.xx").write_text("un\ndeux\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"a\.en, line 3: bitext is ragged: 3 lines here but 2"):
        read_parallel(tmp_path / "a.en", tmp_path / "a.xx")


def test_empty_file(tmp_path):
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="file is empty"):
        read_lines(tmp_path / "empty.txt")


def test_empty_line_is_not_silently_dropped(tmp_path):
    (tmp_path / "gap.txt").write_text("one\n\nthree\n", encoding="utf-8")
    with pytest.raises(DataError, match="gap.txt, line 2: empty line"):
        read_lines(tmp_path / "gap.txt")


def test_not_utf8(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("ok\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="line 2: not valid UTF-8"):
        read_lines(tmp_path / "latin1.txt")


def test_wrong_line_count(tmp_path):
    (tmp_path / "short.txt").write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(DataError, match="has 2 lines, expected 1997"):
        read_lines(tmp_path / "short.txt", expected=1997)


def test_missing_data_directory(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=r"(?s)not a directory.*Fix"):
        data_dir()


def test_data_directory_without_the_dataset(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    monkeypatch.setenv("OPTICAL_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    import optical_lab.data.paths as paths

    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path / "repo")
    with pytest.raises(DataError, match="optical-lab data fetch"):
        load_ntrex("hau")


def test_env_var_wins(monkeypatch, tmp_path):
    (tmp_path / "ntrex-128").mkdir()
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert data_dir("ntrex-128") == tmp_path


def test_trec_roundtrip_and_errors(tmp_path):
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1, "d3": 0}}
    write_qrels(qrels, tmp_path / "q.qrels")
    assert read_qrels(tmp_path / "q.qrels") == qrels
    run = {"q1": {"d1": 0.5, "d2": 0.25}}
    write_run(run, tmp_path / "r.run")
    assert read_run(tmp_path / "r.run") == run
    (tmp_path / "bad.qrels").write_text("q1 0 d1 1\nq2 d2\n", encoding="utf-8")
    with pytest.raises(DataError, match="bad.qrels, line 2"):
        read_qrels(tmp_path / "bad.qrels")


def test_user_collection_files(tmp_path):
    (tmp_path / "topics.tsv").write_text("q1\thello world\n", encoding="utf-8")
    (tmp_path / "qrels").write_text("q1 0 d1 1\n", encoding="utf-8")
    (tmp_path / "docs.jsonl").write_text(
        '{"doc_id": "d1", "text": "hallo welt"}\n{"doc_id": "d2", "text": "x"}\n', encoding="utf-8"
    )
    collection = load_trec_collection(tmp_path / "topics.tsv", tmp_path / "qrels", tmp_path / "docs.jsonl", "deu")
    assert collection.documents == {"d1": "hallo welt", "d2": "x"}
    (tmp_path / "bad.jsonl").write_text('{"doc_id": "d1", "text": "ok"}\n{"doc_id": \n', encoding="utf-8")
    with pytest.raises(DataError, match="bad.jsonl, line 2: invalid JSON"):
        read_documents(tmp_path / "bad.jsonl")
