r"""The protocol-v3 analysis (``docs/protocol_v3.md``: "Primary analysis (fixed now)", "Endpoints and families",
"Train to a plateau", "Solve the OT problem"), exactly as registered.

``optical-lab report v3 results/v3-minilm --doc docs/results_v3.md`` reads a comparison folder (its ``config.json``
says which cells the grid plans) and writes ``<results>/analysis.json`` and, with ``--doc``, the results document
(:mod:`.v3_doc`, generated from ``analysis.json``, never edited by hand). Every number is computed from the files.

**The test** (one per endpoint and arm, :mod:`optical_lab.evaluation.stats`): the unit is the query, a query's score
for an arm is averaged over that arm's seeds, the difference is OPTICAL − arm, and the statistic is the mean over
the endpoint's languages of each language's mean query difference. Seed variance is inside the test: within each
language the queries and each arm's seeds are resampled with replacement (:func:`~.stats.hierarchical_draws`,
B = 10,000, seed 0); the 95 % percentile interval, :math:`p = 2\min(\Pr^*[T^*\le 0], \Pr^*[T^*\ge 0])` floored at
1/B and :math:`\mathrm{MDE} = (z_{1-\alpha/(2m)} + z_{0.8})\,\mathrm{SD}^*` with :math:`m` the family size come
from those draws (:func:`~.stats.bootstrap_test`); Holm within the family.

**Families.** Primary (the answer, m = 4): {AfriQA passages MRR@10, FLORES en→xx acc@1} × {translate-train-oracle,
code-switch}. Secondary: the primary endpoints' other contrasts and every OPTICAL-vs-arm contrast on the secondary
endpoints. Per-language tests (Holm within a language and endpoint; the language's own draws) and a
DerSimonian–Laird random-effects model over languages (:func:`~.stats.random_effects`, each language's difference
with its bootstrap variance; Holm within the contrast's family) are registered secondaries. Endpoints are sub-tasks
of the v3 evaluation tasks (``compute_plan.V3_TASKS``) with their task's headline metric (the task registry); each
is tested over the family languages the protocol lists as having its data (a language outside the registered
family: the languages whose data the task finds).

**Bookkeeping** (the first line of the document flags each miss): cells expected (``plan_cells`` of the saved plan)
vs present — a partial grid is analysed as it stands, with no test and no verdict; ``selected_before_cap_share``
(trained cells whose selected step is > 0 and < the cap, over trained cells; step-0 cells counted separately;
target ≥ 0.8); ``unconverged_share`` of the registered OPTICAL over all its training steps (target ≤ 0.01); every
primary test's MDE against its registered target; more than half of the trained cells keeping the untrained
student (the me5-small rule: the run answers nothing, no verdict); the cells whose training diverged (deviation 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..data.errors import DataError
from ..evaluation.pooled import Endpoint
from ..evaluation.significance import holm
from ..evaluation.stats import N_RESAMPLES, bootstrap_test, hierarchical_draws, random_effects, seed_matrices
from ..evaluation.verdict import ALPHA, DIFFERENCE
from ..experiments.command import run_module
from ..experiments.compute_plan import V3_TASKS
from ..experiments.identity import plan_cells
from ..experiments.per_query import load_per_query, train_steps
from ..experiments.plan import plan_from_saved
from ..experiments.power import FAMILY_LANGS, TARGETS
from ..experiments.stopping import grid_cap, plateau_counts, selected_steps
from ..experiments.sweep_design import V3_ARMS
from ..io import read_json, stored_exists, write_json
from ..methods.registry import BY_NAME, REFERENCE
from ..tasks import (
    afriqa_passages,
    afriqa_questions,
    flores_sentences,
    ntrex,
    ntrex_sentence,
    sib_topics,
    tico_sentences,
)
from ..tasks.registry import TASKS, get_task

ARMS = ("zero-shot", *V3_ARMS)  # the registered arms (OPTICAL: the reference)
AUGMENTATIONS = tuple(arm for arm in ARMS if BY_NAME[arm].augmentation)  # the primary family's arms
SEED = 0  # the bootstrap's registered seed (B: stats.N_RESAMPLES = 10,000)
PLATEAU_TARGET = 0.8  # selected_before_cap_share ≥ this ("Train to a plateau")
UNCONVERGED_TARGET = 0.01  # unconverged_share ≤ this ("Solve the OT problem")
REGISTERED_AFRIQA_SPLIT = "all"  # AfriQA's questions of every split are evaluation queries ("Data")
UNINFORMATIVE_SHARE = 0.5  # trained cells keeping step 0 beyond this share: the run answers nothing ("Backbones")


def endpoint(sub_task: str) -> Endpoint:
    """A sub-task of a v3 evaluation task with its task's headline metric, both from the task registry."""
    for name in V3_TASKS:
        if sub_task in TASKS[name].reported:
            return Endpoint(sub_task, TASKS[name].primary)
    raise KeyError(f"no v3 evaluation task has the sub-task {sub_task!r}")


def task_of(point: Endpoint) -> str:
    """The v3 evaluation task an endpoint's sub-task belongs to."""
    return next(name for name in V3_TASKS if point.task in TASKS[name].reported)


PRIMARY = (endpoint(afriqa_passages.SUBTASK), endpoint(flores_sentences.EN_XX))
SECONDARY = tuple(
    endpoint(sub)
    for sub in (
        flores_sentences.XX_EN,
        afriqa_questions.XX_EN,
        afriqa_questions.EN_XX,
        tico_sentences.EN_XX,
        ntrex.SUBTASK,
        ntrex_sentence.SUBTASK,
        sib_topics.SUBTASK,
    )
)
# the family languages with each collection's data, fixed by the protocol ("Languages"), not by what a run finds
_AFRIQA, _TICO, _NTREX = (
    ("hau", "ibo", "swa", "yor", "zul", "twi"),
    ("hau", "swa", "zul", "lug"),
    ("hau", "ibo", "swa", "yor", "zul"),
)
REGISTERED_LANGS = {
    afriqa_passages.SUBTASK: _AFRIQA,
    afriqa_questions.XX_EN: _AFRIQA,
    afriqa_questions.EN_XX: _AFRIQA,
    tico_sentences.EN_XX: _TICO,
    ntrex.SUBTASK: _NTREX,
    ntrex_sentence.SUBTASK: _NTREX,
}  # FLORES (both directions) and SIB-200: every family language


def target(point: Endpoint) -> float:
    """A primary endpoint's registered MDE target (issue #26: MRR-type 0.02, accuracy-type 0.015)."""
    return TARGETS["MRR-type" if point.metric.startswith("MRR") else "accuracy-type"]


def endpoint_langs(point: Endpoint, langs: list[str]) -> list[str]:
    """The run's languages an endpoint is tested over: a family language when the protocol lists it as having the
    endpoint's data; another (a user's) language when the task finds its data in the data folder."""
    task = None
    out = []
    for lang in langs:
        if lang in FAMILY_LANGS:
            if lang in REGISTERED_LANGS.get(point.task, FAMILY_LANGS):
                out.append(lang)
            continue
        task = task or get_task(task_of(point))
        if task.unavailable(lang) is None:
            out.append(lang)
    return out


def families(arms: list[str]) -> dict[str, list[tuple[Endpoint, str]]]:
    """The registered families ("Endpoints and families"): family -> its (endpoint, arm) contrasts."""
    others = [a for a in arms if a != REFERENCE]
    return {
        "primary": [(e, a) for e in PRIMARY for a in AUGMENTATIONS if a in others],
        "secondary": [(e, a) for e in PRIMARY for a in others if a not in AUGMENTATIONS]
        + [(e, a) for e in SECONDARY for a in others],
    }


# ------------------------------------------------------------------ bookkeeping
def cell_counts(results: Path, plan_cells_: list[tuple], present: list[tuple], arms: list[str]) -> dict[str, Any]:
    """Cells expected (the saved plan's, registered arms) vs present (finished: with ``done.json``), per arm."""
    by_arm = {
        arm: {"expected": sum(c[1] == arm for c in plan_cells_), "present": sum(c[1] == arm for c in present)}
        for arm in arms
    }
    missing = [c[-1].relative_to(results / "runs").as_posix() for c in plan_cells_ if c not in present]
    return {"expected": len(plan_cells_), "present": len(present), "by_arm": by_arm, "missing": missing}


def diverged_cells(finished: list[tuple]) -> list[dict[str, Any]]:
    """The finished cells whose training diverged at ``step``, evaluated with their best dev state (deviation 2)."""
    infos = [(cell, read_json(cell[-1] / "done.json")) for cell in finished]
    return [
        {"arm": arm, "lang": lang, "fold": fold, "seed": seed, "step": info.get("diverged_step")}
        for (lang, arm, _, fold, seed, _), info in infos
        if info.get("diverged")
    ]


def plateau(results: Path, cells: set[str], arms: list[str]) -> dict[str, Any]:
    """Where dev selection stopped, over the plan's finished trained cells (:func:`..experiments.stopping.
    plateau_counts`)."""
    rows = [r for r in selected_steps(results / "runs") if r["cell"] in cells]
    return {**plateau_counts(rows), "by_arm": {a: plateau_counts([r for r in rows if r["method"] == a]) for a in arms}}


def cap_record(results: Path, grid_steps: int) -> dict[str, Any] | None:
    """The cap check the grid was to apply (:func:`..experiments.stopping.grid_cap` on ``<results>/sweep``, finished
    with trained runs; else None) with the cap the grid ran under (``grid_cap``): a difference is flagged."""
    sweep = results / "sweep"
    if not stored_exists(sweep / "done.json") or not selected_steps(sweep):
        return None
    return grid_cap(sweep) | {"grid_cap": grid_steps}


def unconverged(results: Path, cells: set[tuple], arms: list[str]) -> dict[str, dict[str, Any]]:
    """Per arm that logs it (the OT arms), the share of its OT problems Sinkhorn left above tolerance over every
    training step of the plan's cells: Σ ``ot_not_converged`` / Σ ``ot_problems`` over the steps (logs written
    since ``ot_problems`` is logged), else the mean of the per-step shares (``ot_unconverged_share``), which weighs
    the one short batch of each epoch like a full one (one step in n_pairs / batch). ``exact`` says which."""
    out = {}
    for arm in arms:
        shares, counts, problems, n_cells, exact = [], 0, 0, 0, True
        for info, steps in train_steps(results / "runs", arm):
            logged = [s for s in steps if "ot_unconverged_share" in s]
            if (info["lang"], arm, info["fold"], info["seed"]) in cells and logged:
                n_cells += 1
                shares += [float(s["ot_unconverged_share"]) for s in logged]
                counts += sum(int(s.get("ot_not_converged", 0)) for s in logged)
                exact = exact and all("ot_problems" in s for s in logged)
                problems += sum(int(s.get("ot_problems", 0)) for s in logged)
        if shares:
            exact = exact and problems > 0
            out[arm] = {
                "cells": n_cells,
                "steps": len(shares),
                "not_converged": counts,
                "problems": problems if exact else None,
                "exact": exact,
                "share": counts / problems if exact else float(np.mean(shares)),
            }
    return out


# ------------------------------------------------------------------ tests
def _record(point: Endpoint, arm: str, family: str, stats: dict[str, float], **extra: Any) -> dict[str, Any]:
    """One test as ``analysis.json`` keeps it (``difference`` = OPTICAL − arm)."""
    stats = dict(stats)
    return {
        "endpoint": point.label,
        "arm": arm,
        "family": family,
        "difference": stats.pop(DIFFERENCE),
        **stats,
        **extra,
    }


def _holm(records: list[dict[str, Any]]) -> None:
    for record, adjusted in zip(records, holm([r["p"] for r in records])):
        record["p_holm"] = adjusted


Matrices = dict[Endpoint, dict[tuple[str, str], Any]]  # endpoint -> (language, arm) -> seed x query scores


def endpoint_matrices(per_query, langs: list[str]) -> Matrices:
    """Every endpoint's seed x query score tables (:func:`..evaluation.stats.seed_matrices`), over its languages."""
    tasks = set(per_query.task.unique())
    return {
        point: seed_matrices(per_query, point.task, point.metric, endpoint_langs(point, langs))
        for point in (*PRIMARY, *SECONDARY)
        if point.task in tasks
    }


def _pairs(matrices: Matrices, point: Endpoint, arm: str, langs: list[str]) -> dict[str, tuple]:
    """language -> (OPTICAL's, the arm's) score tables; a language the protocol lists without them is an error."""
    by_lang = matrices.get(point, {})
    missing = [lang for lang in langs if (lang, REFERENCE) not in by_lang or (lang, arm) not in by_lang]
    if missing:
        raise DataError(
            f"{point.label}: no per-query results of {REFERENCE} or {arm} in {', '.join(missing)}, where the "
            "protocol lists this endpoint's data",
            fix="check the data folder against docs/protocol_v3.md (Languages) and re-run those cells",
        )
    return {lang: (by_lang[(lang, REFERENCE)], by_lang[(lang, arm)]) for lang in langs}


def run_tests(
    matrices: Matrices, langs: list[str], arms: list[str], n_resamples: int, seed: int, progress: bool = False
) -> tuple[list[dict], list[dict], list[dict]]:
    """The family tests, the per-language tests and the random-effects model (module doc); each list in order.
    A family holds the contrasts of the endpoints in ``matrices`` that have a language (its size: their number)."""
    tests, effects, draws = [], [], {}
    for family, contrasts in families(arms).items():
        contrasts = [(point, arm) for point, arm in contrasts if point in matrices and endpoint_langs(point, langs)]
        part, part_effects = [], []
        for point, arm in tqdm(contrasts, desc=f"{family} tests ({n_resamples:,} draws)", disable=not progress):
            point_langs = endpoint_langs(point, langs)
            pairs = _pairs(matrices, point, arm, point_langs)
            got = draws[(point, arm)] = hierarchical_draws(pairs, n_resamples, seed)
            common = {
                "primary": family == "primary",
                "languages": len(point_langs),
                "queries": sum(len(ref.columns.intersection(other.columns)) for ref, other in pairs.values()),
                "seeds": min(len(table) for pair in pairs.values() for table in pair),
            }
            test = _record(point, arm, family, bootstrap_test(got, len(contrasts)), **common)
            if family == "primary":
                test.update(arm_name=arm_name(arm), target=target(point), mde_met=bool(test["mde"] <= target(point)))
            part.append(test)
            variances = [float(np.var(d, ddof=1)) for _, d in got.values()]
            estimates = [observed for observed, _ in got.values()]
            part_effects.append(_record(point, arm, family, random_effects(estimates, variances), **common))
        _holm(part)
        _holm(part_effects)
        tests += part
        effects += part_effects
    return tests, language_tests(draws), effects


def language_tests(draws: dict[tuple[Endpoint, str], dict[str, tuple[float, np.ndarray]]]) -> list[dict[str, Any]]:
    """Per endpoint and language, OPTICAL against each arm from that language's own draws; Holm (and the MDE's
    family size) within the language and endpoint."""
    groups: dict[tuple[str, str], list[tuple[Endpoint, str, tuple]]] = {}
    for (point, arm), by_lang in draws.items():
        for lang, language in by_lang.items():
            groups.setdefault((point.label, lang), []).append((point, arm, language))
    out = []
    for (_, lang), members in groups.items():
        part = [
            _record(point, arm, "per-language", bootstrap_test({lang: language}, len(members)), lang=lang)
            for point, arm, language in members
        ]
        _holm(part)
        out += part
    return out


def means(matrices: Matrices, arms: list[str]) -> list[dict[str, Any]]:
    """Per endpoint, language and arm present: the mean of its seed-averaged query scores, its queries and seeds
    (a partial grid's too)."""
    rows = []
    for point, by_lang in matrices.items():
        for (lang, arm), table in sorted(by_lang.items(), key=lambda item: (item[0][0], arms.index(item[0][1]))):
            scores = table.mean(axis=0)
            rows.append(
                {
                    "endpoint": point.label,
                    "lang": lang,
                    "arm": arm,
                    "mean": float(scores.mean()),
                    "n": int(scores.notna().sum()),
                    "seeds": len(table),
                }
            )
    return rows


def verdict(test: dict[str, Any]) -> str:
    """The registered words ("Primary analysis (fixed now)") for one primary test."""
    name = arm_name(test["arm"])
    if test["p_holm"] < ALPHA:
        return f"OPTICAL beats {name}" if test["difference"] > 0 else f"{name} beats OPTICAL"
    return f"no difference detected; the run could detect differences of {test['mde']:.3f} or more"


def arm_name(arm: str) -> str:
    """translate-train is named as the oracle it is, every time (``MethodSpec.oracle``)."""
    return f"{arm}-oracle (human translations)" if BY_NAME[arm].oracle else arm


def flags(out: dict[str, Any]) -> list[str]:
    """What the first line of the document must say: a partial grid, a missed primary MDE target, too few cells
    selected before the cap, an unsolved OT problem, a run that answers nothing."""
    found = []
    cells = out["cells"]
    if diverged := out["diverged_cells"]:
        named = ", ".join(f"{d['arm']} {d['lang']} seed {d['seed']} at step {d['step']}" for d in diverged)
        found.append(f"{len(diverged)} diverged cell(s), evaluated with their best dev state (deviation 2): {named}")
    if not out["complete"]:
        found.append(f"partial grid: {cells['present']} of {cells['expected']} cells present, no verdict")
    if out["afriqa_split"] != REGISTERED_AFRIQA_SPLIT:
        found.append(f"AfriQA split {out['afriqa_split']!r}, registered: {REGISTERED_AFRIQA_SPLIT!r} (every split)")
    if out["arms_missing"]:
        found.append("registered arms not in the run: " + ", ".join(out["arms_missing"]))
    for test in out.get("tests", []):
        if test["primary"] and not test["mde_met"]:
            found.append(
                f"primary MDE target missed: {test['endpoint']} OPTICAL − {test['arm']} MDE {test['mde']:.4f} > "
                f"{test['target']}"
            )
    check = out.get("cap_check")
    if check and check["steps"] != check["grid_cap"]:
        found.append(
            f"the grid ran under a cap of {check['grid_cap']} steps, the cap check on the sweep sets {check['steps']}"
        )
    share = out["selected_before_cap_share"]
    if share is not None and share < PLATEAU_TARGET:
        found.append(f"selected_before_cap_share {share:.3f} < {PLATEAU_TARGET}")
    share = out["unconverged_share"]
    if share is not None and share > UNCONVERGED_TARGET:
        found.append(f"unconverged_share {share:.4f} > {UNCONVERGED_TARGET}")
    if out["uninformative"]:
        found.append("more than half of the trained cells kept the untrained student: the run answers nothing")
    return found


def analyse(
    results: str | Path, n_resamples: int = N_RESAMPLES, seed: int = SEED, progress: bool = False
) -> dict[str, Any]:
    """The registered analysis of a v3 results folder (module doc); also written to ``analysis.json``. With
    ``progress``, a bar per family (B = 10,000: about 7 s per 1,000 queries of one language and contrast on a
    loaded 2-core CPU)."""
    results = Path(results)
    if not stored_exists(results / "config.json"):
        raise DataError("no config.json: not a comparison folder", path=results, fix="pass the folder compare wrote")
    plan = plan_from_saved(read_json(results / "config.json"))
    arms = [a for a in ARMS if a in plan.methods]
    expected = [c for c in plan_cells(plan, results / "runs") if c[1] in arms]
    finished = [c for c in expected if stored_exists(c[-1] / "done.json")]  # a cell still training is not counted
    cells = cell_counts(results, expected, finished, arms)
    steps = plateau(results, {c[-1].relative_to(results / "runs").as_posix() for c in finished}, arms)
    ot = unconverged(results, {(c[0], c[1], c[3], c[4]) for c in finished}, arms)
    present_langs = sorted({c[0] for c in finished}, key=plan.langs.index)
    out: dict[str, Any] = {
        "protocol": "docs/protocol_v3.md",
        "results": str(results),
        "reference": REFERENCE,
        "languages": present_langs,
        "languages_planned": list(plan.langs),
        "seeds": len(plan.seed_list()),
        "arms": arms,
        "arms_missing": [a for a in ARMS if a not in arms],
        "afriqa_split": plan.task_options.get("afriqa_split"),
        "endpoints": {
            e.label: {"primary": e in PRIMARY, "languages": endpoint_langs(e, list(plan.langs))}
            | ({"target": target(e)} if e in PRIMARY else {})
            for e in (*PRIMARY, *SECONDARY)
        },
        "cells": cells,
        "diverged_cells": diverged_cells(finished),
        "complete": cells["present"] == cells["expected"] > 0,
        "selected_before_cap_share": steps["share"],
        "plateau": steps,
        "unconverged_share": ot.get(REFERENCE, {}).get("share"),
        "unconverged": ot,
        "uninformative": bool(steps["cells"] and steps["step0"] / steps["cells"] > UNINFORMATIVE_SHARE),
        "bootstrap": {"resamples": n_resamples, "seed": seed, "alpha": ALPHA},
        "targets": {"selected_before_cap_share": PLATEAU_TARGET, "unconverged_share": UNCONVERGED_TARGET},
    }
    out["cap_check"] = cap_record(results, plan.train.steps)
    sweep_done = results / "sweep" / "done.json"
    out["tuning"] = {
        "chosen": plan.method_config,  # the settings the grid ran (its --method-config, saved in config.json)
        "settings_tried": read_json(sweep_done).get("settings_tried") if stored_exists(sweep_done) else None,
    }
    if present_langs:
        per_query = load_per_query(results / "runs")
        per_query = per_query[
            per_query.lang.isin(plan.langs) & per_query.method.isin(arms) & per_query.seed.isin(plan.seed_list())
        ]
        matrices = endpoint_matrices(per_query, list(plan.langs))
        out["means"] = means(matrices, arms)
    if out["complete"]:
        absent = [p.label for p in (*PRIMARY, *SECONDARY) if endpoint_langs(p, list(plan.langs)) and p not in matrices]
        if absent:
            raise DataError(
                f"no finished cell has per-query results of {', '.join(absent)}",
                path=results / "runs",
                fix="run the grid with the v3 evaluation tasks (the Makefile's V3_MINILM --eval-tasks)",
            )
        out["tests"], out["per_language"], out["random_effects"] = run_tests(
            matrices, list(plan.langs), arms, n_resamples, seed, progress
        )
        out["families"] = {name: sum(t["family"] == name for t in out["tests"]) for name in families(arms)}
        if not out["uninformative"]:
            out["verdicts"] = [
                {"endpoint": t["endpoint"], "arm": t["arm"], "arm_name": t["arm_name"], "verdict": verdict(t)}
                for t in out["tests"]
                if t["primary"]
            ]
    out["flags"] = flags(out)
    write_json(_json_safe(out), results / "analysis.json")
    return out


def _json_safe(value: Any) -> Any:
    """NaN (no value: a random-effects model without within-language variance) as null: NaN is not JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return None if isinstance(value, float) and value != value else value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``optical-lab report v3``."""
    parser.add_argument("results", help="a v3 comparison folder, e.g. results/v3-minilm")
    parser.add_argument("--doc", default=None, help="also write the results document here, e.g. docs/results_v3.md")
    parser.add_argument(
        "--resamples",
        type=int,
        default=N_RESAMPLES,
        help="bootstrap draws B (the registered analysis: 10,000; fewer only for a quick look or a test)",
    )


def main(args: argparse.Namespace) -> int | None:
    """Analyse the folder (``analysis.json``), write the document when asked, print the flags and verdicts."""
    from .v3_doc import render

    try:
        analysis = analyse(args.results, args.resamples, progress=True)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.doc:
        Path(args.doc).write_text(render(analysis), encoding="utf-8")
    print(json.dumps({k: analysis[k] for k in ("complete", "flags")}, indent=2, ensure_ascii=False))
    for item in analysis.get("verdicts", []):
        print(f"{item['endpoint']}, {item['arm']}: {item['verdict']}")


if __name__ == "__main__":
    sys.exit(run_module(add_arguments, main, "python -m optical_lab.reports.v3"))
