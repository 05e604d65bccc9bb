"""SIB-200 loader: the real files (same ids and topics in every language) and every bad-input case."""

from __future__ import annotations

import pytest

from optical_lab.data import DataError
from optical_lab.data.paths import DATA_ENV, data_source
from optical_lab.data.sib import SIB_SENTENCES, load_sib, sib_languages

TOPICS = ["science/technology", "travel", "politics", "sports", "health", "entertainment", "geography"]
SIZES = {"train": 701, "dev": 99, "test": 204}


def test_every_mirrored_language_matches_english():
    langs = sib_languages()
    folders = [p for p in (data_source().path / "sib-200" / "data" / "annotated").iterdir() if p.is_dir()]
    assert len(langs) == len(folders) and {"swa", "fil", "wol", "eng"} <= set(langs)
    english = load_sib("eng")
    assert {s: len(english.splits[s]) for s in SIZES} == SIZES and len(english.all_ids()) == SIB_SENTENCES
    assert sorted(english.labels) == sorted(TOPICS)
    for lang in langs:
        language = load_sib(lang)
        for split in SIZES:
            ours, theirs = language.splits[split], english.splits[split]
            assert dict(zip(ours.index_ids, ours.categories)) == dict(zip(theirs.index_ids, theirs.categories)), (
                lang,
                split,
            )
    assert load_sib("sw").code == "swh_Latn" and load_sib("tgl_Latn").lang == "fil"


def _write_language(root, code, rows_by_split, labels=TOPICS, header="index_id\tcategory\ttext"):
    folder = root / "sib-200" / "data" / "annotated" / code
    folder.mkdir(parents=True)
    (folder / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    for split, rows in rows_by_split.items():
        (folder / f"{split}.tsv").write_text(header + "\n" + "".join(r + "\n" for r in rows), encoding="utf-8")
    return folder


def _rows(lang):
    """Synthetic rows: 701/99/204 ids, topic by id."""
    rows, next_id = {}, 1
    for split, n in SIZES.items():
        rows[split] = [f"{i}\t{TOPICS[i % 7]}\tsentence {i} in {lang}" for i in range(next_id, next_id + n)]
        next_id += n
    return rows


@pytest.fixture
def sib_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    _write_language(tmp_path, "eng_Latn", _rows("eng"))
    return tmp_path


def test_a_user_language_in_the_same_layout(sib_dir):
    _write_language(sib_dir, "qaa_Latn", _rows("qaa"))
    language = load_sib("qaa")
    assert language.code == "qaa_Latn" and language.splits["dev"].texts[0] == "sentence 702 in qaa"


def test_a_language_without_labels_uses_englishs_and_its_tasks_run(sib_dir):
    """Upstream ships no labels.txt for bem, luo, twi: the loader used English's, but the SIB/FLORES tasks
    asked for the missing file and called the language unavailable (the zero-shot suite skipped all three)."""
    from optical_lab.tasks.registry import get_task

    (_write_language(sib_dir, "qaa_Latn", _rows("qaa")) / "labels.txt").unlink()
    assert load_sib("qaa").labels == TOPICS
    for name in ("flores-sentences", "sib-topics"):
        task = get_task(name)
        assert task.unavailable("qaa") is None, name
        assert sib_dir / "sib-200" / "data" / "annotated" / "eng_Latn" / "labels.txt" in task.data_files("qaa")


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda r: r, None),
        (
            lambda r: {**r, "train": [x.replace("\tsports\t", "\tcooking\t") for x in r["train"]]},
            r"train.tsv, line 4: unknown topic 'cooking'",
        ),
        (
            lambda r: {**r, "dev": r["dev"][:3] + ["705\ttravel"] + r["dev"][4:]},
            r"dev.tsv, line 5: 2 tab-separated fields",
        ),
        (lambda r: {**r, "test": r["test"][:1] + ["802\thealth\t  "] + r["test"][2:]}, r"test.tsv, line 3: empty text"),
        (
            lambda r: {**r, "test": r["test"][:1] + [r["test"][0]] + r["test"][2:]},
            r"test.tsv, line 3: index_id 801 repeats line 2",
        ),
        (
            lambda r: {
                **r,
                "train": r["train"][:10] + [r["train"][10].replace("\thealth\t", "\tpolitics\t")] + r["train"][11:],
            },
            r"train.tsv, line 12: index_id 11 has topic 'politics', English has 'health'",
        ),
        (
            lambda r: {**r, "train": r["train"][:-1]},
            r"train.tsv: 700 rows, English has 701 \(missing e.g. index_id 701\)",
        ),
        (lambda r: {**r, "dev": r["dev"] + [r["train"][0]]}, r"index_id 1 is in both train.tsv and dev.tsv"),
        (
            lambda r: {**r, "dev": r["dev"] + ["9999\ttravel\tx"]},
            r"dev.tsv, line 101: index_id 9999 is not in English dev.tsv",
        ),
    ],
)
def test_bad_rows_name_file_line_and_fix(sib_dir, mutate, message):
    _write_language(sib_dir, "qaa_Latn", mutate(_rows("qaa")))
    if message is None:
        assert len(load_sib("qaa").all_ids()) == SIB_SENTENCES
        return
    with pytest.raises(DataError, match=rf"(?s)qaa_Latn.{{1,2}}{message}.*Fix: "):
        load_sib("qaa")


@pytest.mark.parametrize(
    "header,message",
    [
        ("id\tcategory\ttext", r"header is 'id.*\(no index_id column\)"),
        (None, r"header is '1.*\(no index_id, category, text column\)"),
    ],
)
def test_missing_header_or_index_id_column(sib_dir, header, message):
    rows = _rows("qaa")
    if header is None:  # no header at all: the first data row is read as the header
        folder = _write_language(sib_dir, "qaa_Latn", rows)
        (folder / "train.tsv").write_text("".join(r + "\n" for r in rows["train"]), encoding="utf-8")
    else:
        _write_language(sib_dir, "qaa_Latn", rows, header=header)
    with pytest.raises(DataError, match=rf"(?s)train.tsv, line 1: {message}.*Fix: the first line must be the header"):
        load_sib("qaa")


def test_english_must_have_all_sentences(sib_dir):
    (sib_dir / "sib-200" / "data" / "annotated" / "eng_Latn" / "test.tsv").write_text(
        "index_id\tcategory\ttext\n1000\ttravel\tx\n", encoding="utf-8"
    )
    with pytest.raises(DataError, match=f"801 sentences over train/dev/test, expected {SIB_SENTENCES}"):
        load_sib("eng")


def test_language_without_folder(sib_dir):
    with pytest.raises(DataError, match=r"(?s)SIB-200 has no folder for 'wol'.*Fix: add the language"):
        load_sib("wol")
