r"""Expected power of candidate endpoints, from the variance a finished grid measured (query and seed parts).

Protocol v2's MDE (:mod:`optical_lab.evaluation.pooled`) counts only the spread of the per-query
differences averaged over seeds; a second training run of the same cell moves every query of a
language together, and that part shrinks with the number of seeds, not queries. Here the per-query,
per-seed difference of two arms in one language is modelled as a two-way layout without replication
(query :math:`q` = 1..n, seed :math:`s` = 1..S; seed :math:`s` of arm A is paired with seed :math:`s`
of arm B),

.. math::
    d_{qs} = \mu + u_q + v_s + e_{qs}, \qquad
    \operatorname{Var} u = \sigma^2_q,\ \operatorname{Var} v = \sigma^2_s,\ \operatorname{Var} e = \sigma^2_e,

estimated by the ANOVA method of moments (mean squares :math:`M_q, M_s, M_e` of queries, seeds and
residual; negative estimates set to 0): :math:`\hat\sigma^2_e = M_e`,
:math:`\hat\sigma^2_q = (M_q - M_e)/S`, :math:`\hat\sigma^2_s = (M_s - M_e)/n`. The language mean of a
design with :math:`n` queries and :math:`S` seeds then has variance

.. math::
    V(n, S) = \sigma^2_q / n + \sigma^2_e / (nS) + \sigma^2_s / S,

and the statistic that weighs every language the same, :math:`T = \frac1L\sum_l \bar d_l`, has
:math:`\mathrm{SE}(T) = \frac1L\sqrt{\sum_l V_l}`. Without the last term (and without truncation) this
is v2's MDE exactly (:math:`M_q/S` is the variance of the seed-averaged differences). The MDE at level
:math:`\alpha` (two-sided), power :math:`1-\beta` and a Holm family of :math:`m` tests uses Holm's first,
strictest step (Bonferroni, :math:`\alpha/m`) — the bound every primary test must meet to be detectable
whatever its rank in the family:

.. math::
    \mathrm{MDE} = \bigl(z_{1-\alpha/(2m)} + z_{1-\beta}\bigr)\,\mathrm{SE}(T).

A candidate endpoint of a new protocol borrows the components of the most similar measured endpoint
(a stated assumption, :data:`CANDIDATES`), pooled over the measured languages (their mean), for every
language of its design; its query counts are counted from the data files (texts are only counted,
nothing is scored).

    optical-lab power results/v2-minilm --doc docs/v3_power.md
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..data.errors import DataError
from ..data.ntrex import NTREX_DOCUMENTS, NTREX_LINES, ntrex_file
from ..data.paths import data_dir
from ..data.sib import load_sib
from ..evaluation.pooled import Endpoint, detectable_effect
from ..methods.registry import AUGMENTATIONS, REFERENCE
from .command import run_module
from .per_query import load_per_query

FAMILY_LANGS = ("hau", "ibo", "swa", "yor", "zul", "lug", "twi", "luo")  # issue #26: MAFAND train + FLORES
TARGETS = {"MRR-type": 0.02, "accuracy-type": 0.015}  # issue #26's registration bar, seed variance counted
TICO_CODES = {"hau": "ha", "swa": "sw", "zul": "zu", "lug": "lg"}  # TICO-19's two-letter file codes


def components(d: np.ndarray) -> dict[str, float]:
    """Method-of-moments variance components of an (n queries x S seeds) difference table (module doc)."""
    n, s = d.shape
    grand = d.mean()
    rows, cols = d.mean(1), d.mean(0)
    ms_q = s * ((rows - grand) ** 2).sum() / (n - 1)
    ms_e = ((d - rows[:, None] - cols[None, :] + grand) ** 2).sum() / ((n - 1) * (s - 1)) if s > 1 else 0.0
    ms_s = n * ((cols - grand) ** 2).sum() / (s - 1) if s > 1 else 0.0
    return {
        "n": n,
        "seeds": s,
        "difference": float(grand),
        "query_var_of_seed_mean": float(ms_q / s),
        "sigma2_query": max(0.0, (ms_q - ms_e) / s),
        "sigma2_resid": float(ms_e),
        "sigma2_seed": max(0.0, (ms_s - ms_e) / n),
    }


def language_variance(c: dict[str, float], n: int, seeds: int, with_seed: bool = True) -> float:
    """:math:`V(n, S)` of one language's mean difference (module doc)."""
    v = c["sigma2_query"] / n + c["sigma2_resid"] / (n * seeds)
    return v + (c["sigma2_seed"] / seeds if with_seed else 0.0)


def mde(variances: Sequence[float], family: int = 1, alpha: float = 0.05, power: float = 0.8) -> float:
    """MDE of the language-balanced mean difference from per-language variances (module doc)."""
    return detectable_effect(math.sqrt(sum(variances)) / len(variances), family, alpha, power)


def measured(per_query: pd.DataFrame, endpoint: Endpoint, reference: str, others: Sequence[str]) -> pd.DataFrame:
    """Components per (contrast, language) of one measured endpoint: ``reference`` − each of ``others``,
    seed s paired with seed s (an arm with one distinct run, zero-shot, is the same on every seed)."""
    rows = per_query[per_query.task == endpoint.task]
    out = []
    for lang, by_lang in rows.groupby("lang"):
        table = by_lang.groupby(["qid", "method", "seed"])[endpoint.metric].mean().unstack(["method", "seed"])
        for other in others:
            seeds = sorted(set(table[reference].columns) & set(table[other].columns)) if other in table else []
            if not seeds:
                continue
            d = (table[reference][seeds] - table[other][seeds]).dropna().to_numpy()
            out.append(
                {
                    "endpoint": endpoint.label,
                    "contrast": f"{reference} − {other}",
                    "method": other,
                    "lang": lang,
                    **components(d),
                }
            )
    return pd.DataFrame(out)


def reproduce(comp: pd.DataFrame, family: int = 1) -> pd.DataFrame:
    """Per (endpoint, contrast): the measured design's MDE without the seed term (= the registered v2 MDE)
    and with it."""
    rows = []
    for (endpoint, contrast), g in comp.groupby(["endpoint", "contrast"], sort=False):
        rows.append(
            {
                "endpoint": endpoint,
                "contrast": contrast,
                "languages": len(g),
                "seeds": int(g.seeds.min()),
                "difference": float(g.difference.mean()),
                "mde_without_seed": mde(
                    [language_variance(c, c["n"], c["seeds"], False) for c in g.to_dict("records")], family
                ),
                "mde_with_seed": mde([language_variance(c, c["n"], c["seeds"]) for c in g.to_dict("records")], family),
                "seed_share": _seed_share(g.to_dict("records")),
            }
        )
    return pd.DataFrame(rows)


def _seed_share(comps: Sequence[dict[str, float]]) -> float:
    """Mean share of the seed term in a language mean's variance (NaN where no language varies at all:
    two arms that scored every query alike, e.g. both kept the untrained student)."""
    shares = [c["sigma2_seed"] / c["seeds"] / v for c in comps if (v := language_variance(c, c["n"], c["seeds"])) > 0]
    return float(np.mean(shares)) if shares else math.nan


# ----------------------------------------------------------------- candidate endpoints of a new protocol
def _ntrex_queries(lang: str) -> int | None:
    return NTREX_DOCUMENTS if ntrex_file(lang).exists() else None


def _ntrex_sentences(lang: str) -> int | None:
    return NTREX_LINES if ntrex_file(lang).exists() else None


def _sib(split: str | None) -> Callable[[str], int | None]:
    def count(lang: str) -> int | None:
        try:
            sib = load_sib(lang)
        except DataError:
            return None
        return len(sib.all_ids()) if split is None else len(sib.splits[split])

    return count


def _jsonl_lines(path: Path) -> int | None:
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip())


def _afriqa(kind: str, splits: Sequence[str] = ("test",)) -> Callable[[str], int | None]:
    """Questions (``queries``) or questions with a gold English passage (``gold_passages``) of ``splits``
    (v3 trains on MAFAND-MT, so AfriQA's train and dev questions could be evaluation queries too)."""
    name = (
        "queries.afriqa.{lang}.en.{split}.json"
        if kind == "queries"
        else "gold_span_passages.afriqa.{lang}.en.{split}.json"
    )

    def count(lang: str) -> int | None:
        folder = data_dir("afriqa") / "afriqa" / "data" / kind / lang
        counts = [n for split in splits if (n := _jsonl_lines(folder / name.format(lang=lang, split=split)))]
        return sum(counts) or None

    return count


def _tico(lang: str) -> int | None:
    code = TICO_CODES.get(lang)
    path = data_dir("tico-19") / "tico-19" / "data" / "TM" / f"all.en-{code}.tmx.zip"
    if code is None or not path.exists():
        return None
    with zipfile.ZipFile(path) as archive:
        return sum(
            archive.read(name).decode("utf-8").count("<tu ") for name in archive.namelist() if name.endswith(".tmx")
        )


@dataclass(frozen=True)
class Candidate:
    """A candidate endpoint: its name, type (target), the measured endpoint whose variance it borrows
    (the assumption), and how many queries a language has (None: the language lacks the data)."""

    name: str
    kind: str  # "MRR-type" or "accuracy-type"
    source: Endpoint
    queries: Callable[[str], int | None]
    note: str


CANDIDATES = (
    Candidate(
        "NTREX CLIR MRR@10",
        "MRR-type",
        Endpoint("clir", "MRR@10"),
        _ntrex_queries,
        "measured in v2 (123 known-item documents per language)",
    ),
    Candidate(
        "AfriQA passages MRR@10",
        "MRR-type",
        Endpoint("clir", "MRR@10"),
        _afriqa("gold_passages"),
        "native test question -> its gold English passage; variance assumed = NTREX CLIR's",
    ),
    Candidate(
        "AfriQA passages MRR@10, all splits",
        "MRR-type",
        Endpoint("clir", "MRR@10"),
        _afriqa("gold_passages", ("train", "dev", "test")),
        "as above, the questions of every AfriQA split with a gold passage (none is trained on)",
    ),
    Candidate(
        "FLORES en→xx acc@1",
        "accuracy-type",
        Endpoint("flores-en-xx", "acc@1"),
        _sib(None),
        "measured in v2 (1,004 SIB-200/FLORES sentences per language)",
    ),
    Candidate("FLORES xx→en acc@1", "accuracy-type", Endpoint("flores-xx-en", "acc@1"), _sib(None), "measured in v2"),
    Candidate(
        "AfriQA questions acc@1",
        "accuracy-type",
        Endpoint("flores-xx-en", "acc@1"),
        _afriqa("queries"),
        "native test question -> its English translation among all; variance assumed = FLORES xx→en's",
    ),
    Candidate(
        "AfriQA questions acc@1, all splits",
        "accuracy-type",
        Endpoint("flores-xx-en", "acc@1"),
        _afriqa("queries", ("train", "dev", "test")),
        "as above, every AfriQA split",
    ),
    Candidate(
        "NTREX sentences acc@1",
        "accuracy-type",
        Endpoint("sentence", "acc@1"),
        _ntrex_sentences,
        "measured in v2 (1,997 sentences)",
    ),
    Candidate(
        "TICO-19 sentences acc@1",
        "accuracy-type",
        Endpoint("flores-en-xx", "acc@1"),
        _tico,
        "en -> xx among all segments; variance assumed = FLORES en→xx's",
    ),
    Candidate(
        "SIB topics acc",
        "accuracy-type",
        Endpoint("topics", "acc"),
        _sib("test"),
        "measured in v2 (204 test sentences)",
    ),
)


def project(
    comp: pd.DataFrame,
    langs: Sequence[str],
    seeds: int,
    families: Sequence[int],
    contrasts: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per candidate and contrast, per candidate) expected MDEs for a design over ``langs`` x ``seeds``.

    Components are pooled (mean over the measured languages) per source endpoint and contrast and used
    for every language that has the candidate's data. The per-candidate row is the worst contrast among
    ``contrasts`` (default: OPTICAL against each augmentation arm), against the target of its type."""
    contrasts = list(contrasts or [f"{REFERENCE} − {m}" for m in AUGMENTATIONS])
    detail, summary = [], []
    for cand in CANDIDATES:
        counts = {lang: cand.queries(lang) for lang in langs}
        have = {lang: n for lang, n in counts.items() if n}
        src = comp[comp.endpoint == cand.source.label]
        if not have or src.empty:
            continue
        worst = {m: 0.0 for m in families}
        for contrast, g in src.groupby("contrast", sort=False):
            pooled = {k: float(g[k].mean()) for k in ("sigma2_query", "sigma2_resid", "sigma2_seed")}
            row = {"candidate": cand.name, "contrast": contrast, **pooled}
            for m in families:
                row[f"mde_m{m}"] = mde([language_variance(pooled, n, seeds) for n in have.values()], m)
                row[f"mde_m{m}_without_seed"] = mde(
                    [language_variance(pooled, n, seeds, False) for n in have.values()], m
                )
                if contrast in contrasts:
                    worst[m] = max(worst[m], row[f"mde_m{m}"])
            detail.append(row)
        target = TARGETS[cand.kind]
        summary.append(
            {
                "candidate": cand.name,
                "type": cand.kind,
                "target": target,
                "source": cand.source.label,
                "languages": len(have),
                "missing": ", ".join(sorted(set(langs) - set(have))) or "-",
                "queries_per_language": " / ".join(f"{lang} {n}" for lang, n in have.items()),
                **{f"worst_mde_m{m}": worst[m] for m in families},
                **{f"meets_m{m}": worst[m] <= target for m in families},
                "note": cand.note,
            }
        )
    return pd.DataFrame(detail), pd.DataFrame(summary)


def endpoints_of(per_query: pd.DataFrame) -> list[Endpoint]:
    """Every (sub-task, metric) a candidate borrows from, that the grid measured."""
    sources = {c.source for c in CANDIDATES}
    return [
        e
        for e in sources
        if e.task in set(per_query.task)
        and e.metric in per_query
        and per_query.loc[per_query.task == e.task, e.metric].notna().any()
    ]


def seed_sensitivity(
    comp: pd.DataFrame, langs: Sequence[str], family: int, seeds: Sequence[int] = (2, 3, 5, 10)
) -> pd.DataFrame:
    """Worst augmentation-contrast MDE of every candidate at Holm family ``family`` for several seed counts."""
    table = None
    for s in seeds:
        summary = project(comp, langs, s, [family])[1][["candidate", "target", f"worst_mde_m{family}"]]
        summary = summary.rename(columns={f"worst_mde_m{family}": f"{s} seeds"})
        table = summary if table is None else table.merge(summary, on=["candidate", "target"])
    return table


def analyse(
    results: str | Path, langs: Sequence[str] = FAMILY_LANGS, seeds: int = 3, families: Sequence[int] = (1, 4, 10)
) -> dict[str, pd.DataFrame]:
    per_query = load_per_query(Path(results) / "runs")
    others = [m for m in sorted(per_query.method.unique()) if m != REFERENCE]
    comp = pd.concat(
        [measured(per_query, e, REFERENCE, others) for e in sorted(endpoints_of(per_query), key=lambda e: e.label)],
        ignore_index=True,
    )
    detail, summary = project(comp, langs, seeds, families)
    return {
        "components": comp,
        "reproduced": reproduce(comp),
        "detail": detail,
        "summary": summary,
        "seeds": seed_sensitivity(comp, langs, max(families)),
    }


def _md(frame: pd.DataFrame, digits: int = 4) -> str:
    return frame.to_markdown(index=False, floatfmt=f".{digits}f")


def document(
    results: Sequence[Path],
    tables: Sequence[dict[str, pd.DataFrame]],
    langs: Sequence[str],
    seeds: int,
    families: Sequence[int],
) -> str:
    fam = ", ".join(map(str, families))
    parts = [
        "# Expected power of candidate protocol-v3 endpoints",
        "",
        "Generated by `optical-lab power "
        + " ".join(map(str, results))
        + f" --doc docs/v3_power.md --seeds {seeds} --families {fam.replace(' ', '')}` from the committed v2 "
        "per-query files; never edited by hand. The method (variance components of the per-query, per-seed "
        "differences; language-balanced mean; Holm's strictest step) is in the module docstring of "
        "`optical_lab/experiments/power.py`. No v3 number exists: nothing here scores a model; the v3 query "
        "counts are counted from the data files.",
        "",
        f"**Design projected**: languages {', '.join(langs)} (each where it has the endpoint's data), {seeds} seeds, "
        f"α 0.05 two-sided, power 0.8, Holm family sizes m = {fam} (MDE at α/m). Targets (issue #26): "
        f"MRR-type ≤ {TARGETS['MRR-type']}, accuracy-type ≤ {TARGETS['accuracy-type']}, seed variance counted. "
        "The worst contrast is OPTICAL against each augmentation arm (" + ", ".join(AUGMENTATIONS) + ").",
        "",
        "**Assumptions** (each changes the numbers; a v3 protocol should state which it keeps):",
        "",
        "* Every language of the design has the *pooled* (mean over v2's languages) components of the source "
        "endpoint's contrast; v2 measured hau, ibo, swa, yor, zul only, so lug, twi, luo are extrapolated.",
        "* AfriQA and TICO-19 endpoints were never scored: they borrow the components of the named v2 endpoint "
        "(passage retrieval from a question ~ NTREX known-item CLIR; sentence retrieval ~ FLORES). Real "
        "questions are likely harder and more varied than either, so these MDEs are a first guess.",
        "* v3's arms differ from v2's (longer training, fair tuning, solved OT): their seed and query spreads "
        "may differ. Seed variance rests on 3 seeds per language (2 degrees of freedom each); the normal "
        "approximation ignores that uncertainty, so a hierarchical resampling test will be somewhat less "
        "powerful than these MDEs say.",
        "* Seed s of one arm is paired with seed s of the other (the grid's seeds are independent runs; the "
        "pairing is arbitrary, and the residual absorbs it).",
        "",
    ]
    for path, t in zip(results, tables):
        s = t["summary"].copy()
        parts += [
            f"## From `{path}`",
            "",
            "### Candidate endpoints (worst augmentation contrast)",
            "",
            _md(s.drop(columns=["note"])),
            "",
            "Notes: " + "; ".join(f"*{a}*: {b}" for a, b in zip(s.candidate, s.note)),
            "",
            f"### Seeds: worst augmentation-contrast MDE at m = {max(families)} for other seed counts",
            "",
            _md(t["seeds"]),
            "",
            "### Every contrast (pooled components, projected MDE with and without the seed term)",
            "",
            _md(t["detail"]),
            "",
            "### The v2 design re-computed (check: `mde_without_seed` is the registered v2 MDE)",
            "",
            _md(t["reproduced"]),
            "",
            _degenerate(t["components"]),
            "",
        ]
    return "\n".join(parts)


def _degenerate(comp: pd.DataFrame) -> str:
    """How many measured (contrast, language) tables have no variance at all: both arms scored every query
    alike (both kept the untrained student), which deflates the pooled components."""
    flat = comp[(comp.sigma2_query + comp.sigma2_resid + comp.sigma2_seed) == 0]
    text = (
        f"{len(flat)} of {len(comp)} measured (endpoint, contrast, language) tables have no variance at all "
        "(both arms scored every query alike, e.g. both kept the untrained student)"
    )
    if len(flat):
        text += ": " + ", ".join(f"{r.endpoint} {r.contrast} {r.lang}" for r in flat.itertuples())
        text += ". They enter the pooled mean as zeros, so that grid's MDEs are optimistic for arms that do train"
    return text + ". Per-language components: `analyse(...)['components']`."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``optical-lab power``."""
    parser.add_argument("results", nargs="+", type=Path, help="finished grids (their runs/ per-query files)")
    parser.add_argument("--langs", default=",".join(FAMILY_LANGS), help="the candidate design's languages")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds of the candidate design")
    parser.add_argument("--families", default="1,4,10", help="Holm family sizes to tabulate")
    parser.add_argument("--doc", type=Path, help="write the markdown document here")
    parser.add_argument("--json", type=Path, help="write the tables as JSON here")


def main(args: argparse.Namespace) -> None:
    """Print the power tables of each results folder; write the document and JSON when asked."""
    langs, families = args.langs.split(","), [int(m) for m in args.families.split(",")]
    tables = [analyse(r, langs, args.seeds, families) for r in args.results]
    for r, t in zip(args.results, tables):
        print(f"## {r}\n{_md(t['summary'].drop(columns=['note', 'queries_per_language']))}\n")
    if args.doc:
        args.doc.write_text(document(args.results, tables, langs, args.seeds, families) + "\n", encoding="utf-8")
    if args.json:
        args.json.write_text(
            json.dumps(
                {str(r): {k: v.to_dict("records") for k, v in t.items()} for r, t in zip(args.results, tables)},
                indent=1,
            )
            + "\n",
            encoding="utf-8",
        )


if __name__ == "__main__":
    sys.exit(run_module(add_arguments, main, "python -m optical_lab.experiments.power"))
