"""Summary statistics, Holm correction and winner logic on synthetic per-query tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from optical_lab.evaluation.significance import holm, mean_ci
from optical_lab.experiments.summary import summarize


def synthetic(effects: dict[str, float], langs=("hau",), folds=2, seeds=2, n=40, noise=0.05, seed=0) -> pd.DataFrame:
    """Per-query MRR@10 (clir) and acc@1 (sentence) = a query difficulty + the method's effect + noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for lang in langs:
        for fold in range(folds):
            for s in range(seeds):
                base = rng.uniform(0.2, 0.6, size=n)
                for method, effect in effects.items():
                    values = np.clip(base + effect + rng.normal(0, noise, size=n), 0, 1)
                    for q, v in enumerate(values):
                        rows.append(
                            {
                                "lang": lang,
                                "method": method,
                                "fold": fold,
                                "seed": s,
                                "task": "clir",
                                "qid": f"q{q}",
                                "MRR@10": v,
                                "nDCG@10": v,
                                "MAP": v,
                            }
                        )
                        rows.append(
                            {
                                "lang": lang,
                                "method": method,
                                "fold": fold,
                                "seed": s,
                                "task": "sentence",
                                "qid": f"s{q}",
                                "acc@1": float(v > 0.5),
                            }
                        )
    return pd.DataFrame(rows)


def test_optical_wins_significantly():
    table = synthetic({"zero-shot": 0.0, "sentence-kd": 0.05, "optical": 0.15})
    summary = summarize(table)
    assert summary.primary == ("clir", "MRR@10")
    row = summary.winners_table().loc["hau"]
    assert row.winner == "optical" and bool(row.significant)
    assert "significantly better than every other method" in row.verdict
    means = summary.means.set_index(["task", "metric", "method"])
    # CI over the 40 queries, each averaged over its 2 folds x 2 seeds (a query counts once)
    values = table[(table.task == "clir") & (table.method == "optical")].groupby("qid")["MRR@10"].mean()
    mean, ci = mean_ci(values)
    assert means.loc[("clir", "MRR@10", "optical"), "n"] == 40
    assert np.isclose(means.loc[("clir", "MRR@10", "optical"), "mean"], mean)
    assert np.isclose(means.loc[("clir", "MRR@10", "optical"), "ci"], ci)


def test_table_says_when_optical_loses():
    table = synthetic({"zero-shot": 0.0, "translate-train": 0.2, "optical": 0.05}, langs=("hau", "swa"))
    summary = summarize(table, langs=["swa", "hau"])
    winners = summary.winners_table()
    assert list(winners.index) == ["swa", "hau"]
    for lang in ("hau", "swa"):
        row = winners.loc[lang]
        assert row.winner == "translate-train" and bool(row.significant)
        assert row.verdict.startswith("optical LOSES: translate-train is better (significantly")
    markdown = summary.to_markdown()
    assert "optical LOSES" in markdown and "translate-train" in markdown
    assert "MRR@10 (clir)" in markdown and "acc@1 (sentence)" in markdown


def test_no_difference_is_not_significant_and_ties_are_not_losses():
    table = synthetic({"zero-shot": 0.0, "optical": 0.0}, noise=0.0)
    row = summarize(table).winners_table().loc["hau"]
    assert row.winner == "optical" and not row.significant and "ties" in row.verdict
    assert summarize(table).winners_by_metric().loc["hau", "clir:MRR@10"] == "**optical** (tie)"
    noisy = synthetic({"sentence-kd": 0.0, "optical": 0.001}, noise=0.05, n=10, folds=1, seeds=1)
    row = summarize(noisy).winners_table().loc["hau"]
    assert not row.significant


def test_holm_over_methods_and_pairing_by_query():
    table = synthetic({"zero-shot": -0.02, "sentence-kd": 0.01, "code-switch": 0.03, "optical": 0.0}, n=30)
    summary = summarize(table)
    tests = summary.tests[(summary.tests.task == "clir") & (summary.tests.metric == "MRR@10")]
    assert list(tests.method) == ["zero-shot", "sentence-kd", "code-switch"]
    assert np.allclose(tests.p_holm, holm(tests.p.tolist()))
    assert (tests.p_holm >= tests.p).all()
    # shuffling the rows does not change anything: queries are matched by qid
    shuffled = summarize(table.sample(frac=1.0, random_state=1)).tests
    assert np.allclose(
        shuffled.sort_values(["task", "metric", "method"]).p, summary.tests.sort_values(["task", "metric", "method"]).p
    )


def test_without_optical_only_the_winner_is_named():
    row = summarize(synthetic({"zero-shot": 0.0, "sentence-kd": 0.1})).winners_table().loc["hau"]
    assert row.winner == "sentence-kd" and "not run" in row.verdict


def test_time_log_parsing(tmp_path):
    from optical_lab.experiments.results_doc import mean_load, parse_time_log

    log = tmp_path / "time.txt"
    log.write_text(
        '\tCommand being timed: "optical-lab compare --langs hau"\n\tUser time (seconds): 250.5\n'
        "\tSystem time (seconds): 9.5\n\tPercent of CPU this job got: 61%\n"
        "\tElapsed (wall clock) time (h:mm:ss or m:ss): 6:59.68\n"
        "\tMaximum resident set size (kbytes): 2503356\n\tExit status: 0\n"
    )
    parsed = parse_time_log(log)
    assert parsed == {
        "command": "optical-lab compare --langs hau",
        "user_s": "250.5",
        "system_s": "9.5",
        "cpu": "61%",
        "wall": "6:59.68",
        "max_rss_kb": "2503356",
        "exit": "0",
    }
    load = tmp_path / "load.txt"
    load.write_text("08:00:00 2.0 1.0 1.0 1/100 5\n08:00:30 4.0 1.0 1.0 1/100 6\n")
    assert mean_load(load) == 3.0


def test_rerun_differences_pairs_size_curve_all_cells_with_comparison_cells(tmp_path):
    import json

    from optical_lab.experiments.results_doc import rerun_differences

    def cell(path, mrr, step, threads):
        path.mkdir(parents=True)
        (path / "done.json").write_text(
            json.dumps({"metrics": {"clir": {"MRR@10": mrr}}, "best_step": step, "threads": threads})
        )

    cell(tmp_path / "runs/hau/optical/fold0-seed0", 0.60, 8, 2)
    cell(tmp_path / "size_curve/runs/hau/optical@all/fold0-seed0", 0.62, 16, 1)
    cell(tmp_path / "size_curve/runs/hau/optical@n100/fold0-seed0", 0.10, 8, 1)  # another size: not a rerun
    cell(tmp_path / "size_curve/runs/swa/optical@all/fold0-seed0", 0.50, 8, 1)  # no comparison cell: skipped
    diffs = rerun_differences(tmp_path)
    assert len(diffs) == 1 and diffs.loc[0, "method"] == "optical"
    assert abs(diffs.loc[0, "abs_diff"] - 0.02) < 1e-12 and not diffs.loc[0, "same_best_step"]


def test_report_counts_cells_where_selection_kept_the_untrained_student(tmp_path):
    import json

    from optical_lab.experiments.results_doc import _selection_lines

    for i, (method, step) in enumerate([("optical", 0), ("optical", 16), ("sentence-kd", 8), ("zero-shot", 0)]):
        cell = tmp_path / "runs" / "hau" / method / f"fold{i}-seed0"
        cell.mkdir(parents=True)
        (cell / "done.json").write_text(json.dumps({"method": method, "best_step": step}))
    (line,) = _selection_lines(tmp_path)
    assert "sentence-kd 0/1, optical 1/2 cells" in line and "zero-shot 1/" not in line


def test_dev_trajectories_average_the_selection_signal_per_method_and_step(tmp_path):
    import json

    from optical_lab.experiments.results_doc import dev_trajectories

    histories = {
        ("hau", "optical"): [[0, 0.5], [8, 0.7]],
        ("swa", "optical"): [[0, 0.3], [8, 0.5]],
        ("hau", "translate-train"): [[0, 0.5], [8, 0.2]],
    }
    for (lang, method), history in histories.items():
        cell = tmp_path / "runs" / lang / method / "fold0-seed0"
        cell.mkdir(parents=True)
        (cell / "train_summary.json").write_text(json.dumps({"dev_history": history}))
    table = dev_trajectories(tmp_path)
    assert list(table.index) == ["translate-train", "optical"]  # the registry's method order
    assert table.loc["optical", 8] == 0.6 and table.loc["translate-train", 8] == 0.2
