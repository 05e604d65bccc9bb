"""The protocol-v3 results document (``docs/results_v3.md``), rendered from ``analysis.json`` (:mod:`.v3`) alone:
nothing is recomputed here, so the document and the file cannot disagree.

Its first line is the flags line: the cells whose training diverged (deviation 2, ``diverged_cells``), a partial
grid, a primary test whose MDE misses its registered target, ``selected_before_cap_share`` below 0.8,
``unconverged_share`` above 0.01, a run that answers nothing — or that there is none. Then the answer (the
registered verdict per augmentation arm and primary endpoint, with its effect, CI, Holm p and MDE), the bookkeeping
it rests on, and every test table.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..experiments.results_doc import corrections_lines
from .v2_setup import markdown_table

COVERAGE = "[docs/dev_coverage.md](dev_coverage.md)"  # `optical-lab coverage --doc docs/dev_coverage.md`
CALIBRATION = "[docs/v3_test_calibration.md](v3_test_calibration.md)"  # `optical-lab test-calibration` (deviation 3)
TEST_COLUMNS = ("endpoint", "arm", "difference", "ci_low", "ci_high", "p", "p_holm", "mde", "languages", "queries")


def flag_line(analysis: dict[str, Any]) -> str:
    """The document's first line."""
    if analysis["flags"]:
        return "> **Flags:** " + "; ".join(analysis["flags"]) + "."
    cells, targets = analysis["cells"], analysis["targets"]
    return (
        f"> **No flags:** complete grid ({cells['present']} cells), every primary MDE within its target, "
        f"selected_before_cap_share {_num(analysis['selected_before_cap_share'])} ≥ "
        f"{targets['selected_before_cap_share']}, unconverged_share {_num(analysis['unconverged_share'], 4)} ≤ "
        f"{targets['unconverged_share']}, no cell diverged."
    )


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def statement(test: dict[str, Any]) -> str:
    """A primary test with its effect, CI, Holm p and MDE."""
    return (
        f"OPTICAL − {test['arm_name']} = {test['difference']:+.4f} [95% CI {test['ci_low']:+.4f}, "
        f"{test['ci_high']:+.4f}], Holm p {test['p_holm']:.4f}, MDE {test['mde']:.4f} "
        f"(registered target {test['target']}: {'met' if test['mde_met'] else 'NOT met'})"
    )


def answer_lines(analysis: dict[str, Any]) -> list[str]:
    """The section "The answer": one line per augmentation arm and primary endpoint, or why there is none."""
    lines = ["## The answer (primary family, Holm over its 4 tests)", ""]
    if not analysis["complete"]:
        cells = analysis["cells"]
        return lines + [
            f"No verdict: the grid is partial ({cells['present']} of {cells['expected']} cells present), and a partial "
            "grid would test something other than what was registered. The means below are the finished cells' as "
            "they stand.",
            "",
        ]
    tests = {(t["endpoint"], t["arm"]): t for t in analysis["tests"] if t["primary"]}
    if analysis["uninformative"]:
        lines += [
            "No verdict: more than half of the trained cells kept the untrained student (selected step 0), so this "
            "run answers nothing on this data (docs/protocol_v3.md, Backbones). The tests are listed for the record.",
            "",
        ]
        return lines + [f"- **{t['endpoint']}**: {statement(t)}." for t in tests.values()] + [""]
    for item in analysis["verdicts"]:
        test = tests[(item["endpoint"], item["arm"])]
        lines.append(f"- **{item['endpoint']}**: {item['verdict']}. {statement(test)}.")
    return lines + [
        "",
        "OPTICAL − arm: the mean over the endpoint's languages of each language's mean query difference, a query's "
        "score averaged over the arm's seeds; CI, p and MDE from the two-stage bootstrap over queries and seeds "
        f"(B = {analysis['bootstrap']['resamples']:,}, seed {analysis['bootstrap']['seed']}); MDE at α 0.05 "
        "(Bonferroni's first Holm step in the family), power 0.8.",
        "",
    ]


def bookkeeping_lines(analysis: dict[str, Any]) -> list[str]:
    """Languages, seeds, cells, the plateau and the OT convergence the answer rests on."""
    cells, steps, targets = analysis["cells"], analysis["plateau"], analysis["targets"]
    lines = [
        "## What the answer rests on",
        "",
        f"- Languages with finished cells: {', '.join(analysis['languages']) or 'none'} (planned: "
        f"{', '.join(analysis['languages_planned'])}); seeds: {analysis['seeds']}; "
        f"arms: {', '.join(analysis['arms'])}.",
        f"- Cells: {cells['present']} of {cells['expected']} present.",
        f"- Train to a plateau: selected_before_cap_share {_num(analysis['selected_before_cap_share'])} (target ≥ "
        f"{targets['selected_before_cap_share']}): {steps['before_cap']} of {steps['cells']} trained cells selected "
        f"a step after 0 and before the cap; {steps['step0']} kept the untrained student (step 0); "
        f"{steps['at_cap']} selected the cap; {steps['stopped_early']} were stopped early by the patience rule.",
        *cap_check_lines(analysis.get("cap_check")),
        f"- Solve the OT problem: unconverged_share of the registered OPTICAL {_num(analysis['unconverged_share'], 4)} "
        f"(target ≤ {targets['unconverged_share']}), the mean over all its training steps of the share of OT "
        "problems left above tolerance.",
        f"- Dev text coverage (protocol v3, Orthography: reported beside the results): {COVERAGE}, the letters and "
        "unknown word pieces of each language's MAFAND-MT dev text against each evaluation text.",
        f"- The registered test's level and power, simulated before any v3 number under v2's variance components "
        f"(protocol v3, deviation 3): {CALIBRATION}; each test's own `mde` is the one judged against its target.",
        "",
    ]
    per_arm = pd.DataFrame(
        [
            {
                "arm": arm,
                "cells expected": count["expected"],
                "present": count["present"],
                "trained": steps["by_arm"][arm]["cells"],
                "selected in (0, cap)": steps["by_arm"][arm]["before_cap"],
                "step 0": steps["by_arm"][arm]["step0"],
                "at cap": steps["by_arm"][arm]["at_cap"],
                "unconverged share": analysis["unconverged"].get(arm, {}).get("share"),
                "OT steps": analysis["unconverged"].get(arm, {}).get("steps"),
            }
            for arm, count in cells["by_arm"].items()
        ]
    )
    return lines + [markdown_table(per_arm), ""] + tuning_lines(analysis["tuning"])


def cap_check_lines(check: dict[str, Any] | None) -> list[str]:
    """The registered cap check on the sweep's runs and the cap the grid ran under (none without a sweep)."""
    if not check:
        return []
    share = (
        "no sweep run left step 0"
        if check["share"] is None
        else (
            f"{_num(check['share'])} of the sweep's {check['runs']} runs past step 0 selected a step before its cap "
            f"{check['sweep_cap']} (target ≥ {check['target']})"
        )
    )
    rule = f"the grid's cap is doubled to {check['steps']}" if check["doubled"] else f"the grid keeps {check['steps']}"
    return [f"- Cap check (after the sweep, once): {share}: {rule}; the grid ran under {check['grid_cap']} steps."]


def tuning_lines(tuning: dict[str, Any]) -> list[str]:
    """Fair tuning: the settings each arm ran with and how many it tried (12 + the edge rule's extensions)."""
    tried = tuning.get("settings_tried") or {}
    rows = [
        {
            "arm": arm,
            "settings tried": tried.get(arm, {}).get("settings"),
            "edge-rule extensions": len(tried.get(arm, {}).get("extensions", [])) if arm in tried else None,
            "chosen": ", ".join(f"{k}={v}" for k, v in settings.items()),
        }
        for arm, settings in {**dict.fromkeys(tried, {}), **tuning["chosen"]}.items()
    ]
    if not rows:
        return []
    note = "" if tried else " The sweep's `done.json` is not in the results folder: settings tried not counted."
    return [
        "## Fair tuning (the dev sweep, `sweep/`)",
        "",
        "Every trained arm: 12 settings on the selection languages' dev bitext, plus the extensions the edge rule "
        "forced; the grid ran the chosen settings." + note,
        "",
        markdown_table(pd.DataFrame(rows)),
        "",
    ]


def table_lines(title: str, records: list[dict[str, Any]], columns: tuple[str, ...], note: str) -> list[str]:
    """A section with one table of test records (only the columns they have)."""
    if not records:
        return []
    table = pd.DataFrame(records)
    return [f"## {title}", "", markdown_table(table[[c for c in columns if c in table]]), "", note, ""]


def render(analysis: dict[str, Any]) -> str:
    """The whole document (module doc)."""
    results = analysis["results"]
    lines = [
        flag_line(analysis),
        "",
        f"# Protocol v3 results: `{results}`",
        "",
        "Generated by `optical-lab report v3` from the results folder (its `analysis.json`); the protocol and this "
        "analysis were registered before any v3 number existed ([protocol_v3.md](protocol_v3.md)). "
        "translate-train-oracle trains on human translations: an upper bound for MT-based translate-train.",
        "",
    ]
    lines += answer_lines(analysis) + bookkeeping_lines(analysis) + corrections_lines(results)
    tests = analysis.get("tests", [])
    lines += table_lines(
        "Primary tests",
        [t for t in tests if t["primary"]],
        (*TEST_COLUMNS, "seeds", "target", "mde_met"),
        "difference = OPTICAL − arm; 95% percentile CI; p two-sided, floored at 1/B; Holm within the family; "
        "mde with m = the family size.",
    )
    lines += table_lines(
        "Secondary family",
        [t for t in tests if not t["primary"]],
        (*TEST_COLUMNS, "seeds"),
        "The primary endpoints' other contrasts and every OPTICAL-vs-arm contrast on the secondary endpoints; "
        "Holm and the MDE's m over this family.",
    )
    lines += table_lines(
        "Random effects over languages (DerSimonian–Laird, secondary)",
        analysis.get("random_effects", []),
        (
            "endpoint",
            "arm",
            "family",
            "difference",
            "se",
            "ci_low",
            "ci_high",
            "p",
            "p_holm",
            "tau2",
            "I2",
            "languages",
        ),
        "Each language's difference weighted by its bootstrap variance plus the between-language variance tau2; "
        "normal CI and p; Holm within the contrast's family.",
    )
    lines += table_lines(
        "Per language (secondary)",
        analysis.get("per_language", []),
        ("endpoint", "lang", "arm", "difference", "ci_low", "ci_high", "p", "p_holm", "mde"),
        "Each language's own bootstrap draws; Holm and the MDE's m over the arms of that language and endpoint.",
    )
    lines += table_lines(
        "Seed-averaged means per language",
        analysis.get("means", []),
        ("endpoint", "lang", "arm", "mean", "n", "seeds"),
        "Mean over the n queries of each query's score averaged over the arm's seeds.",
    )
    return "\n".join(lines)
