"""AfriQA and TICO-19 (issue #29): loaders (every malformed record named), the three tasks on a language
the code never names, the shared passage pool, MAFAND pairs found by scanning (``en_LANG`` too), and
``--bitext mafand`` refusing a language without a pair.

The synthetic data folder is tests/tasks/test_suite.py's (NTREX-128 + SIB-200 for ``quc``) plus AfriQA
questions/passages and a TICO-19 translation memory for ``quc``, and AfriQA for a second language
(``tzj``) whose passages join the shared pool. The real-data checks at the end skip without the mirror.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from test_suite import LANG, _write, data, make_data, tiny  # noqa: F401 (fixtures)

from optical_lab.data import DataError

OTHER = "tzj"  # Tz'utujil: a second AfriQA-layout language, only in this test's data folder
N_QUESTIONS = 40


def question(lang: str, split: str, i: int) -> dict:
    return {
        "id": i,
        "question": f"{lang} kutzij {split} {i} janipa",
        "answers": "['x']",
        "lang": lang,
        "split": split,
        "translated_question": f"Question {split} {i} in {lang}?",
    }


def passage(lang: str, split: str, i: int) -> dict:
    shared = i == 0  # question 0 of every language and split has the same passage: the pool keeps it once
    return {
        "id": str(i),
        "context": "The shared passage." if shared else f"Passage {i} of {split} for {lang}.",
        "title": "T",
        "question_lang": "ignored",
        "answer_pivot": {},
    }


def write_jsonl(path: Path, records: list) -> Path:
    _write(path, [r if isinstance(r, str) else json.dumps(r) for r in records])
    return path


def afriqa_files(root: Path, lang: str, splits=("train", "test"), gold=("test",)) -> None:
    """Queries for ``splits`` (no dev: not every split exists), gold passages for ``gold`` (every other question)."""
    base = root / "afriqa" / "data"
    for split in splits:
        write_jsonl(
            base / "queries" / lang / f"queries.afriqa.{lang}.en.{split}.json",
            [question(lang, split, i) for i in range(N_QUESTIONS)],
        )
    for split in gold:
        write_jsonl(
            base / "gold_passages" / lang / f"gold_span_passages.afriqa.{lang}.en.{split}.json",
            [passage(lang, split, i) for i in range(0, N_QUESTIONS, 2)],
        )


def tmx(code: str, n: int, units: str | None = None, prolog: str = "") -> bytes:
    body = (
        units
        if units is not None
        else "".join(
            f'<tu tuid="doc{i // 100}:{i + 1}"><tuv xml:lang="en"><seg>English segment {i}</seg></tuv>'
            f'<tuv xml:lang="{code}"><seg>tzij {i}</seg></tuv></tu>\n'
            for i in range(n)
        )
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n{prolog}<tmx version="1.4"><header srclang="en"/><body>\n'
        f"{body}</body></tmx>\n"
    ).encode("utf-8")


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


@pytest.fixture
def new_data(data):
    """test_suite's folder + AfriQA (quc, tzj) + TICO-19 (quc, 3,071 units)."""
    afriqa_files(data, LANG)
    afriqa_files(data, OTHER, splits=("test",))
    write_zip(data / "tico-19" / "data" / "TM" / f"all.en-{LANG}.tmx.zip", {f"all.en-{LANG}.tmx": tmx(LANG, 3071)})
    return data


def test_the_new_tasks_evaluate_a_language_only_the_data_folder_has(new_data, tmp_path, capsys):
    from optical_lab.cli import main
    from optical_lab.data.languages import known_languages

    entry = known_languages()[LANG]
    assert {"afriqa", "tico-19", "ntrex-128", "sib-200"} <= set(entry.datasets)
    out = tmp_path / "out"
    assert (
        main(
            [
                "evaluate",
                "--tasks",
                "afriqa-passages,afriqa-questions,tico-sentences",
                "--langs",
                f"{LANG},eng",
                "--model",
                "tiny",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    passages = pd.read_csv(out / f"afriqa-passages/{LANG}/afriqa-passages.per_query.csv")
    assert len(passages) == N_QUESTIONS // 2  # test questions with a gold passage (train has none here)
    row = pd.read_csv(out / "afriqa-passages.csv", index_col="lang").loc[LANG]
    assert row["MRR@10"] == pytest.approx(passages["MRR@10"].mean()) and {"nDCG@10", "R@10", "R@100"} <= set(row.index)
    questions = pd.read_csv(out / f"afriqa-questions/{LANG}/afriqa-xx-en.per_query.csv")
    assert len(questions) == 2 * N_QUESTIONS  # train + test (no dev file): every question
    tico = pd.read_csv(out / "tico-sentences.csv", index_col="lang").loc[LANG]
    assert {"acc@1", "MRR", "xsim", "tico-xx-en_acc@1", "tico-xx-en_xsim"} <= set(tico.index)
    assert len(pd.read_csv(out / f"tico-sentences/{LANG}/tico-en-xx.per_query.csv")) == 3071
    skipped = pd.read_csv(out / "skipped.csv")
    assert set(skipped["lang"]) == {"eng"} and "\n" not in "".join(skipped["reason"])  # one line each
    # an interrupted run (no done.json, no table yet): summary.md rebuilds the table from the per-query files
    from optical_lab.experiments.evaluate import render_summary

    finished = (out / "afriqa-questions.md").read_text()
    (out / "done.json").unlink()
    (out / "afriqa-questions.md").unlink()
    summary = render_summary(out)
    assert "the run did not finish" in summary and f"## afriqa-questions (languages finished: {LANG})" in summary
    assert finished.strip().splitlines()[-1] in summary  # the same row as the finished run's table


def test_the_pool_is_shared_and_deduplicated(new_data):
    from optical_lab.tasks.registry import get_task

    task = get_task("afriqa-passages")
    pool = task.pool()
    # quc test + tzj test: 20 gold passages each, passage 0 shared by both -> 39 distinct
    assert len(pool) == 2 * (N_QUESTIONS // 2) - 1 and "The shared passage." in pool.values()
    collection = task.collection(LANG)
    assert collection.documents is pool and len(collection.queries) == N_QUESTIONS // 2
    first = collection.qrels["test-0"]
    assert pool[next(iter(first))] == "The shared passage."
    texts = task.eval_texts(LANG, None)
    assert sum(len(v) for v in texts.values()) == N_QUESTIONS // 2 + len(pool)


def test_afriqa_splits_and_folds(new_data):
    from optical_lab.tasks.registry import get_task

    everything = get_task("afriqa-questions")
    folds = everything.folds(LANG, 2, 0)  # every question evaluated: students train on NTREX, never on AfriQA
    assert len(folds) == 2 and folds[0].train.source == "ntrex-128"
    test_only = get_task("afriqa-questions", afriqa_split="test")
    (fold,) = test_only.folds(LANG, 2, 0)
    evaluated = set(test_only.eval_texts(LANG, fold)[f"afriqa questions {LANG} (test)"])
    assert len(evaluated) == N_QUESTIONS and fold.train.source == "afriqa/train" and len(fold.train) == N_QUESTIONS
    assert not evaluated & set(fold.train.foreign) and len(fold.dev) == 0  # this language has no dev split
    with pytest.raises(DataError, match="afriqa-split"):
        get_task("afriqa-questions", afriqa_split="dev")


def test_the_leak_guard_sees_the_new_evaluation_texts(new_data, tmp_path, capsys):
    from test_suite import _compare

    from optical_lab.cli import main

    planted = [f"Clean English line {i}\tclean foreign line {i}" for i in range(30)]
    planted += [
        f"English segment 7\t{question(LANG, 'test', 3)['question']}",  # a TICO text, an AfriQA question
        f"{question(LANG, 'test', 3)['translated_question']}\tclean",
    ]  # and its English translation
    _write(tmp_path / "planted.tsv", planted)
    out = tmp_path / "refused"
    assert (
        main(
            _compare(
                tmp_path,
                out,
                "--bitext",
                str(tmp_path / "planted.tsv"),
                "--eval-tasks",
                "afriqa-questions,tico-sentences",
            )
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "leak guard" in err and "3 evaluation texts" in err and not out.exists()
    assert "afriqa questions quc" in err and "afriqa questions eng" in err and "tico eng" in err


# ------------------------------------------------------------------ AfriQA loader: malformed records
def _one_language(tmp_path: Path, queries: list, gold: list | None = None, lang: str = LANG) -> Path:
    root = tmp_path / "d"
    write_jsonl(root / "afriqa/data/queries" / lang / f"queries.afriqa.{lang}.en.test.json", queries)
    if gold is not None:
        write_jsonl(root / "afriqa/data/gold_passages" / lang / f"gold_span_passages.afriqa.{lang}.en.test.json", gold)
    return root


GOOD = [question(LANG, "test", i) for i in range(3)]


@pytest.mark.parametrize(
    "queries,gold,message",
    [
        ([GOOD[0], "{not json"], None, r"queries\.afriqa\.quc\.en\.test\.json, line 2: not valid JSON"),
        ([GOOD[0], "[1, 2]"], None, r"line 2: a JSON list, expected an object"),
        (
            [{k: v for k, v in GOOD[0].items() if k != "translated_question"}],
            None,
            r"line 1: no field translated_question",
        ),
        ([GOOD[0], {**GOOD[1], "split": "train"}], None, r"line 2: split 'train' in the test file"),
        ([GOOD[0], {**GOOD[1], "id": 0}], None, r"line 2: id 0 repeats line 1"),
        ([{**GOOD[0], "question": 12}], None, r"line 1: field 'question' is a int"),
        ([{**GOOD[0], "id": None}], None, r"line 1: id None is not an integer"),
        (
            GOOD,
            [passage(LANG, "test", 0), passage(LANG, "test", 7)],
            r"gold_span_passages.*line 2: gold passage for question id 7",
        ),
        (GOOD, [passage(LANG, "test", 1), passage(LANG, "test", 1)], r"line 2: id 1 repeats line 1"),
        (GOOD, [{**passage(LANG, "test", 1), "context": ["a list"]}], r"line 1: field 'context' is a list"),
    ],
)
def test_afriqa_malformed_records_are_named(tmp_path, queries, gold, message):
    from optical_lab.data.afriqa import load_afriqa

    root = _one_language(tmp_path, queries, gold)
    with pytest.raises(DataError, match=f"(?s){message}.*Fix: "):
        load_afriqa(LANG, root)


def test_afriqa_upstream_gaps_are_skipped_and_counted(tmp_path):
    from optical_lab.data.afriqa import load_afriqa

    queries = [GOOD[0], {**GOOD[1], "question": ""}, GOOD[2]]
    gold = [passage(LANG, "test", 0), {**passage(LANG, "test", 2), "context": None, "question_lang": float("nan")}]
    loaded = load_afriqa("quc", _one_language(tmp_path, queries, gold))
    assert [q.qid for q in loaded.questions] == ["test-0", "test-2"] and list(loaded.passages) == ["test-0"]
    assert loaded.skipped == [
        "queries.afriqa.quc.en.test.json, line 2: empty question",
        "gold_span_passages.afriqa.quc.en.test.json, line 2: no context (no gold passage)",
    ]
    root = tmp_path / "d"
    (root / f"afriqa/data/queries/{LANG}/queries.afriqa.{LANG}.en.test.json").unlink()
    with pytest.raises(DataError, match="gold passages for the test split but no questions"):
        load_afriqa(LANG, root)


# ------------------------------------------------------------------ TICO-19 loader: malformed units
def _tico(tmp_path: Path, content: bytes | dict[str, bytes], code: str = "ha") -> Path:
    members = content if isinstance(content, dict) else {f"all.en-{code}.tmx": content}
    return write_zip(tmp_path / f"all.en-{code}.tmx.zip", members)


def unit(tuid: str | None, en: str = "Hello", ha: str | None = "Sannu") -> str:
    attribute = f' tuid="{tuid}"' if tuid is not None else ""
    target = f'<tuv xml:lang="ha"><seg>{ha}</seg></tuv>' if ha is not None else ""
    return f'<tu{attribute}><tuv xml:lang="en"><seg>{en}</seg></tuv>{target}</tu>\n'


ENTITY = '<!DOCTYPE tmx [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>\n'


@pytest.mark.parametrize(
    "content,message",
    [
        (tmx("ha", 0, unit("a:1", en="&lol2;"), prolog=ENTITY), r"refused: the TMX declares entities"),
        (tmx("ha", 0, unit("a:1"), prolog='<!DOCTYPE tmx [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'), r"refused"),
        (b"<tmx><body><tu tuid='a:1'>\n<tuv></tmx>", r"line 2: not well-formed XML"),
        ({"a.tmx": tmx("ha", 2), "b.tmx": tmx("ha", 2)}, r"2 \.tmx files in the zip, expected 1"),
        (tmx("ha", 0, unit("a:1") + unit(None)), r"<tu> number 2 has no tuid"),
        (tmx("ha", 0, unit("a:1") + unit("a:1")), r"tuid a:1 repeats <tu> number 1"),
        (tmx("ha", 0, unit("a:1") + unit("a:2", ha=None)), r'tuid a:2: 0 <tuv xml:lang="ha">, expected 1'),
        (tmx("ha", 0, unit("a:1", en=" ")), r"tuid a:1: empty or missing <seg> for en"),
        (tmx("ha", 2), r"2 translation units, expected 3"),
    ],
)
def test_tico_malformed_units_are_named(tmp_path, content, message):
    from optical_lab.data.tico import read_tmx

    path = _tico(tmp_path, content)
    with pytest.raises(DataError, match=f"(?s){message}.*Fix: ") as caught:
        read_tmx(path, "ha", expected=3)
    assert str(path) in str(caught.value)


def test_tico_reads_the_zip_in_memory(tmp_path):
    from optical_lab.data.tico import read_tmx

    path = _tico(tmp_path, tmx("ha", 0, unit("CMU_1:1", en="Fever <ph>x</ph> now", ha="Zazzabi") + unit("wiki_9:2")))
    corpus = read_tmx(path, "ha", expected=2)
    assert corpus.doc_ids == ["CMU_1", "wiki_9"] and corpus.english[0] == "Fever x now" and corpus.lang == "hau"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # nothing extracted beside the zip
    (tmp_path / "bad.tmx.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable zip file"):
        read_tmx(tmp_path / "bad.tmx.zip", "ha")


# ------------------------------------------------------------------ MAFAND pairs come from the data
def test_mafand_pairs_are_scanned_whatever_the_separator(new_data, tmp_path):
    from optical_lab.data.languages import known_languages
    from optical_lab.data.mafand import load_mafand, mafand_langs

    for folder, lines in ((f"en_{LANG}", 12), (f"en-{OTHER}", 9)):  # upstream writes en_luo beside en-hau
        code = folder[3:]
        for split, n in (("train", lines), ("dev", 3), ("test", 3)):
            _write(new_data / "mafand-mt" / folder / f"{split}.en", [f"{split} english {i} {code}" for i in range(n)])
            _write(new_data / "mafand-mt" / folder / f"{split}.{code}", [f"{split} tzij {i} {code}" for i in range(n)])
    assert mafand_langs() == sorted([LANG, OTHER]) and known_languages()[LANG].datasets["mafand-mt"] == LANG
    assert len(load_mafand(LANG, "train")) == 12 and len(load_mafand(OTHER, "dev")) == 3
    with pytest.raises(DataError, match=r"(?s)MAFAND-MT has no en-eng pair.*Fix: .*quc, tzj"):
        load_mafand("eng")


def test_bitext_mafand_without_a_pair_is_an_error_not_a_switch(new_data, tmp_path, capsys):
    from test_suite import _compare

    from optical_lab.cli import main

    def pair(code: str, sizes=(("train", 40), ("dev", 5), ("test", 5))) -> None:
        for split, n in sizes:
            _write(new_data / "mafand-mt" / f"en-{code}" / f"{split}.en", [f"pair {split} {i}" for i in range(n)])
            _write(new_data / "mafand-mt" / f"en-{code}" / f"{split}.{code}", [f"tzij {split} {i}" for i in range(n)])

    pair(OTHER)  # the data folder has MAFAND-MT, but no pair for LANG
    out = tmp_path / "no-pair"
    assert main(_compare(tmp_path, out, "--bitext", "mafand")) == 1
    err = capsys.readouterr().err
    assert f"MAFAND-MT has no en-{LANG} pair" in err and "trains on the task's own bitext" not in err
    assert not out.exists()
    pair(LANG)  # a pair added to the data folder is used as is
    assert main(_compare(tmp_path, out, "--bitext", "mafand", "--fold-scheme", "all-eval")) == 0
    leakage = json.loads((out / "leakage.json").read_text())["langs"][LANG][0]
    assert leakage["train_and_dev_vs_this_fold"]["train"].startswith("mafand-mt train+dev")
    assert leakage["train_and_dev_vs_this_fold"]["n_train_texts"] == 2 * (40 + 5)


def test_compute_plan_reads_the_pair_from_the_data(new_data):
    from optical_lab.experiments.compute_plan import truncation
    from optical_lab.experiments.plan import ComparePlan
    from optical_lab.methods.config import TrainConfig
    from optical_lab.models.encoder import Encoder

    plan = ComparePlan(
        langs=[LANG],
        methods=["optical"],
        folds=1,
        bitext="mafand",
        fold_scheme="all-eval",
        train=TrainConfig(steps=2, batch_size=2, max_length=32, max_train_pairs=None),
    )
    tokenizer = Encoder.load("tiny").tokenizer

    def pair(code: str) -> None:
        for split in ("train", "dev"):
            for side in ("en", code):
                _write(new_data / "mafand-mt" / f"en-{code}" / f"{split}.{side}", [f"{side} {i}" for i in range(7)])

    pair(OTHER)
    with pytest.raises(DataError, match=f"no en-{LANG} pair"):
        truncation(plan, LANG, tokenizer)
    pair(LANG)
    assert truncation(plan, LANG, tokenizer)["pairs"] == 7


# ------------------------------------------------------------------ the real mirror (fast checks)
def _mirror() -> Path | None:
    from optical_lab.data.paths import REPO_ROOT

    root = REPO_ROOT.parent / "shared" / "data"
    return root if (root / "afriqa").is_dir() and (root / "tico-19").is_dir() else None


@pytest.mark.skipif(_mirror() is None, reason="no ../shared/data with afriqa/ and tico-19/")
def test_real_afriqa_and_tico_files():
    from optical_lab.data.afriqa import load_afriqa
    from optical_lab.data.languages import known_languages, normalize_lang
    from optical_lab.data.tico import TICO_SEGMENTS, load_tico

    root = _mirror()
    known = known_languages(root)
    assert {c for c, e in known.items() if "afriqa" in e.datasets} >= {"hau", "ibo", "swa", "yor", "zul", "twi", "bem"}
    assert {c for c, e in known.items() if "tico-19" in e.datasets} >= {"hau", "swa", "zul", "som", "lug", "lin", "tir"}
    assert known["luo"].datasets["mafand-mt"] == "luo"  # the upstream en_luo folder
    assert [normalize_lang(c, root) for c in ("sw", "swh", "lg", "ti", "ln")] == ["swa", "swa", "lug", "tir", "lin"]
    corpus = load_tico("sw", root)
    assert len(corpus.tuids) == TICO_SEGMENTS and len(set(corpus.doc_ids)) > 20
    twi = load_afriqa("twi", root)
    assert "queries.afriqa.twi.en.dev.json, line 109: empty question" in twi.skipped
    swa = load_afriqa("swa", root)
    assert {q.split for q in swa.questions} == {"train", "dev", "test"}
    assert {k.split("-")[0] for k in swa.passages} == {"test"}  # swa: gold passages for test only


def test_the_survey_compares_every_training_source_with_the_new_tasks(new_data, tmp_path, capsys):
    from optical_lab.cli import main

    for split, lines in (("train", ["English segment 5", "unrelated"]), ("dev", ["x", "y"]), ("test", ["x", "y"])):
        _write(new_data / "mafand-mt" / f"en-{LANG}" / f"{split}.en", lines)  # a planted TICO segment in train
        _write(new_data / "mafand-mt" / f"en-{LANG}" / f"{split}.{LANG}", ["a", "b"])
    out = tmp_path / "overlap.md"
    assert main(["data", "overlap", "--tasks", "afriqa-questions,tico-sentences", "--out", str(out)]) == 0
    table = out.read_text()
    row = next(line for line in table.splitlines() if f"| {LANG}" in line and "mafand-mt train" in line)
    assert "| 1 (1) of 6,142" in row  # tico-sentences: 3,071 English + 3,071 target texts compared, one leaked
    assert any("ntrex-128" in line for line in table.splitlines())
    # AfriQA's own questions are no training source for an AfriQA task that evaluates every split
    from optical_lab.experiments.suite import survey_overlap
    from optical_lab.tasks.registry import get_task

    rows = survey_overlap({"afriqa-questions": get_task("afriqa-questions")}, [LANG])
    assert rows and not any(r["train"].startswith("afriqa") for r in rows)
    rows = survey_overlap({"afriqa-questions": get_task("afriqa-questions", afriqa_split="test")}, [LANG])
    assert {r["train"] for r in rows} >= {"afriqa train questions", "mafand-mt train", "ntrex-128", "flores-200 dev"}
