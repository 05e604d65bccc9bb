"""QALD answer-set precision / recall / F1, as GERBIL QA computes them for the QALD challenges.

Per question q, with gold answer set G and system answer set S (sets: a duplicate answer counts
once; an ASK answer is the one-element set {"true"} or {"false"}, so a wrong truth value is one
false positive plus one false negative and scores 0)::

    tp = |S ∩ G|,  fp = |S \\ G|,  fn = |G \\ S|
    precision(q) = tp / |S|,  recall(q) = tp / |G|,  F1(q) = 2·P·R / (P + R)

**Empty answers.** Two conventions exist, both from GERBIL QA (Usbeck et al., 2019, "Benchmarking
question answering systems", Semantic Web 10(2), 293-304; source:
``org.aksw.gerbil.evaluate.impl.FMeasureCalculator`` in github.com/dice-group/gerbil), which is the
scorer the QALD-9 challenge used (Usbeck, Gusmita, Saleem, Ngonga Ngomo: "9th Challenge on Question
Answering over Linked Data (QALD-9)", Semdeep/NLIWoD at ISWC 2018, CEUR-WS Vol-2241, pp. 58-64).

=====================================  ==================  =====================================
case                                   GERBIL ``standard``  ``qald`` (feeds "Macro F1 QALD")
=====================================  ==================  =====================================
G empty, S empty                       P = R = F1 = 1      P = R = F1 = 1
G empty, S non-empty                   P = R = F1 = 0      P = R = F1 = 0
G non-empty, S empty ("no answer")     P = R = F1 = 0      **P = 1**, R = F1 = 0
G, S non-empty, tp = 0                 P = R = F1 = 0      P = R = F1 = 0
otherwise                              the formulas above  the formulas above
=====================================  ==================  =====================================

The two differ only in the precision of an unanswered question: GERBIL's "Macro F1 QALD" assumes
the system "could not respond" and gives it precision 1 (``calculateMeasuresQALD`` in the GERBIL
source). (The QALD-10 challenge page words this case as "precision 0", but GERBIL's code, which
produced the published QALD-9/10 numbers, sets 1; we follow the code.)

**Aggregates** (:func:`aggregate_scores`), with the names GERBIL prints:

* ``macro_F1`` — mean over questions of F1(q) with the standard rule ("Macro F1 score"); also
  ``macro_P``, ``macro_R``. This is the per-question F1 average; ``F1`` in per-query tables.
* ``qald_macro_F1`` — "Macro F1 QALD", the QALD-9 ranking metric: the harmonic mean of the *macro*
  precision and *macro* recall computed with the ``qald`` rule (``qald_macro_P``, ``qald_macro_R``),
  i.e. 2·mean(P)·mean(R) / (mean(P) + mean(R)) — **not** the mean of per-question F1.
* ``micro_F1`` — precision / recall / F1 of the summed tp, fp, fn over all questions ("Micro F1
  score"; ``micro_P``, ``micro_R``), with the standard rule applied to the sums (all sums 0 -> 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

from ..data.sparql_exec import execute

Convention = str  # "standard" | "qald"


def as_answer_set(answer: Any) -> frozenset[str]:
    """Accept :class:`~optical_lab.data.qald.Answers`, a bool (ASK), ``None`` (no answer), one string,
    or any iterable of strings; return the set that is scored."""
    if answer is None:
        return frozenset()
    if isinstance(answer, bool):
        return frozenset({"true" if answer else "false"})
    values = getattr(answer, "values", None)
    if isinstance(values, frozenset):  # optical_lab.data.qald.Answers
        return values
    if isinstance(answer, str):
        return frozenset({answer})
    return frozenset(str(v) for v in answer)


@dataclass(frozen=True)
class QuestionScore:
    """Counts and scores of one question."""

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    qald_precision: float  # precision under the "qald" rule (1 for an unanswered question)
    qald_recall: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def prf(tp: int, fp: int, fn: int, convention: Convention = "standard") -> tuple[float, float, float]:
    """Precision, recall, F1 from counts, with GERBIL's rules for ``tp == 0`` (see the module doc)."""
    if convention not in ("standard", "qald"):
        raise ValueError(f"convention must be 'standard' or 'qald', not {convention!r}")
    if tp == 0:
        if fp == 0 and fn == 0:
            return 1.0, 1.0, 1.0  # nothing to find, nothing found
        if fp == 0 and convention == "qald":
            return 1.0, 0.0, 0.0  # no answer given: precision 1 in "Macro F1 QALD"
        return 0.0, 0.0, 0.0
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return precision, recall, 2 * precision * recall / (precision + recall)


def score_question(gold: Any, predicted: Any) -> QuestionScore:
    """Score one system answer against one gold answer (both as :func:`as_answer_set` accepts)."""
    g, s = as_answer_set(gold), as_answer_set(predicted)
    tp = len(g & s)
    fp, fn = len(s) - tp, len(g) - tp
    p, r, f = prf(tp, fp, fn, "standard")
    qp, qr, _ = prf(tp, fp, fn, "qald")
    return QuestionScore(tp, fp, fn, p, r, f, qp, qr)


_ALIASES = {"f1": "F1"}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def aggregate_scores(scores: Iterable[QuestionScore | Mapping[str, float]]) -> dict[str, float]:
    """Macro, "Macro F1 QALD" and micro aggregates of per-question scores (see the module doc).

    Accepts :class:`QuestionScore` objects or mappings / DataFrame rows with the same field names
    (``F1`` is accepted for ``f1``), so a saved per-query table can be re-aggregated.
    """
    rows = [s.as_dict() if isinstance(s, QuestionScore) else dict(s) for s in scores]
    if not rows:
        raise ValueError("no questions to aggregate")

    def get(key: str) -> list[float]:
        return [float(r[key] if key in r else r[_ALIASES.get(key, key)]) for r in rows]

    macro_p, macro_r, macro_f = _mean(get("precision")), _mean(get("recall")), _mean(get("f1"))
    qald_p, qald_r = _mean(get("qald_precision")), _mean(get("qald_recall"))
    qald_f = 2 * qald_p * qald_r / (qald_p + qald_r) if qald_p + qald_r > 0 else 0.0
    tp, fp, fn = (int(round(sum(get(k)))) for k in ("tp", "fp", "fn"))
    micro_p, micro_r, micro_f = prf(tp, fp, fn, "standard")
    return {
        "n": float(len(rows)),
        "macro_P": macro_p,
        "macro_R": macro_r,
        "macro_F1": macro_f,
        "qald_macro_P": qald_p,
        "qald_macro_R": qald_r,
        "qald_macro_F1": qald_f,
        "micro_P": micro_p,
        "micro_R": micro_r,
        "micro_F1": micro_f,
        "tp": float(tp),
        "fp": float(fp),
        "fn": float(fn),
    }


def score_answers(
    gold: Mapping[str, Any], predicted: Mapping[str, Any]
) -> tuple[dict[str, QuestionScore], dict[str, float]]:
    """Score a whole run: ``{qid: gold}`` vs ``{qid: system answer}``. A question missing from
    ``predicted`` counts as unanswered (empty answer), as in GERBIL."""
    per_question = {qid: score_question(g, predicted.get(qid)) for qid, g in gold.items()}
    return per_question, aggregate_scores(per_question.values())


def score_predictions(store, predicted: Mapping[str, str], gold: Mapping[str, Any]):
    """Execute each predicted SPARQL query on ``store`` (:func:`optical_lab.data.sparql_exec.open_graph`)
    and score it against ``gold[qid]`` with QALD answer F1.

    Returns ``(per-question scores, aggregates, executions)``; a question without a prediction, or
    whose query fails, counts as unanswered (empty answer), as in GERBIL QA.
    """
    executions = {qid: execute(store, query) for qid, query in predicted.items()}
    per_question, aggregates = score_answers(gold, {qid: e.answers for qid, e in executions.items()})
    return per_question, aggregates, executions
