"""Language codes: one normaliser for every spelling; the set of languages comes from the data folder."""

from __future__ import annotations

import pytest

from optical_lab.data import DataError, load_ntrex, normalize_lang, parse_langs
from optical_lab.data.languages import (
    ISO1_TO_ISO3,
    ISO3_TO_ISO1,
    canonical_code,
    dataset_code,
    display_name,
    known_languages,
    language_table,
)
from optical_lab.data.paths import DATA_ENV, data_source


@pytest.mark.parametrize(
    "spellings,canonical",
    [
        (["sw", "swa", "swh", "swh_Latn", "SWH-latn"], "swa"),
        (["tl", "fil", "tgl", "tgl_Latn"], "fil"),
        (["fa", "fas", "pes_Arab"], "fas"),
        (["az", "aze-Latn", "azj_Latn"], "aze"),
        (["sr", "srp-Cyrl", "srp_Cyrl"], "srp"),
        (["srp-Latn", "srp_Latn"], "srp-Latn"),
        (["zh", "zho-CN", "zho_Hans"], "zho"),
        (["zho-TW", "zho_Hant"], "zho-Hant"),
        (["uk", "ukr", "ukr_Cyrl"], "ukr"),
        (["fra-CA"], "fra-CA"),
    ],
)
def test_aliases_map_to_one_canonical_code(spellings, canonical):
    assert {canonical_code(s) for s in spellings} == {canonical}
    assert canonical_code(canonical) == canonical  # idempotent: a canonical code round-trips


def test_iso1_tables_round_trip():
    assert len(ISO3_TO_ISO1) == len(ISO1_TO_ISO3) > 180  # one-to-one
    assert all(ISO1_TO_ISO3[ISO3_TO_ISO1[iso3]] == iso3 for iso3 in ISO3_TO_ISO1)
    assert ISO1_TO_ISO3["ba"] == "bak" and ISO3_TO_ISO1["hye"] == "hy"


def test_real_data_languages_and_their_datasets():
    known = known_languages()
    assert known["swa"].datasets == {
        "ntrex-128": "swa",
        "sib-200": "swh_Latn",
        "mafand-mt": "swa",
        "afriqa": "swa",
        "tico-19": "sw",
    }
    assert known["fil"].datasets == {"ntrex-128": "fil", "sib-200": "tgl_Latn"}
    assert known["bak"].datasets["qald-9-plus"] == "ba"
    assert known["wol"].datasets == {"sib-200": "wol_Latn"} and known["wol"].ntrex_listed == "wol"
    assert known["aze"].ntrex_listed == "aze-Latn" and known["aze"].name == "Azerbaijani (Latin)"
    # every SIB-200 folder and every NTREX file (source and references) on disk is one language (counted from the data)
    root = data_source().path
    sib_folders = [p for p in (root / "sib-200" / "data" / "annotated").iterdir() if p.is_dir()]
    ntrex_files = list((root / "ntrex-128").glob("newstest2019-*.txt"))  # the English source counts too
    assert sum("sib-200" in e.datasets for e in known.values()) == len(sib_folders) > 0
    assert sum("ntrex-128" in e.datasets for e in known.values()) == len(ntrex_files) > 0
    assert parse_langs("uk, hau, swh_Latn, wol") == ["ukr", "hau", "swa", "wol"]
    rows = {row["code"]: row for row in language_table()}
    assert rows["swa"]["sib-200"] == "swh_Latn" and rows["swa"]["qald-9-plus"] == ""


def test_unknown_code_lists_close_matches():
    with pytest.raises(DataError, match=r"(?s)unknown language code 'swahli'.*close matches: swa"):
        normalize_lang("swahli")
    with pytest.raises(DataError, match=r"(?s)'hauu'.*close matches: hau"):
        normalize_lang("hauu")


def _synthetic_ntrex(folder, lang: str, n_lines: int = 1997) -> None:
    """An NTREX-layout folder with synthetic sentences (never copies of the real files)."""
    ntrex = folder / "ntrex-128"
    ntrex.mkdir(parents=True)
    (ntrex / "newstest2019-src.eng.txt").write_text(
        "".join(f"english sentence {i}\n" for i in range(n_lines)), encoding="utf-8"
    )
    (ntrex / f"newstest2019-ref.{lang}.txt").write_text(
        "".join(f"sentence {i} in {lang}\n" for i in range(n_lines)), encoding="utf-8"
    )
    (ntrex / "DOCUMENT_IDS.tsv").write_text("".join(f"doc{i % 123}\tx\n" for i in range(n_lines)), encoding="utf-8")


def test_a_language_the_repository_never_names(tmp_path, monkeypatch):
    # "qaa" is ISO 639-3's first code "reserved for local use": no table in the code can know it
    _synthetic_ntrex(tmp_path, "qaa-Latn")
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert normalize_lang("qaa") == "qaa" == normalize_lang("qaa_Latn")
    assert dataset_code("qaa", "ntrex-128") == "qaa-Latn"
    corpus = load_ntrex("qaa")
    assert corpus.lang == "qaa" and corpus.target[3] == "sentence 3 in qaa-Latn" and len(corpus.documents()) == 123
    assert display_name("qaa") == "qaa"
    with pytest.raises(DataError, match="no language 'swa'"):
        normalize_lang("swa")  # the user's folder holds no Swahili: the shared mirror is not consulted


def test_user_folder_with_only_wolof(tmp_path, monkeypatch):
    _synthetic_ntrex(tmp_path, "wol")
    (tmp_path / "ntrex-128" / "LANGUAGES.tsv").write_text("wol Wolof\nzul Zulu\n", encoding="utf-8")
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert load_ntrex("wo").target[0] == "sentence 0 in wol"
    assert display_name("wol") == "Wolof"
    assert normalize_lang("zul") == "zul"  # listed upstream, fetchable: known, but its file is missing
    with pytest.raises(DataError, match=r"(?s)no NTREX translation for 'zul'.*data fetch --langs zul"):
        load_ntrex("zul")


def test_cli_data_langs_lists_the_user_folder(tmp_path, monkeypatch, capsys):
    from optical_lab.cli import main

    _synthetic_ntrex(tmp_path, "qaa-Latn")
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert main(["data", "langs"]) == 0
    out = capsys.readouterr().out
    assert f"languages in {tmp_path}" in out
    assert [line.split() for line in out.splitlines()[2:]] == [
        ["eng", "English", "eng", "-", "-", "-", "-", "-"],
        ["qaa", "qaa", "qaa-Latn", "-", "-", "-", "-", "-"],
    ]
