"""The ipywidgets explorers, driven from Python the way a researcher drives them in JupyterLab:
set a widget's value, check that the plan / image / table / retrieved documents changed with it."""

from __future__ import annotations

import pytest
import torch

from optical_lab.data import load_ntrex
from optical_lab.reports.widgets import CUSTOM, AlignmentExplorer, RetrievalExplorer


@pytest.fixture(scope="module")
def student(teacher):
    """A student that differs from the teacher (stands in for a distilled one: same tokenizer, other weights)."""
    torch.manual_seed(1)
    s = teacher.copy()
    with torch.no_grad():
        layer = s.model.encoder.layer[-1].output.dense
        layer.weight.add_(0.05 * torch.randn_like(layer.weight))
    return s


@pytest.fixture(scope="module")
def explorer(teacher, student):
    return AlignmentExplorer(teacher, {"hau": student}, langs=("hau", "swa"), n_pairs=4, epsilon=0.05, n_iters=100)


def test_alignment_explorer_starts_on_a_real_pair(explorer):
    hau = load_ntrex("hau")
    assert explorer.english.value == hau.english[0] and explorer.foreign.value == hau.target[0]
    a = explorer.alignment
    assert a is not None and a.english == hau.english[0] and a.foreign == hau.target[0]
    assert a.plan.sum() == pytest.approx(1.0, abs=1e-6)
    assert explorer.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<table" in explorer.table.value
    assert explorer.stage.options == ("before", "after") and explorer.stage.value == "after"


def test_epsilon_slider_changes_plan_sharpness(explorer):
    explorer.epsilon.value = 0.01
    sharp, image = explorer.alignment, explorer.image.value
    explorer.epsilon.value = 1.0
    diffuse = explorer.alignment
    assert sharp.epsilon == pytest.approx(0.01) and diffuse.epsilon == pytest.approx(1.0)
    assert sharp.sharpness() > diffuse.sharpness() + 0.05
    assert explorer.image.value != image
    explorer.epsilon.value = 0.05


def test_iterations_slider_reaches_the_solver(explorer):
    explorer.n_iters.value = 1
    assert explorer.alignment.n_iters == 1
    one = explorer.alignment.extra["marginal_error"]
    explorer.n_iters.value = 200
    assert explorer.alignment.n_iters == 200
    assert explorer.alignment.extra["marginal_error"] <= one


def test_top_k_slider_changes_table(explorer):
    explorer.top_k.value = 3
    assert len(explorer.top_pairs) == 3 and explorer.table.value.count("</tr>") == 1 + 3
    explorer.top_k.value = 6
    assert len(explorer.top_pairs) == 6


def test_pair_and_language_dropdowns(explorer):
    hau, swa = load_ntrex("hau"), load_ntrex("swa")
    explorer.pair.value = 2
    assert explorer.english.value == hau.english[2] and explorer.alignment.foreign == hau.target[2]
    explorer.lang.value = "swa"
    assert explorer.foreign.value == swa.target[0] and explorer.alignment.foreign == swa.target[0]
    assert explorer.stage.options == ("before",)  # no distilled student for swa
    explorer.lang.value = "hau"
    assert explorer.stage.value == "after"


def test_before_after_toggle_changes_student(explorer, teacher, student):
    explorer.pair.value = 0
    explorer.stage.value = "before"
    assert explorer.student() is teacher
    before = explorer.alignment.plan.copy()
    explorer.stage.value = "after"
    assert explorer.student() is student
    assert explorer.alignment.plan.shape == before.shape
    assert abs(explorer.alignment.plan - before).max() > 1e-6


def test_typing_your_own_sentences(explorer):
    a = explorer.set_pair("The cat sleeps.", "Paka analala.")
    assert explorer.pair.value == CUSTOM
    assert a.row_tokens == ["the", "cat", "sleeps", "."]
    assert a.plan.shape == (4, len(a.col_tokens))
    explorer.english.value = "The dog sleeps."  # typing in the box recomputes
    assert explorer.alignment.row_tokens[1] == "dog"
    explorer.english.value = "   "  # an empty box is reported, not raised
    assert explorer.error and "empty" in explorer.message.value
    explorer.pair.value = 1
    assert explorer.error is None and explorer.alignment.english == load_ntrex("hau").english[1]


def test_retrieval_explorer_teacher_vs_student(teacher, student):
    eng = load_ntrex("eng")
    docs = set(eng.documents()[:8])
    r = RetrievalExplorer(teacher, {"eng": student}, langs=("eng",), doc_ids=docs, k=3)
    assert r.output.value.startswith("<i>")  # nothing typed yet
    qid = r.examples.options[2][1]
    r.examples.value = qid  # picking an example fills the query box and searches
    assert r.query.value == eng.english[eng.doc_ids.index(qid)]
    assert set(r.results) == {"teacher (zero-shot)", "student (distilled)"}
    assert all(len(hits) == 3 for hits in r.results.values())
    assert r.gold == qid and r.rank_of_gold("teacher (zero-shot)") == 1  # English: the teacher finds it
    assert "✔" in r.output.value
    r.k.value = 5
    assert all(len(hits) == 5 for hits in r.results.values())
    r.query.value = "a completely unrelated query about volcanoes"
    assert r.gold is None and len(r.results["teacher (zero-shot)"]) == 5
    assert {d for d, _, _ in r.results["teacher (zero-shot)"]} <= docs


def test_retrieval_explorer_language_switch(teacher):
    r = RetrievalExplorer(teacher, None, langs=("eng", "hau"), max_docs=5, k=2)
    r.query.value = "government"
    eng_hits = r.results["teacher (zero-shot)"]
    r.lang.value = "hau"
    hau_hits = r.results["teacher (zero-shot)"]
    assert set(r.results) == {"teacher (zero-shot)"}  # no student given
    assert [h[2] for h in eng_hits] != [h[2] for h in hau_hits]  # documents now in Hausa
    doc_id, _, snippet = hau_hits[0]
    assert r.collection("hau").documents[doc_id].startswith(snippet.rstrip("…"))


# --------------------------------------------------------------------------- bad input: a message, never a traceback
def test_long_paste_is_cut_with_a_visible_note(explorer):
    explorer.set_pair(" ".join(["farmers"] * 2000), "Paka analala.")
    assert explorer.error is None and explorer.alignment.shape[0] == explorer.max_tokens
    assert "English: 2,000 tokens, only the first 40 used" in explorer.message.value
    explorer.set_pair("x" * 30_000, "Paka analala.")  # beyond MAX_CHARS: cut before tokenizing
    assert "30,000 characters pasted" in explorer.message.value and explorer.error is None
    explorer.set_pair("The cat sleeps.", "Paka analala.")
    assert explorer.message.value == ""  # a fine input clears the note


def test_language_without_student_says_so(explorer):
    explorer.lang.value = "swa"
    assert (
        "No saved student for Swahili (swa)" in explorer.message.value
        and "--student swa=PATH" in explorer.message.value
    )
    assert "untrained student = the teacher" in explorer.models.value
    explorer.lang.value = "hau"
    assert "No saved student" not in explorer.message.value and "distilled student" in explorer.models.value


def test_a_failing_callback_shows_a_message_instead_of_raising(teacher, student):
    def broken_loader(lang):
        if lang == "swa":
            raise OSError("disk on fire")
        return load_ntrex(lang)

    a = AlignmentExplorer(teacher, {"hau": student}, langs=("hau", "swa"), n_pairs=2, corpus_loader=broken_loader)
    a.lang.value = "swa"  # the observer must not raise into the kernel
    assert (
        a.error == "OSError: disk on fire" and "optical-error" in a.message.value and "disk on fire" in a.message.value
    )


def test_retrieval_explorer_notes(teacher, student):
    r = RetrievalExplorer(
        teacher, {"eng": student}, langs=("eng", "hau"), max_docs=5, k=2, student_labels={"eng": "~/s"}
    )
    r.query.value = " ".join(["farm"] * 2000)
    assert "query: 2,000 tokens, only the first 128 used" in r.message.value and len(r.results) == 2
    assert "student (distilled): ~/s" in r.output.value and "teacher (zero-shot): minilm" in r.output.value
    r.lang.value = "hau"
    assert "No saved student for Hausa (hau)" in r.message.value and set(r.results) == {"teacher (zero-shot)"}
