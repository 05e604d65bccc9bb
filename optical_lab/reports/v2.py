"""The protocol-v2 analysis and results document (``docs/protocol_v2.md``, "Primary analysis").

``python -m optical_lab.reports.v2 results/v2-minilm`` reads a finished (or partly finished)
comparison, runs the pre-registered primary analysis — OPTICAL against every other arm, per-query
scores averaged over seeds, a language-stratified sign-flip test pooled over the primary languages,
Holm over the family, each test with its minimum detectable effect — and writes

* ``<results>/analysis.json``: every test (p, Holm p, MDE, the numbers it rests on), the answer per
  endpoint, and the bookkeeping a reader needs to trust it (cells per arm, how often dev selection
  kept the untrained student, the collapse diagnostics of the OPTICAL runs);
* ``docs/results_v2.md`` (``--doc``): the same as a document, generated, never edited by hand.

``--langs``, ``--seeds`` and ``--endpoints`` name another registered family (me5-small's secondary run; the
QALD track: ``--endpoints qald:F1``, protocol deviation of 2026-11-26 23:00).

A comparison that is not complete yet is analysed as it stands and says so: the family is only
tested when every language of the family has every arm with every seed (an incomplete family would
test something other than what was registered).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.errors import DataError
from ..evaluation.pooled import OUTCOMES, Endpoint, answer, rule_outcome
from ..evaluation.stats import language_tests, pooled_comparisons, query_scores
from ..evaluation.verdict import ALPHA, DIFFERENCE
from ..experiments.summary import cell_records, corrections_lines, load_per_query
from ..experiments.sweep_design import slug
from ..experiments.sweep_tables import DIAGNOSTICS_TEXT, finished_rows, sweep_table
from ..io import read_jsonl, stored_exists, write_json
from ..methods.registry import AUGMENTATIONS, BY_NAME, REFERENCE

# the registered family (docs/protocol_v2.md): fixed by the protocol, not by whatever a run's config holds
PRIMARY_LANGS = ("hau", "yor", "swa", "zul", "ibo")
ARMS = ("zero-shot", "sentence-kd", "translate-train", "code-switch", "optical", "optical+aug")  # OPTICAL: reference
REGISTERED_SEEDS = 3
ENDPOINTS = (Endpoint("clir", "MRR@10"), Endpoint("flores-en-xx", "acc@1"))
DEFAULT_LABELS = [e.label for e in ENDPOINTS]
MDE_TARGETS = {"clir:MRR@10": 0.02, "flores-en-xx:acc@1": 0.015}  # registered targets; other endpoints have none
# tabled per language whenever the cells have them (secondary, never tested): the suite's other endpoints
SECONDARY = (Endpoint("clir", "MRR@10"), Endpoint("flores-en-xx", "acc@1"), Endpoint("topics", "acc"))
DIAGNOSTICS = ("token_cos", "plan_entropy", "marginal_error")
ID_COLUMNS = ("lang", "method", "seed", "fold", "task", "qid")
UNINFORMATIVE_SHARE = 0.5  # trained cells that kept the untrained student more often than this: no verdict
SEED_RESAMPLES = 2_000  # the primary tests' hierarchical (seeds and queries) bootstrap interval


def cells(results: Path) -> pd.DataFrame:
    """One row per finished cell: language, method, seed, selected step, training time."""
    rows = [
        {
            "lang": info["lang"],
            "method": info["method"],
            "fold": info["fold"],
            "seed": info["seed"],
            "best_step": info.get("best_step"),
            "train_s": info.get("train_s"),
            "eval_s": info.get("eval_s"),
        }
        for _, info in cell_records(results / "runs", "done.json")
    ]
    return pd.DataFrame(rows)


def diagnostics(results: Path, method: str = REFERENCE, last: int = 20) -> pd.DataFrame:
    """Per OPTICAL cell, the collapse diagnostics averaged over its last ``last`` training steps."""
    rows = []
    for done, info in cell_records(results / "runs", "done.json"):
        log = done.parent / "train_log.jsonl"
        if info["method"] != method or not stored_exists(log):
            continue
        steps = [r for r in read_jsonl(log) if r.get("event") == "train"]
        steps = steps[-last:]
        if steps and all(k in steps[0] for k in DIAGNOSTICS):
            rows.append(
                {
                    "lang": info["lang"],
                    "seed": info["seed"],
                    **{k: float(np.mean([s[k] for s in steps])) for k in DIAGNOSTICS},
                }
            )
    return pd.DataFrame(rows)


RULE_COLUMN = f"rule (p < {ALPHA:g}, unadjusted)"


def per_language(per_query: pd.DataFrame, endpoint: Endpoint, langs: list[str]) -> pd.DataFrame:
    """Secondary (unpowered) table: seed-averaged mean per language and arm, OPTICAL − each augmentation
    arm with its unadjusted sign-flip p (the same tests as ``significance.csv``: :func:`..evaluation.stats.
    language_tests`), and the registered answer rule applied to that language alone (significant =
    unadjusted p < α; the protocol's "the same rule per language"). While an augmentation arm is missing in a
    language, only "augmentation beats optical" can be said there (else "incomplete")."""
    table = query_scores(per_query, endpoint.task, endpoint.metric, langs)
    tests = language_tests(per_query, endpoint.task, endpoint.metric, langs, REFERENCE)
    rows = []
    for lang in langs:
        if lang not in table.index.get_level_values("lang"):
            continue
        scores = table.loc[lang]
        row: dict[str, Any] = {"lang": lang, **{m: scores[m].mean() for m in scores.columns}}
        augs = [m for m in AUGMENTATIONS if m in scores and scores[m].notna().all()]
        own = tests[(tests.lang == lang) & tests.method.isin(augs)]
        if REFERENCE in scores and scores[REFERENCE].notna().all() and augs:
            for test in own.itertuples():
                row.update({f"{REFERENCE} − {test.method}": getattr(test, DIFFERENCE), f"p {test.method}": test.p})
            rule = own.assign(endpoint=endpoint.label, significant=own.p < ALPHA)
            outcome = rule_outcome(rule, endpoint.label, augs)
            if len(augs) < len(AUGMENTATIONS) and outcome != "worse":
                # "better" needs every augmentation arm, and "none" might still become "worse"
                row[RULE_COLUMN] = "incomplete: " + ", ".join(sorted(set(AUGMENTATIONS) - set(augs))) + " missing"
            else:
                row[RULE_COLUMN] = OUTCOMES[outcome].format(reference=REFERENCE)
        rows.append(row)
    return pd.DataFrame(rows)


def analyse(
    results: str | Path,
    langs: tuple[str, ...] = PRIMARY_LANGS,
    seeds: int = REGISTERED_SEEDS,
    endpoints: tuple[Endpoint, ...] = ENDPOINTS,
) -> dict[str, Any]:
    """The primary analysis of a v2 results folder (see the module doc); also written to analysis.json.
    ``langs``/``seeds``/``endpoints``: the family (the registered one by default; me5-small's secondary run
    registers hau, swa, yor with 2 seeds; the QALD track ukr, lit, bel, bak, hye, 2 seeds, ``qald:F1``)."""
    results = Path(results)
    per_query = load_per_query(results / "runs")
    check_endpoints(per_query, endpoints, results)
    methods = [m for m in ARMS if m != REFERENCE]
    done = cells(results)

    def required(method: str) -> int:  # cells of one language and arm: one per seed (.runner.plan_cells)
        return seeds

    def finished(lang: str, method: str) -> int:  # (counted up to what the family needs)
        n = int(((done.lang == lang) & (done.method == method)).sum()) if len(done) else 0
        return min(n, required(method))

    # the registered family: every primary language has every arm with every seed
    complete = all(finished(lang, m) == required(m) for lang in langs for m in ARMS)
    out: dict[str, Any] = {
        "results": str(results),
        "primary_languages": list(langs),
        "reference": REFERENCE,
        "endpoints": [e.label for e in endpoints],
        "complete": complete,
        "seeds_registered": seeds,
        "cells": {
            "finished": int(sum(finished(lang, m) for lang in langs for m in ARMS)),
            "planned": len(langs) * sum(map(required, ARMS)),
        },
        "seeds_per_cell": done.groupby(["lang", "method"]).seed.nunique().to_dict() if len(done) else {},
    }
    out["seeds_per_cell"] = {f"{k[0]}/{k[1]}": int(v) for k, v in out["seeds_per_cell"].items()}
    # how often dev selection kept the untrained student, over the family's trained cells only
    trained = done[(done.method != "zero-shot") & done.lang.isin(langs) & (done.seed < seeds)]
    out["step0_selected"] = {
        m: {"step0": int((g.best_step == 0).sum()), "cells": len(g)} for m, g in trained.groupby("method")
    }
    out["step0_fraction"] = float((trained.best_step == 0).mean()) if len(trained) else None
    out["step0_cells"] = {"step0": int((trained.best_step == 0).sum()), "cells": len(trained)}
    out["uninformative"] = bool(len(trained) and out["step0_fraction"] > UNINFORMATIVE_SHARE)
    if complete:
        table = pooled_comparisons(
            per_query, REFERENCE, methods, list(endpoints), list(langs), seed_resamples=SEED_RESAMPLES
        )
        out["tests"] = table.to_dict(orient="records")
        augs = [m for m in AUGMENTATIONS if m in methods]
        out["answers"] = {e.label: answer(table, e.label, augs) for e in endpoints}
        out["mde_met"] = {
            e.label: bool(table[table.endpoint == e.label].mde.max() <= MDE_TARGETS[e.label])
            for e in endpoints
            if e.label in MDE_TARGETS
        }
    # secondary: the per-language tables (the family's endpoints, then the suite's other ones the cells have);
    # with a complete family, the registered rule per language of each family endpoint
    present = [lang for lang in langs if lang in set(per_query.lang)]
    out["per_language_tables"] = {
        e.label: json_records(per_language(per_query, e, present))
        for e in dict.fromkeys([*endpoints, *SECONDARY])
        if e.task in set(per_query.task)
    }
    if complete:
        out["per_language"] = {
            e.label: {row["lang"]: row[RULE_COLUMN] for row in out["per_language_tables"][e.label]} for e in endpoints
        }
    write_json(out, results / "analysis.json")
    return out


def check_endpoints(per_query: pd.DataFrame, endpoints: tuple[Endpoint, ...], results: Path) -> None:
    """A mistyped endpoint fails here, naming what the cells have (not later as a missing arm)."""
    available = {
        task: [c for c in group.dropna(axis=1, how="all").columns if c not in ID_COLUMNS]
        for task, group in per_query.groupby("task")
    }
    for endpoint in endpoints:
        if endpoint.metric not in available.get(endpoint.task, []):
            raise DataError(
                f"no per-query column {endpoint.metric!r} of sub-task {endpoint.task!r} in any finished cell",
                path=results / "runs",
                fix="--endpoints SUBTASK:METRIC with one of: "
                + "; ".join(f"{task}:{'|'.join(cols)}" for task, cols in available.items()),
            )


def arm_name(method: str) -> str:
    """An arm as every answer names it: with its caveat when its result is an oracle's (the registry says)."""
    spec = BY_NAME.get(method)
    return f"{method} ({spec.oracle})" if spec is not None and spec.oracle else method


def interval(test: dict[str, Any]) -> str:
    """``+0.047 [+0.021, +0.073]``: OPTICAL − arm with its 95% CI (and the seed-and-query bootstrap's)."""
    text = f"{test[DIFFERENCE]:+.3f} [{test['ci_low']:+.3f}, {test['ci_high']:+.3f}]"
    if test.get("hier_ci_low") is not None:
        text += f" (seeds and queries resampled: [{test['hier_ci_low']:+.3f}, {test['hier_ci_high']:+.3f}])"
    return text


def test_line(test: dict[str, Any]) -> str:
    """One comparison of the family: the arm's own difference, CI, Holm p and MDE."""
    verdict = "OPTICAL better" if test[DIFFERENCE] > 0 else "OPTICAL worse"
    verdict = verdict if test["significant"] else "not significant"
    return (
        f"OPTICAL − {arm_name(test['method'])} = {interval(test)}, Holm p {test['p_holm']:.3f} ({verdict}), "
        f"MDE {test['mde']:.3f}; means {test['reference_mean']:.3f} vs {test['method_mean']:.3f}"
    )


def power_lines(analysis: dict[str, Any]) -> list[str]:
    """Whether each endpoint's registered power target was met: said before any result."""
    tests = pd.DataFrame(analysis["tests"])
    parts = []
    for label in analysis["answers"]:
        largest = tests[tests.endpoint == label].mde.max()
        target = MDE_TARGETS.get(label)
        parts.append(
            f"{label}: no MDE target registered (largest MDE {largest:.3f})"
            if target is None
            else f"{label}: target MDE ≤ {target} **{'met' if largest <= target else 'NOT met'}** "
            f"(largest MDE {largest:.3f})"
        )
    return [
        "**Power first.** " + "; ".join(parts) + ". A difference smaller than an arm's MDE can hide behind "
        '"not significant".',
        "",
    ]


def uninformative_lines(analysis: dict[str, Any]) -> list[str]:
    """A backbone whose trained cells mostly kept the untrained student: said instead of a verdict."""
    if not analysis.get("uninformative"):
        return []
    n = analysis["step0_cells"]
    per_arm = ", ".join(f"{m} {c['step0']}/{c['cells']}" for m, c in analysis["step0_selected"].items())
    return [
        f"**Uninformative: no verdict.** Dev selection kept the untrained step-0 student in {n['step0']} of "
        f'{n["cells"]} trained cells ({per_arm}): most "trained" students here are the zero-shot model, so '
        "the comparisons below say little about training. They are listed for the record, not as an answer.",
        "",
    ]


def brief_lines(analysis: dict[str, Any], langs: tuple[str, ...] = PRIMARY_LANGS) -> list[str]:
    """The section "In brief": one bullet per endpoint (power, then each augmentation arm's OPTICAL − arm with
    its CI and Holm p), or the "uninformative" label, or "incomplete" — what the README shows first."""
    lines = ["## In brief", ""]
    if not analysis["complete"]:
        cells = analysis["cells"]
        return lines + [
            f"- incomplete: {cells['finished']} of {cells['planned']} cells of the family finished; no test run yet.",
            "",
        ]
    if analysis.get("uninformative"):
        n = analysis["step0_cells"]
        lines.append(
            "- **uninformative, no verdict**: dev selection kept the untrained step-0 student in "
            f"{n['step0']} of {n['cells']} trained cells (pooled over {', '.join(langs)})."
        )
    tests = pd.DataFrame(analysis["tests"])
    for label in analysis["answers"]:
        rows = tests[tests.endpoint == label]
        target, largest = MDE_TARGETS.get(label), rows.mde.max()
        power = (
            f"power target MDE ≤ {target} {'met' if largest <= target else 'NOT met'} ({largest:.3f})"
            if target is not None
            else f"no power target (MDE up to {largest:.3f})"
        )
        arms = "; ".join(
            f"OPTICAL − {m}{' (oracle)' if BY_NAME[m].oracle else ''} "
            f"{t[DIFFERENCE]:+.3f} [{t.ci_low:+.3f}, {t.ci_high:+.3f}], Holm p {t.p_holm:.3f}, "
            f"MDE {t.mde:.3f}"
            for m, t in rows.set_index("method").iterrows()
            if m in AUGMENTATIONS
        )
        rule = "no verdict" if analysis.get("uninformative") else f"registered rule: {analysis['answers'][label]}"
        lines.append(f"- **{label}** ({power}): {arms}. {rule[:1].upper()}{rule[1:]}.")
    return lines + [""]


def answer_lines(analysis: dict[str, Any], langs: tuple[str, ...] = PRIMARY_LANGS) -> list[str]:
    """The section "The answer": the power reached, each augmentation arm's own result and the registered
    rule per endpoint — or how far the run is from one (also shown by the README and notebook 03)."""
    primary = tuple(langs) == PRIMARY_LANGS and analysis.get("endpoints", DEFAULT_LABELS) == DEFAULT_LABELS
    kind = "primary" if primary else "secondary"
    lines = [f"## The answer ({kind}, pooled over " + ", ".join(langs) + ")", ""]
    if analysis["complete"]:
        lines += power_lines(analysis) + uninformative_lines(analysis)
        tests = analysis.get("tests", [])
        rule = "registered rule (no verdict: uninformative)" if analysis.get("uninformative") else "registered rule"
        for label, text in analysis["answers"].items():
            lines.append(f"- **{label}** — {rule}: {text}.")
            lines += [f"  - {test_line(t)}" for t in tests if t["endpoint"] == label and t["method"] in AUGMENTATIONS]
        lines += [
            "",
            "OPTICAL − arm on per-query scores averaged over seeds, mean over the languages; [95% CI, not "
            "Holm-adjusted]; Holm over the whole family; MDE at α 0.05, power 0.8.",
            "",
        ]
        untrained = [m for m, n in analysis.get("step0_selected", {}).items() if n["step0"] == n["cells"]]
        if untrained:  # then the arm is the zero-shot model in every cell: its comparisons say nothing of training
            lines += [
                "Dev selection kept the untrained student (step 0) in every cell of: "
                + ", ".join(untrained)
                + (" — these arms are" if len(untrained) > 1 else " — this arm is")
                + " evaluated as the zero-shot model, so comparisons with it test nothing of training.",
                "",
            ]
        others = [t for t in tests if t["method"] not in AUGMENTATIONS]
        if others:  # the rest of the registered family, stated the same way (significant = Holm p < 0.05)
            lines += ["The family's other comparisons (OPTICAL vs arms that are not augmentation, Holm-adjusted):", ""]
            for label in analysis["answers"]:
                lines.append(f"- **{label}**: " + "; ".join(test_line(t) for t in others if t["endpoint"] == label))
            lines.append("")
        if "per_language" in analysis:  # (analysis.json files written before it was added do not have it)
            lines += [
                "Per language, the same rule on that language's queries alone (secondary: unpowered, "
                "p < 0.05 unadjusted):",
                "",
            ]
            for label, rules in analysis["per_language"].items():
                by_outcome: dict[str, list[str]] = {}
                for lang, rule in rules.items():
                    by_outcome.setdefault(rule, []).append(lang)
                lines.append(
                    f"- **{label}**: " + "; ".join(f"{rule} in {', '.join(ls)}" for rule, ls in by_outcome.items())
                )
            lines.append("")
        return lines
    cells = analysis["cells"]
    return lines + [
        f"**Not yet: the run is incomplete** ({cells['finished']} of {cells['planned']} cells of the registered "
        f"family finished: {len(langs)} languages × every arm × {analysis['seeds_registered']} seed(s)), so "
        "the registered tests are not run: a partial family would test something other than what was "
        "registered. Finished cells are tabled per language in the results document as they stand "
        "(secondary, unpowered).",
        "",
    ]


def v2_answer_markdown(results: str | Path = "results/v2-minilm") -> str:
    """The section "The answer" from a results folder's saved ``analysis.json`` (nothing recomputed or
    written: what notebook 03 shows)."""
    path = Path(results) / "analysis.json"
    if not path.exists():
        return f"No protocol-v2 analysis in `{results}` yet (`make v2-minilm` writes it)."
    analysis = json.loads(path.read_text(encoding="utf-8"))
    return "\n".join(answer_lines(analysis, tuple(analysis["primary_languages"])))


def render(results: str | Path, analysis: dict[str, Any], langs: tuple[str, ...] = PRIMARY_LANGS) -> str:
    results = Path(results)
    lines = [
        f"# Protocol v2 results: `{results}`",
        "",
        "Generated by `python -m optical_lab.reports.v2` from the results folder; the protocol and its "
        "primary analysis were registered before any v2 number existed ([protocol_v2.md](protocol_v2.md)).",
        "",
    ]
    lines += brief_lines(analysis, langs) + answer_lines(analysis, langs)
    lines += corrections_lines(results)
    if analysis["complete"]:
        tests = pd.DataFrame(analysis["tests"])
        columns = [
            "endpoint",
            "method",
            "reference_mean",
            "method_mean",
            DIFFERENCE,
            "ci_low",
            "ci_high",
            *[c for c in ("hier_ci_low", "hier_ci_high") if c in tests],
            "p",
            "p_holm",
            "significant",
            "mde",
            "queries",
            "min_seeds",
        ]
        lines += [
            "",
            "## Primary tests",
            "",
            tests[columns].to_markdown(index=False, floatfmt=".4f"),
            "",
            f"{DIFFERENCE} = OPTICAL − method (language-stratified mean of seed-averaged queries), ci = its "
            "95% "
            "interval (normal, the MDE's standard error); hier_ci = the 95% percentile interval when seeds and "
            "queries are both resampled (two-stage bootstrap, 2,000 draws); mde = minimum detectable effect "
            "(α 0.05, power 0.8). " + mde_target_text(analysis),
            "",
        ]
    lines += [
        "## Per language (secondary, unpowered, unadjusted)",
        "",
        "Seed-averaged means per arm; optical − arm per query, averaged; p arm = unadjusted two-sided "
        "sign-flip "
        "test over that language's queries (10,000 flips; the p of `significance.csv`, before its Holm); rule = "
        "the registered answer rule on that language alone.",
        "",
    ]
    for label, records in analysis["per_language_tables"].items():
        lines += [f"### {label}", "", markdown_table(pd.DataFrame(records)), ""]
    lines += sweep_lines(results / "sweep") or frozen_settings_lines(results)
    lines += compute_plan_lines(results)
    lines += [
        "## Model selection and the OT diagnostics",
        "",
        "Dev selection kept the untrained student (step 0) in: "
        + ", ".join(f"{m} {n['step0']}/{n['cells']}" for m, n in analysis["step0_selected"].items())
        + ".",
        "",
    ]
    diag = diagnostics(results)
    if len(diag):
        lines += [
            "OPTICAL runs, mean over their last 20 steps (token_cos: mean pairwise cosine of a sentence's "
            "student tokens, the collapse indicator):",
            "",
            diag.groupby("lang")[list(DIAGNOSTICS)].mean().reset_index().to_markdown(index=False, floatfmt=".4f"),
            "",
        ]
    return "\n".join(lines)


def parse_endpoint(label: str) -> Endpoint:
    """``"qald:F1"`` -> ``Endpoint("qald", "F1")`` (sub-task : per-query column)."""
    task, sep, metric = label.partition(":")
    if not (sep and task and metric):
        raise ValueError(f"endpoint {label!r} is not SUBTASK:METRIC, e.g. clir:MRR@10 or qald:F1")
    return Endpoint(task, metric)


def mde_target_text(analysis: dict[str, Any]) -> str:
    """Which endpoints met their registered MDE target, and which have none registered."""
    met = analysis.get("mde_met", {})
    free = [label for label in analysis.get("endpoints", DEFAULT_LABELS) if label not in met]
    parts = []
    if met:
        parts.append(
            "Targets: "
            + ", ".join(f"{k} ≤ {MDE_TARGETS[k]}" for k in met)
            + "; met: "
            + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in met.items())
            + "."
        )
    missed = [label for label, ok in met.items() if not ok]
    if missed and "tests" in analysis:
        tests = pd.DataFrame(analysis["tests"])
        for label in missed:
            rows = tests[tests.endpoint == label]
            worst, worst_aug = rows.loc[rows.mde.idxmax()], rows[rows.method.isin(AUGMENTATIONS)].mde.max()

            # MDE ∝ SE ∝ 1/√n when every language's n grows by the same factor and the per-query spread stays
            def needed(mde: float) -> float:
                return worst.queries * (mde / MDE_TARGETS[label]) ** 2  # noqa: B023 (called at once)

            parts.append(
                f"{label}: the largest MDE ({worst.mde:.3f}, OPTICAL vs {worst.method}) rests on "
                f"{worst.queries} queries over {worst.languages} languages; at the same per-query spread about "
                f"{needed(worst.mde):,.0f} queries ({needed(worst.mde) / worst.languages:,.0f} per language) "
                f"would reach {MDE_TARGETS[label]} (for the augmentation comparisons alone, MDE {worst_aug:.3f}: "
                f"about {needed(worst_aug):,.0f}). Where a collection has fewer queries per language than that, "
                "more languages or less noisy per-query scores are the levers."
            )
    if free:
        parts.append("No MDE target registered for " + ", ".join(free) + ".")
    return " ".join(parts)


def missing_as_none(table: pd.DataFrame) -> pd.DataFrame:
    """The table with each missing value (an arm a language does not have yet) as None, not NaN."""
    return table.astype(object).where(table.notna(), None)


def json_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """A table's rows for a JSON file (a missing value is null: NaN is not JSON)."""
    return missing_as_none(table).to_dict(orient="records")


def markdown_table(table: pd.DataFrame) -> str:
    """A table with its missing values (a diagnostic another method does not have) left blank."""
    return missing_as_none(table).to_markdown(index=False, floatfmt=".4g", missingval="")


def sweep_lines(sweep: Path) -> list[str]:
    """The dev-only sweep that chose every arm's settings: the choices and every cell tried."""
    rows = finished_rows(sweep)
    if not rows:
        return []
    chosen_file, config_file = sweep / "chosen.json", sweep / "config.json"
    chosen = json.loads(chosen_file.read_text(encoding="utf-8")) if chosen_file.exists() else {}
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.exists() else {}
    # <sweep>/done.json marks a finished sweep; until then its choices are those of the stages done so far
    status = "Chosen" if (sweep / "done.json").exists() else "Chosen so far (the sweep has not finished)"
    lines = [
        "## Settings chosen on dev bitext (the sweep)",
        "",
        f"`optical-lab sweep` on MAFAND-MT {rows[0]['lang']} dev, seed {config.get('seed', '?')}, the full budget; "
        "score = best dev MRR among the dev pairs, no evaluation text encoded (docs/protocol_v2.md). "
        f"{status}: " + ("; ".join(f"**{m}** {slug(s)}" for m, s in chosen.items()) or "nothing yet") + ".",
        "",
        markdown_table(sweep_table(rows)),
        "",
        DIAGNOSTICS_TEXT,
        "",
    ]
    never = never_improved(rows)
    if never:
        lines += [
            "**Never above the untrained student on dev:** "
            + "; ".join(
                f"**{m}** (all {n} settings trained: dev MRR {start:.3f} untrained, {low:.3f}–{high:.3f} at the last "
                f"step)"
                for m, (n, start, low, high) in never.items()
            )
            + ". Dev selection keeps step 0 for such an arm, so its grid cells evaluate the untrained student.",
            "",
        ]
    return lines


def frozen_settings_lines(results: Path) -> list[str]:
    """For a run without its own sweep (the QALD track): the settings it took from another run's sweep."""
    config_file = results / "config.json"
    settings = (
        json.loads(config_file.read_text(encoding="utf-8")).get("method_config") if config_file.exists() else None
    )
    if not settings:
        return []
    env_file = results / "environment_compare.json"
    argv = json.loads(env_file.read_text(encoding="utf-8")).get("argv", []) if env_file.exists() else []
    source = next((f"`{b}`" for a, b in zip(argv, argv[1:]) if a == "--method-config"), "its `--method-config` file")
    return [
        "## Settings (frozen from another run's dev sweep)",
        "",
        f"This run has no sweep of its own: every arm trained with the settings below, chosen on dev bitext by "
        f"the sweep that wrote {source} (the values are recorded in `config.json`): "
        + "; ".join(f"**{m}** {slug(s)}" for m, s in settings.items())
        + ".",
        "",
    ]


def never_improved(rows: list[dict]) -> dict[str, tuple[int, float, float, float]]:
    """Methods whose every trained sweep setting selected step 0: method -> (settings, untrained dev MRR,
    lowest and highest dev MRR at the last evaluated step)."""
    out = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        trained = [r for r in rows if r["method"] == method and "same_as" not in r and r.get("dev_history")]
        if trained and all(r["best_step"] == 0 for r in trained):
            ends = [r["dev_history"][-1][1] for r in trained]
            out[method] = (len(trained), trained[0]["dev_history"][0][1], min(ends), max(ends))
    return out


def compute_plan_lines(results: Path) -> list[str]:
    """The measured cut rates and step rates of ``plan.json`` (``optical_lab.experiments.compute_plan``)."""
    path = results / "plan.json"
    if not path.exists():
        return []
    plan = json.loads(path.read_text(encoding="utf-8"))
    machine = plan["machine"]
    rows = [
        {
            "lang": lang,
            "train pairs": t["pairs"],
            "distinct pairs seen": t["distinct_pairs"],
            **{f"foreign cut @{n}": v for n, v in t["cut_foreign"].items()},
            **{f"English cut @{n}": v for n, v in t["cut_english"].items()},
        }
        for lang, t in plan["truncation"].items()
        if "cut_foreign" in t
    ]
    lines = [
        "## Training budget, truncation and compute (measured: `plan.json`)",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, flags {', '.join(machine['flags'])}, "
        f"precision {machine['precision']}. Every cell: {plan['budget']['steps']} steps × "
        f"{plan['budget']['batch_size']} pairs, training length {plan['budget']['max_length']} tokens"
        + (
            ", the student's word-embedding table frozen (the teacher's)"
            if plan["budget"].get("freeze_word_embeddings")
            else ""
        )
        + ". "
        "Cut = share of training sentences longer than the limit (special tokens included).",
        "",
    ]
    if rows:
        lines += [pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"), ""]
    rates = ", ".join(f"{m} {r['median_s']:.2f} s" for m, r in plan["step_seconds"].items())
    if rates:
        lines += [f"Median wall seconds per training step on this (shared) machine: {rates}.", ""]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="a v2 comparison folder, e.g. results/v2-minilm")
    parser.add_argument("--doc", default=None, help="also write the results document here, e.g. docs/results_v2.md")
    parser.add_argument("--langs", default=None, help="the family's languages (default: the registered primary five)")
    parser.add_argument("--seeds", type=int, default=REGISTERED_SEEDS, help="seeds per trained arm the family needs")
    parser.add_argument(
        "--endpoints",
        default=",".join(DEFAULT_LABELS),
        help="the family's endpoints, SUBTASK:METRIC[,...] (default: the registered primary two)",
    )
    args = parser.parse_args(argv)
    langs = tuple(args.langs.split(",")) if args.langs else PRIMARY_LANGS
    try:
        endpoints = tuple(parse_endpoint(label) for label in args.endpoints.split(","))
    except ValueError as error:
        parser.error(str(error))
    try:
        analysis = analyse(args.results, langs, args.seeds, endpoints)
    except (DataError, FileNotFoundError) as error:  # FileNotFoundError: no finished cell yet
        parser.exit(2, f"error: {error}\n")
    if args.doc:
        Path(args.doc).write_text(render(args.results, analysis, langs), encoding="utf-8")
    print(json.dumps({k: analysis[k] for k in ("complete", "step0_selected") if k in analysis}, indent=2))
    for label, text in analysis.get("answers", {}).items():
        print(f"{label}: {text}")


if __name__ == "__main__":
    main()
