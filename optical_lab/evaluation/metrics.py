"""IR metrics through ``ir_measures`` (one trusted implementation of trec_eval's measures).

Per-query values are kept (a tidy DataFrame), because paired significance tests need them.
A query with no retrieved documents scores 0 on every measure rather than being dropped.
"""

from __future__ import annotations

import ir_measures
import pandas as pd

from ..data.trec import Qrels, Run

CLIR_MEASURES = ("RR@10", "nDCG@10", "AP", "R@1", "R@10", "R@100")
# Friendly names used in tables and summaries.
DISPLAY = {
    "RR@10": "MRR@10",
    "nDCG@10": "nDCG@10",
    "AP": "MAP",
    "R@1": "R@1",
    "R@10": "R@10",
    "R@100": "R@100",
    "RR": "MRR",
    "P@1": "acc@1",
}
SENTENCE_MEASURES = ("P@1", "RR")  # one relevant translation: P@1 = accuracy@1


def per_query(run: Run, qrels: Qrels, measures: tuple[str, ...] = CLIR_MEASURES) -> pd.DataFrame:
    """Rows: query ids (every query in ``qrels``); columns: display names of ``measures``."""
    parsed = [ir_measures.parse_measure(m) for m in measures]
    table = pd.DataFrame(0.0, index=sorted(qrels), columns=[DISPLAY.get(m, m) for m in measures])
    for metric in ir_measures.iter_calc(parsed, qrels, {q: d for q, d in run.items() if q in qrels}):
        table.loc[metric.query_id, DISPLAY.get(str(metric.measure), str(metric.measure))] = metric.value
    table.index.name = "qid"
    return table


def aggregate(table: pd.DataFrame) -> dict[str, float]:
    """Mean over queries (all queries count, as trec_eval with -c)."""
    return {column: float(table[column].mean()) for column in table.columns}
