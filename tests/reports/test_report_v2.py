"""The protocol-v2 report on a synthetic results folder: complete family -> answer; incomplete -> no test."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from optical_lab.reports.v2 import PRIMARY_LANGS, analyse, render, v2_answer_markdown

METHODS = ["zero-shot", "sentence-kd", "translate-train", "code-switch", "optical", "optical+aug"]
EFFECT = {
    "zero-shot": -0.2,
    "sentence-kd": 0.0,
    "translate-train": -0.1,
    "code-switch": -0.1,
    "optical": 0.0,
    "optical+aug": 0.0,
}


def _write_results(root, langs=PRIMARY_LANGS, seeds=(0, 1, 2), skip=()):
    rng = np.random.default_rng(0)
    (root / "runs").mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"methods": METHODS, "langs": list(langs)}))
    for lang in langs:
        base_clir, base_flores = rng.uniform(0.2, 0.8, 100), rng.uniform(0.2, 0.8, 200)
        for method in METHODS:
            if (lang, method) in skip:
                continue
            for seed in seeds:
                cell = root / "runs" / lang / method / f"fold0-seed{seed}"
                cell.mkdir(parents=True)
                clir = np.clip(base_clir + EFFECT[method] + rng.normal(0, 0.05, 100), 0, 1)
                flores = (rng.uniform(size=200) < np.clip(base_flores + EFFECT[method], 0, 1)).astype(float)
                pd.DataFrame({"qid": [f"d{i}" for i in range(100)], "MRR@10": clir}).to_csv(
                    cell / "clir.per_query.csv", index=False
                )
                pd.DataFrame({"qid": [f"s{i}" for i in range(200)], "acc@1": flores}).to_csv(
                    cell / "flores-en-xx.per_query.csv", index=False
                )
                best_step = 0 if method in ("zero-shot", "code-switch") and seed == 0 else 300
                (cell / "done.json").write_text(
                    json.dumps(
                        {
                            "lang": lang,
                            "method": method,
                            "fold": 0,
                            "seed": seed,
                            "best_step": best_step,
                            "train_s": 1.0,
                        }
                    )
                )
                if method == "optical":
                    (cell / "train_log.jsonl").write_text(
                        "\n".join(
                            json.dumps(
                                {
                                    "event": "train",
                                    "step": s,
                                    "token_cos": 0.3,
                                    "plan_entropy": 0.8,
                                    "marginal_error": 1e-4,
                                }
                            )
                            for s in range(1, 30)
                        )
                    )


def test_complete_family_is_tested_and_answered(tmp_path):
    _write_results(tmp_path)
    analysis = analyse(tmp_path)
    assert analysis["complete"]
    tests = pd.DataFrame(analysis["tests"])
    assert len(tests) == 2 * 5 and (tests.p_holm >= tests.p).all()
    # OPTICAL is 0.1 above both augmentation arms on every query: the registered rule says it wins
    assert analysis["answers"]["clir:MRR@10"].startswith("optical beats augmentation")
    assert not tests[(tests.method == "sentence-kd") & (tests.endpoint == "clir:MRR@10")].significant.any()
    assert analysis["step0_selected"]["code-switch"] == {"step0": 5, "cells": 15}
    assert analysis["per_language"]["clir:MRR@10"] == {lang: "optical beats augmentation" for lang in PRIMARY_LANGS}
    assert json.loads((tmp_path / "analysis.json").read_text())["answers"] == analysis["answers"]
    doc = render(tmp_path, analysis)
    assert "## The answer" in doc and "token_cos" in doc and "code-switch 5/15" in doc
    shown = v2_answer_markdown(tmp_path)  # read back from analysis.json, as notebook 03 shows it
    assert shown in doc and analysis["answers"]["clir:MRR@10"] in shown
    assert "- **clir:MRR@10**: optical beats augmentation in hau, yor, swa, zul, ibo" in shown
    # the rest of the family is stated too: zero-shot is 0.2 below OPTICAL, sentence-KD and optical+aug equal
    others = shown.split("other comparisons")[1].split("\n\n")[1].splitlines()[0]
    assert others.startswith("- **clir:MRR@10**: OPTICAL − zero-shot = +0.") and "(OPTICAL better)" in others
    assert "sentence-kd" in others and "optical+aug" in others and "augmentation" not in others
    assert "No protocol-v2 analysis" in v2_answer_markdown(tmp_path / "elsewhere")
    assert "in every cell of" not in shown  # no arm kept step 0 everywhere


def test_step0_counts_only_the_familys_cells(tmp_path):
    """Cells outside the family (a fourth seed, a language beyond it) are not counted in step0_selected."""
    _write_results(tmp_path, langs=PRIMARY_LANGS + ("amh",), seeds=(0, 1, 2, 3))
    analysis = analyse(tmp_path)  # the family: the five primary languages, 3 seeds
    assert analysis["step0_selected"]["code-switch"] == {"step0": 5, "cells": 15}
    assert analysis["step0_fraction"] == pytest.approx(5 / 75)
    assert [row["lang"] for row in analysis["per_language_tables"]["clir:MRR@10"]] == list(PRIMARY_LANGS)


def test_missing_arms_are_null_in_analysis_json_and_no_cells_is_a_clear_error(tmp_path, capsys):
    """A language without some arms yet: its table row has no value there, written as JSON null (NaN is not
    JSON); a folder with no finished cell exits with a message, not a traceback."""
    from optical_lab.cli import main

    _write_results(tmp_path / "partial", skip={("hau", "optical")})
    analyse(tmp_path / "partial")
    text = (tmp_path / "partial" / "analysis.json").read_text()
    assert "NaN" not in text
    hau = next(r for r in json.loads(text)["per_language_tables"]["clir:MRR@10"] if r["lang"] == "hau")
    assert hau["optical"] is None and hau["zero-shot"] is not None
    (tmp_path / "empty" / "runs").mkdir(parents=True)
    assert main(["report", "v2", str(tmp_path / "empty")]) == 2
    assert "no finished cells" in capsys.readouterr().err


def test_an_arm_that_kept_the_untrained_student_everywhere_is_named(tmp_path):
    """me5-small's case: an arm evaluated as the zero-shot model in every cell says nothing of its training."""
    _write_results(tmp_path)
    for done in (tmp_path / "runs").glob("*/code-switch/*/done.json"):
        done.write_text(json.dumps(json.loads(done.read_text()) | {"best_step": 0}))
    shown = "\n".join(render(tmp_path, analyse(tmp_path)).split("## Primary tests")[:1])
    assert "untrained student (step 0) in every cell of: code-switch — this arm is evaluated as the zero-shot" in shown


def test_the_rule_is_applied_per_language(tmp_path):
    """Secondary: each language gets the registered rule on its own (unadjusted p), whichever way it falls."""
    from optical_lab.evaluation.pooled import Endpoint
    from optical_lab.experiments.per_query import load_per_query
    from optical_lab.reports.v2 import per_language

    _write_results(tmp_path)
    for cell in (tmp_path / "runs" / "yor" / "translate-train").iterdir():  # yor: translate-train 0.3 above OPTICAL
        table = pd.read_csv(cell / "clir.per_query.csv")
        table["MRR@10"] = np.clip(table["MRR@10"] + 0.4, 0, 1)
        table.to_csv(cell / "clir.per_query.csv", index=False)
    rows = per_language(load_per_query(tmp_path / "runs"), Endpoint("clir", "MRR@10"), list(PRIMARY_LANGS)).set_index(
        "lang"
    )
    rule = rows["rule (p < 0.05, unadjusted)"]
    assert rule["yor"] == "augmentation beats optical" and rows.loc["yor", "optical − translate-train"] < 0
    assert (rule.drop("yor") == "optical beats augmentation").all()


def test_incomplete_family_is_reported_but_not_tested(tmp_path):
    _write_results(tmp_path, skip={("ibo", "code-switch")})
    analysis = analyse(tmp_path)
    assert not analysis["complete"] and "tests" not in analysis
    assert "**Not yet: the run is incomplete**" in render(tmp_path, analysis)
    assert analysis["cells"] == {"finished": 5 * 18 - 3, "planned": 5 * 18}  # 3 registered seeds per arm


def test_the_family_needs_every_registered_seed(tmp_path):
    _write_results(tmp_path, seeds=(0, 1))
    analysis = analyse(tmp_path)
    assert not analysis["complete"] and analysis["cells"] == {"finished": 5 * 6 * 2, "planned": 5 * 6 * 3}


def test_the_measured_compute_plan_is_tabled_when_plan_json_exists(tmp_path):
    _write_results(tmp_path)
    analysis = analyse(tmp_path)
    assert "Training budget, truncation" not in render(tmp_path, analysis)
    (tmp_path / "plan.json").write_text(
        json.dumps(
            {
                "machine": {"cpu": "Test CPU", "cores": 2, "flags": ["avx2"], "precision": "no"},
                "budget": {"steps": 300, "batch_size": 16, "max_length": 128},
                "truncation": {
                    "hau": {
                        "pairs": 3098,
                        "distinct_pairs": 3098,
                        "cut_foreign": {"64": 0.46, "128": 0.12},
                        "cut_english": {"64": 0.09, "128": 0.005},
                    }
                },
                "step_seconds": {"optical": {"median_s": 1.25}},
            }
        )
    )
    doc = render(tmp_path, analysis)
    assert "Test CPU" in doc and "foreign cut @128" in doc and "0.120" in doc and "optical 1.25 s" in doc


def test_the_sweep_section_names_an_arm_that_never_beat_the_untrained_student(tmp_path):
    from optical_lab.reports.v2_setup import never_improved, sweep_lines

    def cell(method: str, lr: float, best_step: int, history: list, **extra) -> None:
        folder = tmp_path / method / f"lr{lr}"
        folder.mkdir(parents=True)
        (folder / "done.json").write_text(
            json.dumps(
                {
                    "lang": "hau",
                    "model": "m",
                    "method": method,
                    "stage": "1-lr",
                    "setting": {"lr": lr},
                    "best_dev_mrr": max(h[1] for h in history),
                    "best_step": best_step,
                    "dev_history": history,
                    "train_s": 1.0,
                    **extra,
                }
            )
        )

    cell("optical", 1e-5, 0, [[0, 0.74], [300, 0.57]])
    cell("optical", 3e-4, 0, [[0, 0.74], [300, 0.66]])
    cell("optical", 1e-4, 0, [[0, 0.74], [300, 0.70]], same_as="optical/lr1e-05")  # a copy is not a setting
    cell("translate-train", 3e-4, 300, [[0, 0.74], [300, 0.80]])
    cell("translate-train", 1e-5, 0, [[0, 0.74], [300, 0.73]])
    from optical_lab.experiments.sweep import finished_rows

    assert never_improved(finished_rows(tmp_path)) == {"optical": (2, 0.74, 0.57, 0.66)}
    text = "\n".join(sweep_lines(tmp_path))
    assert "**optical** (all 2 settings trained: dev MRR 0.740 untrained, 0.570–0.660" in text
    assert "**translate-train** (all" not in text


def test_another_registered_family_names_its_own_endpoints(tmp_path):
    """The QALD track: its own languages, 2 seeds and the endpoint qald:F1 (no MDE target registered)."""
    from optical_lab.cli import main
    from optical_lab.reports.v2 import parse_endpoint

    langs = ("ukr", "lit")
    _write_results(tmp_path, langs=langs, seeds=(0, 1))
    for cell in (tmp_path / "runs").glob("*/*/fold0-seed*"):  # per-question F1: OPTICAL 0.1 above augmentation
        method = cell.parent.name
        f1 = np.clip(np.linspace(0.1, 0.9, 80) + EFFECT[method], 0, 1)
        pd.DataFrame({"qid": [str(i) for i in range(80)], "F1": f1}).to_csv(cell / "qald.per_query.csv", index=False)
    (tmp_path / "config.json").write_text(
        json.dumps({"methods": METHODS, "langs": list(langs), "method_config": {"optical": {"lr": 0.001}}})
    )
    doc = tmp_path / "doc.md"
    argv = [str(tmp_path), "--langs", "ukr,lit", "--seeds", "2", "--endpoints", "qald:F1", "--doc", str(doc)]
    assert main(["report", "v2", *argv]) == 0
    analysis = json.loads((tmp_path / "analysis.json").read_text())
    assert analysis["complete"] and analysis["endpoints"] == ["qald:F1"]
    assert {t["endpoint"] for t in analysis["tests"]} == {"qald:F1"} and len(analysis["tests"]) == 5
    assert analysis["answers"]["qald:F1"].startswith("optical beats augmentation") and analysis["mde_met"] == {}
    text = doc.read_text()
    assert "## The answer (secondary, pooled over ukr, lit)" in text and "No MDE target registered for qald:F1" in text
    assert "### qald:F1" in text and "### clir:MRR@10" in text  # the endpoint, then the suite's secondary ones
    assert "frozen from another run's dev sweep" in text and "**optical** lr0.001" in text
    assert parse_endpoint("clir:MRR@10").metric == "MRR@10"
    with pytest.raises(ValueError, match="SUBTASK:METRIC"):
        parse_endpoint("qald")


def test_a_missed_mde_target_says_how_many_queries_would_meet_it():
    from optical_lab.reports.v2 import mde_target_text

    tests = [
        {"endpoint": "clir:MRR@10", "method": m, "mde": mde, "queries": 600, "languages": 5}
        for m, mde in (("zero-shot", 0.04), ("code-switch", 0.03))
    ]
    analysis = {
        "endpoints": ["clir:MRR@10", "flores-en-xx:acc@1"],
        "tests": tests,
        "mde_met": {"clir:MRR@10": False, "flores-en-xx:acc@1": True},
    }
    text = mde_target_text(analysis)
    # SE ∝ 1/√n: (0.04 / 0.02)² × 600 = 2,400 queries, 480 per language
    assert "met: clir:MRR@10 NO, flores-en-xx:acc@1 yes" in text
    assert "largest MDE (0.040, OPTICAL vs zero-shot)" in text and "about 2,400 queries (480 per language)" in text


def test_a_missing_augmentation_arm_leaves_a_language_incomplete_not_won(tmp_path):
    """The rule needs both augmentation arms: with one missing, "better" cannot be said there."""
    from optical_lab.evaluation.pooled import Endpoint
    from optical_lab.experiments.per_query import load_per_query
    from optical_lab.reports.v2 import per_language

    _write_results(tmp_path, skip={("ibo", "code-switch")})
    rows = per_language(load_per_query(tmp_path / "runs"), Endpoint("clir", "MRR@10"), list(PRIMARY_LANGS)).set_index(
        "lang"
    )
    assert rows.loc["ibo", "rule (p < 0.05, unadjusted)"] == "incomplete: code-switch missing"
    assert rows.loc["hau", "rule (p < 0.05, unadjusted)"] == "optical beats augmentation"


def test_a_mistyped_endpoint_fails_naming_what_the_cells_have(tmp_path, capsys):
    from optical_lab.cli import main

    _write_results(tmp_path)
    assert main(["report", "v2", str(tmp_path), "--endpoints", "clir:MRR@100"]) == 2
    err = capsys.readouterr().err
    assert (
        "no per-query column 'MRR@100' of sub-task 'clir'" in err
        and "clir:MRR@10" in err
        and "flores-en-xx:acc@1" in err
    )


def test_power_comes_first_the_oracle_is_named_and_a_mostly_untrained_run_gets_no_verdict(tmp_path):
    """The answer states the power reached before any result, names translate-train as the oracle arm, and a run
    whose trained cells mostly kept the untrained student is labelled uninformative (counted, not typed)."""
    _write_results(tmp_path)
    doc = render(tmp_path, analyse(tmp_path))
    brief, answer = doc.split("## The answer")[0], doc.split("## The answer")[1].split("## Primary tests")[0]
    assert answer.index("**Power first.**") < answer.index("- **clir:MRR@10**")
    assert "- **clir:MRR@10** (power target MDE ≤ 0.02 " in brief  # the brief's bullets start with it too
    assert "OPTICAL − translate-train (oracle: trains on the human translations" in answer
    assert "Uninformative" not in answer and "no verdict" not in answer
    for done in (tmp_path / "runs").glob("*/*/*/done.json"):
        info = json.loads(done.read_text())
        if info["method"] not in ("zero-shot", "optical"):
            done.write_text(json.dumps(info | {"best_step": 0}))
    analysis = analyse(tmp_path)
    assert analysis["uninformative"] and analysis["step0_cells"] == {"step0": 60, "cells": 75}
    doc = render(tmp_path, analysis)
    assert "**Uninformative: no verdict.** Dev selection kept the untrained step-0 student in 60 of 75" in doc
    assert "- **uninformative, no verdict**: dev selection kept the untrained step-0 student in 60 of 75" in doc
