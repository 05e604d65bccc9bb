"""optical_lab.reports: transport plans of real sentence pairs, plots, the generated answer, `optical-lab figures`."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from optical_lab.data import load_ntrex  # noqa: E402
from optical_lab.experiments.size_curve import curve_table  # noqa: E402
from optical_lab.experiments.students import distilled_student, small_mode  # noqa: E402
from optical_lab.experiments.summary import summarize  # noqa: E402
from optical_lab.reports.alignment import alignment_plan, plan_from_views, token_view  # noqa: E402
from optical_lab.reports.answer import SummaryTables, answer_all, answer_language, answer_markdown, overall  # noqa: E402
from optical_lab.reports.notebook import short_pairs  # noqa: E402
from optical_lab.reports.plots import (  # noqa: E402
    plot_language_comparison,
    plot_loss_curve,
    plot_transport_plan,
    save_figure,
    top_alignments,
)


# ----------------------------------------------------------------------------- alignment
def test_plan_of_a_real_pair_sums_to_one_over_real_tokens(teacher):
    hau = load_ntrex("hau")
    a = alignment_plan(teacher, teacher, hau.english[0], hau.target[0], epsilon=0.05, n_iters=200)
    n, m = a.plan.shape
    assert (n, m) == (len(a.row_tokens), len(a.col_tokens))
    specials = set(teacher.tokenizer.all_special_tokens)
    assert not specials & set(a.row_tokens) and not specials & set(a.col_tokens)
    assert a.row_tokens == teacher.tokenizer.tokenize(hau.english[0])  # every real token, in order
    assert a.plan.min() >= 0 and a.plan.sum() == pytest.approx(1.0, abs=1e-9)
    assert np.allclose(a.plan.sum(1), 1 / n, atol=1e-6) and np.allclose(a.plan.sum(0), 1 / m, atol=1e-9)
    assert a.transport_cost == pytest.approx(float((a.plan * a.cost).sum()))
    assert a.english == hau.english[0] and a.foreign == hau.target[0]


def test_identical_sentences_align_on_the_diagonal(teacher):
    text = "The parliament voted on the new budget yesterday."
    a = alignment_plan(teacher, teacher, text, text, epsilon=0.01, n_iters=300)
    assert [(r, c) for r, c in a.row_argmax()] == [(t, t) for t in a.row_tokens]
    assert a.top(1)[0][0] == a.top(1)[0][1]


def test_epsilon_controls_sharpness(teacher):
    view_en, view_fo = (
        token_view(teacher, "Welsh AMs worried about their title"),
        token_view(teacher, "Welsh AMs ta damu game da sunansu"),
    )
    sharp = plan_from_views(view_en, view_fo, epsilon=0.01, n_iters=300)
    diffuse = plan_from_views(view_en, view_fo, epsilon=2.0, n_iters=300)
    assert sharp.sharpness() > diffuse.sharpness() + 0.1
    assert diffuse.sharpness() < 0.01  # nearly the uniform plan
    with pytest.raises(ValueError):
        plan_from_views(view_en, view_fo, epsilon=0.0)
    with pytest.raises(ValueError):
        token_view(teacher, "  ")


def test_short_pairs_are_legible(teacher):
    hau = load_ntrex("hau")
    lines = short_pairs(hau, set(hau.documents()[:10]), teacher.tokenizer)
    assert lines
    for i in lines:
        assert 6 <= len(teacher.tokenizer.tokenize(hau.english[i])) <= 14
        assert hau.doc_ids[i] in set(hau.documents()[:10])


def test_small_mode_switch(monkeypatch):
    monkeypatch.setenv("OPTICAL_LAB_SMALL", "1")
    assert small_mode()
    monkeypatch.setenv("OPTICAL_LAB_SMALL", "0")
    assert not small_mode()
    monkeypatch.delenv("OPTICAL_LAB_SMALL")
    assert not small_mode()


# ----------------------------------------------------------------------------- plots
def test_top_alignments():
    plan = np.array([[0.1, 0.4], [0.3, 0.2]])
    assert top_alignments(plan, ["a", "b"], ["x", "y"], k=2) == [("a", "y", 0.4), ("b", "x", 0.3)]
    assert [m for _, _, m in top_alignments(plan, ["a", "b"], ["x", "y"], k=10)] == [0.4, 0.3, 0.2, 0.1]
    assert top_alignments(plan, ["a", "b"], ["x", "y"], k=0) == []
    with pytest.raises(ValueError):
        top_alignments(plan, ["a"], ["x", "y"], k=1)


def test_heatmap_uses_tokens_as_labels():
    plan = np.full((2, 3), 1 / 6)
    ax = plot_transport_plan(plan, ["the", "cat"], ["pa", "##ka", "."], title="t")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["the", "cat"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["pa", "##ka", "."]
    plt.close(ax.figure)


def test_loss_curve_and_comparison_plots(tmp_path):
    log = (
        [{"step": 0, "event": "dev", "dev_mrr": 0.5}]
        + [{"step": s, "event": "train", "loss": 1 / s} for s in range(1, 6)]
        + [{"step": 5, "event": "dev", "dev_mrr": 0.6}]
    )
    ax = plot_loss_curve(log, loss_cols=["loss"])
    assert len(ax.lines) == 1 and list(ax.lines[0].get_xdata()) == [1, 2, 3, 4, 5]
    table = pd.DataFrame(
        {
            "lang": ["hau", "hau", "swa", "swa"],
            "method": ["optical", "translate-train"] * 2,
            "mean": [0.5, 0.6, 0.7, 0.4],
            "ci": [0.05, 0.04, 0.03, 0.02],
        }
    )
    ax2 = plot_language_comparison(
        table, metric="MRR@10", ci_col="ci", winners={"hau": "translate-train", "swa": "optical"}
    )
    heights = sorted(round(p.get_height(), 3) for p in ax2.patches)
    assert heights == [0.4, 0.5, 0.6, 0.7]
    assert sum(t.get_text() == "★" for t in ax2.texts) == 2
    paths = save_figure(ax2.figure, tmp_path, "cmp")
    assert [p.suffix for p in paths] == [".png", ".svg"] and all(p.stat().st_size > 1000 for p in paths)
    plt.close("all")


# ----------------------------------------------------------------------------- answer
EFFECTS = {  # lang -> method -> mean MRR; hau: augmentation clearly better; swa: optical clearly better
    "hau": {
        "zero-shot": 0.30,
        "sentence-kd": 0.40,
        "translate-train": 0.62,
        "code-switch": 0.45,
        "optical": 0.50,
        "optical+aug": 0.60,
    },
    "swa": {"zero-shot": 0.40, "translate-train": 0.60, "code-switch": 0.55, "optical": 0.72},
    "yor": {"zero-shot": 0.20, "translate-train": 0.30, "optical": 0.30},
    "fra": {"zero-shot": 0.80, "optical": 0.82},
}


def synthetic_per_query(effects=EFFECTS, n_queries: int = 50, folds: int = 2, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for lang, means in effects.items():
        for fold in range(folds):
            for q in range(n_queries):
                base = rng.normal(0, 0.15)
                for method, mu in means.items():
                    noise = 0.0 if lang == "yor" else rng.normal(0, 0.03)  # yor: a near tie
                    value = float(np.clip(mu + base + noise, 0, 1))
                    rows.append(
                        {
                            "lang": lang,
                            "method": method,
                            "fold": fold,
                            "seed": 0,
                            "task": "clir",
                            "qid": f"d{q}",
                            "MRR@10": value,
                            "nDCG@10": value,
                            "MAP": value,
                        }
                    )
                    rows.append(
                        {
                            "lang": lang,
                            "method": method,
                            "fold": fold,
                            "seed": 0,
                            "task": "sentence",
                            "qid": f"s{q}",
                            "acc@1": float(value > 0.5),
                        }
                    )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def tables():
    return SummaryTables.from_summary(summarize(synthetic_per_query(), n_resamples=2000, langs=list(EFFECTS)))


def test_answer_says_when_optical_loses(tables):
    hau = answer_language(tables, "hau")
    assert hau.rival == "translate-train" and hau.outcome == "augmentation wins" and hau.optical_loses
    assert hau.significant and hau.p_holm < 0.05
    text = hau.text
    assert text.startswith("hau: OPTICAL MRR@10 0.") and " vs translate-train (oracle) 0." in text  # human translations
    assert "translate-train wins" in text and "OPTICAL loses" in text and "significant (Holm p" in text
    assert "not significant" not in text
    # numbers in the sentence are the table's
    means = tables.means[(tables.means.lang == "hau") & (tables.means.metric == "MRR@10")].set_index("method")["mean"]
    assert f"OPTICAL MRR@10 {means['optical']:.3f}" in text
    assert f"translate-train (oracle) {means['translate-train']:.3f}" in text
    assert f"Zero-shot {means['zero-shot']:.3f}" in text


def test_answer_when_optical_wins_ties_or_is_alone(tables):
    swa = answer_language(tables, "swa")
    assert swa.outcome == "optical wins" and swa.significant and "OPTICAL wins by" in swa.text
    yor = answer_language(tables, "yor")
    assert yor.outcome == "tie" and "tie" in yor.text and not yor.optical_loses
    fra = answer_language(tables, "fra")
    assert fra.outcome == "no comparison" and "no augmentation method was run" in fra.text


def test_answer_names_a_better_third_method():
    effects = {"hau": {"translate-train": 0.5, "optical": 0.45, "optical+aug": 0.7}}
    t = SummaryTables.from_summary(summarize(synthetic_per_query(effects), n_resamples=2000))
    hau = answer_language(t, "hau")
    assert hau.best == "optical+aug" and "Best overall is optical+aug" in hau.text


def test_overall_answer_counts_languages(tables):
    answers = answer_all(tables)
    text = overall(answers)
    assert "Low-resource languages (3)" in text  # hau, swa, yor (fra has no augmentation run)
    assert "loses in 1 (hau; 1 significant)" in text and "OPTICAL wins in 1 (swa; 1 significant)" in text
    assert text.endswith(
        "Mixed: OPTICAL is significantly better in 1 and significantly worse in 1 of 3 low-resource languages."
    )
    markdown = answer_markdown(tables)
    assert markdown.startswith("- **hau** (Hausa): OPTICAL MRR@10") and markdown.rstrip().endswith(text)
    only_losses = [a for a in answers if a.lang == "hau"]
    assert "Data augmentation is significantly better" in overall(only_losses)


# ----------------------------------------------------------------------------- figures command
def write_synthetic_results(folder, with_logs: bool = True):
    per_query = synthetic_per_query()
    summarize(per_query, n_resamples=500, langs=list(EFFECTS)).write(folder)
    curve_rows = []
    for size, shift in (("0", -0.2), ("100", -0.1), ("300", 0.0)):
        part = per_query[
            (per_query.lang.isin(["hau", "swa"])) & per_query.method.isin(["optical", "translate-train"])
        ].copy()
        if size == "0":
            part = per_query[(per_query.lang.isin(["hau", "swa"])) & (per_query.method == "zero-shot")].copy()
        for column in ("MRR@10", "nDCG@10", "MAP"):
            part[column] = (part[column] + shift).clip(0, 1)
        part["size"], part["train_pairs"] = size, int(size)
        curve_rows.append(part)
    (folder / "size_curve").mkdir()
    curve_table(pd.concat(curve_rows), n_resamples=200).to_csv(folder / "size_curve" / "size_curve.csv", index=False)
    if with_logs:
        for method in ("optical", "translate-train"):
            cell = folder / "runs" / "hau" / method / "fold0-seed0"
            cell.mkdir(parents=True)
            lines = [{"step": 0, "event": "dev", "dev_mrr": 0.5}] + [
                {"step": s, "event": "train", "loss": 1.0 / s, "lr": 1e-5} for s in range(1, 9)
            ]
            (cell / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return folder


def test_figures_command_writes_png_and_svg(tmp_path, capsys):
    from optical_lab.cli import main

    results = write_synthetic_results(tmp_path / "results")
    out = tmp_path / "figures"
    assert main(["figures", "--results", str(results), "--out", str(out), "--no-plans"]) == 0
    for name in ("comparison_mrr10", "comparison_acc1", "size_curve", "loss_curves"):
        for ext in ("png", "svg"):
            path = out / f"{name}.{ext}"
            assert path.exists() and path.stat().st_size > 2000, path
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert "<svg" in (out / f"{name}.svg").read_text()[:2000]
    answer = (out / "answer.md").read_text()
    assert "OPTICAL loses" in answer and "**hau**" in answer
    assert "4 figure(s)" in capsys.readouterr().out


def test_figures_command_explains_missing_results(tmp_path, capsys):
    from optical_lab.cli import main

    assert main(["figures", "--results", str(tmp_path / "nothing"), "--out", str(tmp_path / "f")]) == 1
    assert "optical-lab compare" in capsys.readouterr().err


def test_transport_plan_figures_with_a_distilled_student(tmp_path, monkeypatch, teacher):
    """The plan figures on real text; the 'after' student is trained (tiny config) then cached."""
    from optical_lab.methods import preset
    from optical_lab.reports.figures import generate

    monkeypatch.setenv("OPTICAL_LAB_CACHE", str(tmp_path / "cache"))
    results = tmp_path / "results"
    results.mkdir()
    config = preset("tiny", lr=1e-3, steps=2, select_initial=False)  # a student that surely moved
    (results / "config.json").write_text(json.dumps({"folds": 2, "model": "minilm", "train": config.to_dict()}))
    written = generate(results, tmp_path / "figs", lang="hau", teacher=teacher, log=lambda *_: None)
    names = [w.name for w in written]
    assert names == ["transport_plan_epsilon", "transport_plan_before_after"]
    assert all(p.exists() for w in written for p in w.paths)
    # the student is cached: a second run loads it instead of training, and it differs from the teacher
    run = distilled_student(teacher, "hau", "optical", config)
    assert (run.folder / "student.pt").exists() and run.folder.is_relative_to(tmp_path / "cache")
    again = distilled_student(teacher, "hau", "optical", config)
    a, b = run.student.state_dict(), again.student.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], v) for k, v in teacher.state_dict().items())
    assert run.log["event"].eq("train").sum() == 2
