"""QALD-9-plus as a cross-lingual *retrieval* task: question -> the benchmark's own SPARQL queries.

**What is measured.** The candidate pool is the 150 SPARQL queries of the QALD-9-plus DBpedia test
set, verbalised by :func:`optical_lab.data.sparql_text.verbalize` ("Salt Lake City time zone") and
encoded by the **teacher** (the English side, ``role="passage"``). A question in language L is
encoded by the **student** (``role="query"``; for ``eng`` the harness passes the teacher or an
English-English student). The system's answer is the **gold answer set of the top-ranked query**,
scored against the question's own gold answers with QALD answer-set F1
(:mod:`optical_lab.evaluation.answer_f1`). This is *not* open-domain SPARQL generation: no query is
written and no knowledge graph is queried, so the numbers are not comparable with the QALD
leaderboard. Retrieving the question's own query always gives F1 = 1 (the ceiling); another query
can also score (partly) when answer sets overlap — in particular the 35 questions with an empty
gold answer all score F1 = 1 against each other, and the 4 ASK questions (all "true") likewise.
:func:`chance_scores` gives the expected score of a uniformly random pick.

**Which questions.** Per language, every question with at least one translation into it (``uk``
150, ``lt`` 140, ``be`` 146, ``ba`` 105, ``hy`` 20, ``en`` 150). With several translations the
**first one in file order** is used (``translations="first"``, one row per question, the
default); ``translations="all"`` evaluates every translation as its own query (ids ``<qid>#<k>``).
Per-language means are therefore over different question subsets; the CLI also reports English on
each language's subset.

**Per-query table** (``TaskResult.per_query``, index ``qid``): ``F1``, ``precision``, ``recall``
(GERBIL standard rule), ``Hits@1`` (the question's own query ranked first), ``MRR`` (reciprocal rank
of its own query among all 150, ir_measures ``RR``), ``tp``, ``fp``, ``fn`` (for micro F1) and
``qald_precision``, ``qald_recall`` (for "Macro F1 QALD"). ``TaskResult.summary`` (column means)
gives macro F1 as ``F1``; :func:`qald_summary` adds micro F1 and Macro F1 QALD.

**Folds.** QALD is evaluation only: no QALD question is ever trained on. The student's bitext is
NTREX-128 English <-> L (all 1,997 sentences, 123 documents), split by *document* into train
(~90%) and a held-out dev slice (``dev_fraction`` of the documents, default 10%, 12 documents) for
model selection. ``folds(lang, k, seed)`` returns ``k`` folds that differ **only in that train/dev
split** (document shuffles seeded by ``(seed, fold index)``); all evaluate on the same questions
(``eval_key`` = their ids). For ``eng`` the bitext is NTREX English-English (the identity), so the
harness does not crash and the zero-shot English ceiling is measured with the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import pandas as pd

from ..data.errors import DataError
from ..data.languages import normalize_lang
from ..data.ntrex import load_ntrex, ntrex_file
from ..data.qald import QaldDataset, load_qald
from ..data.sparql_text import verbalize
from ..data.trec import Qrels, Run
from ..evaluation.answer_f1 import aggregate_scores, score_question
from ..evaluation.metrics import per_query as ir_per_query
from .base import TaskBase, TaskFold, TaskResult, bitext_folds

if TYPE_CHECKING:
    from ..models.encoder import Encoder

Translations = Literal["first", "all"]
PER_QUERY_COLUMNS = ("F1", "precision", "recall", "Hits@1", "MRR", "tp", "fp", "fn", "qald_precision", "qald_recall")


@lru_cache(maxsize=4)
def _cached_dataset(path: str | None) -> QaldDataset:
    return load_qald(path)


def get_dataset(path: str | Path | None = None) -> QaldDataset:
    """The QALD file (default: QALD-9-plus DBpedia test), loaded once per process."""
    return _cached_dataset(str(path) if path is not None else None)


def candidate_texts(dataset: QaldDataset, keep_operators: bool = False) -> dict[str, str]:
    """``{question id: verbalised SPARQL}`` — the retrieval pool (one candidate per question)."""
    return {q.id: verbalize(q.sparql, keep_operators=keep_operators) for q in dataset}


def question_texts(dataset: QaldDataset, lang: str, translations: Translations = "first") -> dict[str, tuple[str, str]]:
    """``{query id: (question id, text)}`` of the questions in ``lang`` (see the module doc)."""
    lang = normalize_lang(lang)
    if translations not in ("first", "all"):
        raise ValueError(f"translations must be 'first' or 'all', not {translations!r}")
    out: dict[str, tuple[str, str]] = {}
    for q in dataset.questions_in(lang):
        texts = q.texts(lang)
        if translations == "first":
            out[q.id] = (q.id, texts[0])
        else:
            out.update({f"{q.id}#{k}": (q.id, t) for k, t in enumerate(texts, start=1)})
    if not out:
        counts = dataset.language_counts()
        raise DataError(
            f"no QALD question has a {lang} translation",
            path=dataset.path,
            fix="use one of: " + ", ".join(f"{l} ({c['questions']})" for l, c in counts.items()),
        )
    return out


def _top1(scores: dict[str, float]) -> str:
    return min(scores.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def score_run(run: Run, dataset: QaldDataset, query_to_question: dict[str, str]) -> pd.DataFrame:
    """Per-query answer F1 (top-1 query's gold answers vs the question's) + Hits@1 / MRR."""
    gold = {q.id: q.answers for q in dataset}
    qrels: Qrels = {qid: {question: 1} for qid, question in query_to_question.items()}
    ir = ir_per_query(run, qrels, ("P@1", "RR")).rename(columns={"acc@1": "Hits@1"})
    rows = {}
    for qid, question in query_to_question.items():
        predicted = gold[_top1(run[qid])] if run.get(qid) else None
        s = score_question(gold[question], predicted)
        rows[qid] = {
            "F1": s.f1,
            "precision": s.precision,
            "recall": s.recall,
            "Hits@1": float(ir.loc[qid, "Hits@1"]),
            "MRR": float(ir.loc[qid, "MRR"]),
            "tp": s.tp,
            "fp": s.fp,
            "fn": s.fn,
            "qald_precision": s.qald_precision,
            "qald_recall": s.qald_recall,
        }
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(PER_QUERY_COLUMNS))
    table.index.name = "qid"
    return table


def evaluate_qald(
    lang: str,
    query_encoder: Encoder,
    doc_encoder: Encoder,
    *,
    dataset: QaldDataset | None = None,
    translations: Translations = "first",
    keep_operators: bool = False,
    batch_size: int = 64,
    progress: bool = False,
) -> TaskResult:
    """Questions in ``lang`` encoded by ``query_encoder`` (the student) retrieve among the verbalised
    SPARQL queries encoded by ``doc_encoder`` (the English teacher); scored as in the module doc."""
    dataset = dataset or get_dataset()
    lang = normalize_lang(lang)
    queries = question_texts(dataset, lang, translations)
    candidates = candidate_texts(dataset, keep_operators)
    qids, cids = list(queries), list(candidates)
    q_emb = query_encoder.encode(
        [queries[q][1] for q in qids],
        role="query",
        batch_size=batch_size,
        progress=progress and f"QALD questions {lang}",
    )
    c_emb = doc_encoder.encode(
        [candidates[c] for c in cids], role="passage", batch_size=batch_size, progress=progress and "QALD queries"
    )
    from ..retrieval.dense import dense_search

    run = dense_search(q_emb, c_emb, qids, cids, k=len(cids))
    table = score_run(run, dataset, {qid: queries[qid][0] for qid in qids})
    return TaskResult("qald", run, table)


def qald_summary(result: TaskResult | pd.DataFrame) -> dict[str, float]:
    """Macro F1 (mean per-question F1), Macro F1 QALD, micro F1, Hits@1, MRR, n."""
    table = result.per_query if isinstance(result, TaskResult) else result
    agg = aggregate_scores(table.to_dict("records"))
    return {
        "n": agg["n"],
        "macro_F1": agg["macro_F1"],
        "qald_macro_F1": agg["qald_macro_F1"],
        "micro_F1": agg["micro_F1"],
        "macro_P": agg["macro_P"],
        "macro_R": agg["macro_R"],
        "Hits@1": float(table["Hits@1"].mean()),
        "MRR": float(table["MRR"].mean()),
    }


def chance_scores(dataset: QaldDataset, question_ids: list[str] | None = None) -> dict[str, float]:
    """Expected macro F1 / Hits@1 when the top-1 query is drawn uniformly from the pool."""
    questions = dataset.by_id()
    ids = question_ids if question_ids is not None else list(questions)
    pool = [q.answers for q in dataset]
    f1 = [sum(score_question(questions[i].answers, c).f1 for c in pool) / len(pool) for i in ids]
    return {"macro_F1": sum(f1) / len(f1), "Hits@1": 1 / len(pool)}


# --------------------------------------------------------------------------- the Task protocol
@dataclass
class QaldTask(TaskBase):
    """QALD-9-plus question -> SPARQL retrieval; students train on NTREX bitext (module doc)."""

    qald_file: str | None = None  # a QALD-JSON file; None = QALD-9-plus DBpedia test
    translations: Translations = "first"
    dev_fraction: float = 0.1
    keep_operators: bool = False
    name: ClassVar[str] = "qald"
    primary: ClassVar[str] = "F1"
    reported: ClassVar[dict[str, list[str]]] = {"qald": ["F1", "Hits@1", "MRR"]}
    OPTIONS: ClassVar[dict[str, str]] = {"qald_file": "qald task: a QALD-JSON file (default: QALD-9-plus DBpedia test)"}

    @property
    def dataset(self) -> QaldDataset:
        return get_dataset(self.qald_file)

    def folds(self, lang: str, k: int, seed: int) -> list[TaskFold]:
        lang = normalize_lang(lang)
        eval_ids = tuple(dict.fromkeys(q for q, _ in question_texts(self.dataset, lang, self.translations).values()))
        # eng: English on both sides (the identity bitext), so the English ceiling runs the same code
        return bitext_folds(load_ntrex(lang), k, seed, self.dev_fraction, salt="qald", eval_key=eval_ids)

    def evaluate(self, lang: str, fold: TaskFold, teacher: Encoder, student: Encoder) -> dict[str, TaskResult]:
        result = evaluate_qald(
            lang,
            student,
            teacher,
            dataset=self.dataset,
            translations=self.translations,
            keep_operators=self.keep_operators,
        )
        return {"qald": result}

    def eval_texts(self, lang: str, fold: TaskFold) -> dict[str, list[str]]:
        """The questions in ``lang`` and in English, and the verbalised SPARQL candidates."""
        questions = [t for _, t in question_texts(self.dataset, lang, self.translations).values()]
        english = [t for _, t in question_texts(self.dataset, "eng", self.translations).values()]
        return {
            f"qald questions {normalize_lang(lang)}": questions,
            "qald questions eng": english,
            "qald candidates": list(candidate_texts(self.dataset, self.keep_operators).values()),
        }

    def data_files(self, lang: str) -> list[Path]:
        english = ntrex_file("eng")
        return [Path(self.dataset.path), english, ntrex_file(normalize_lang(lang)), english.parent / "DOCUMENT_IDS.tsv"]
