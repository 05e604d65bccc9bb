"""`optical-lab qald`: zero-shot QALD-9-plus question -> SPARQL retrieval, one model on both sides.

For every language: macro F1 (mean per-question answer F1), "Macro F1 QALD", micro F1, Hits@1 and MRR
(see :mod:`optical_lab.tasks.qald`), plus two reference points on the *same* questions:
English with the same model (``en_F1``, the monolingual ceiling) and a uniformly random pick
(``chance_F1``). Everything lands in ``results/qald-zero-shot-<timestamp>/``: ``config.json``,
``environment.json``, ``candidates.tsv`` (the verbalised queries), ``metrics.csv`` / ``metrics.md``
and, per language, ``qald.run`` (TREC run), ``qald.qrels``, ``qald.topics.tsv`` and
``qald.per_query.csv``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..data.languages import ISO3_TO_ISO1, parse_langs
from ..data.trec import write_qrels, write_run, write_topics
from ..io import write_csv, write_text
from ..models.registry import DEFAULT_MODEL
from ..tasks.qald import (
    QaldTask,
    candidate_texts,
    chance_scores,
    evaluate_qald,
    get_dataset,
    qald_summary,
    question_texts,
)
from .cache import ResultFolder, fingerprint_of
from .evaluate import check_zero_shot_settings
from .records import new_results_dir, record_run

DEFAULT_LANGS = "uk,lt,be,ba,hy,en"


@dataclass
class QaldZeroShotConfig:
    langs: list[str] = field(default_factory=lambda: parse_langs(DEFAULT_LANGS))
    model: str = DEFAULT_MODEL
    max_length: int = 256
    translations: str = "first"
    keep_operators: bool = False
    qald_file: str | None = None  # None = QALD-9-plus DBpedia test (via the data directory)
    task: str = "qald question->SPARQL retrieval, zero-shot (teacher on both sides)"

    def __post_init__(self) -> None:
        check_zero_shot_settings(self.langs, self.model, self.max_length)


def run_qald_zero_shot(config: QaldZeroShotConfig, out_root: str = "results", progress: bool = True) -> pd.DataFrame:
    dataset = get_dataset(config.qald_file)
    folder = new_results_dir("qald-zero-shot", out_root)
    store = ResultFolder(folder, fingerprint_of(vars(config)), what="qald results")
    with store.lock():  # two runs started in the same second share the folder name: the second refuses
        store.check_restartable(vars(config), "qald")
        return write_qald(config, dataset, store, progress)


def write_qald(config: QaldZeroShotConfig, dataset: Any, store: ResultFolder, progress: bool) -> pd.DataFrame:
    """Every file of a zero-shot QALD folder, ``done.json`` last (the caller holds the folder's lock)."""
    from ..models.encoder import Encoder  # torch: when the questions are encoded, not for the command's help

    folder = store.folder
    model = Encoder.load(config.model, max_length=config.max_length)
    record_run(
        folder,
        {**vars(config), "qald_path": str(dataset.path), "n_questions": len(dataset)},
        QaldTask(config.qald_file).data_files("eng")[:1],
        model.source,
    )
    candidates = candidate_texts(dataset, config.keep_operators)
    write_topics(candidates, folder / "candidates.tsv")
    kwargs = dict(dataset=dataset, translations=config.translations, keep_operators=config.keep_operators)
    # the English ceiling per question id (first translation: English has one per question)
    english = evaluate_qald("eng", model, model, **{**kwargs, "translations": "first"}).per_query
    rows = []
    for lang in config.langs:
        result = evaluate_qald(lang, model, model, progress=progress, **kwargs)
        sub = folder / lang
        sub.mkdir(parents=True, exist_ok=True)
        queries = question_texts(dataset, lang, config.translations)
        write_topics({qid: text for qid, (_, text) in queries.items()}, sub / "qald.topics.tsv")
        write_qrels({qid: {question: 1} for qid, (question, _) in queries.items()}, sub / "qald.qrels")
        write_run(result.run, sub / "qald.run", tag=f"zero-shot-{config.model}")
        write_csv(result.per_query, sub / "qald.per_query.csv")
        question_ids = list(dict.fromkeys(question for question, _ in queries.values()))
        summary = qald_summary(result)
        rows.append(
            {
                "lang": ISO3_TO_ISO1.get(lang, lang),
                "n": int(summary["n"]),
                "macro_F1": summary["macro_F1"],
                "qald_macro_F1": summary["qald_macro_F1"],
                "micro_F1": summary["micro_F1"],
                "Hits@1": summary["Hits@1"],
                "MRR": summary["MRR"],
                "en_F1": float(english.loc[question_ids, "F1"].mean()),
                "chance_F1": chance_scores(dataset, question_ids)["macro_F1"],
            }
        )
    table = pd.DataFrame(rows).set_index("lang")
    write_csv(table, folder / "metrics.csv")
    markdown = table.to_markdown(floatfmt=("", ".0f") + (".3f",) * (len(table.columns) - 1))
    write_text(markdown + "\n", folder / "metrics.md")
    store.finish({"results_dir": str(folder)})
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"\nresults: {folder}")
    return table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--langs", default=DEFAULT_LANGS, help="comma-separated codes, ISO 639-1 or -3 (en = English ceiling)"
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help="registry name (minilm, me5-small), HF id or local path")
    parser.add_argument("--max-length", type=int, default=256, help="evaluation truncation in tokens")
    parser.add_argument(
        "--translations",
        choices=["first", "all"],
        default="first",
        help="several translations of a question: use the first (default) or each as its own query",
    )
    parser.add_argument(
        "--keep-operators",
        action="store_true",
        help="verbalise ASK/COUNT/ORDER BY as hint words instead of dropping them",
    )
    parser.add_argument("--qald-file", default=None, help="a QALD-JSON file (default: QALD-9-plus DBpedia test)")
    parser.add_argument("--out", default="results", help="parent folder of the run's timestamped results folder")


def main(args: argparse.Namespace) -> None:
    config = QaldZeroShotConfig(
        parse_langs(args.langs), args.model, args.max_length, args.translations, args.keep_operators, args.qald_file
    )
    run_qald_zero_shot(config, args.out)
