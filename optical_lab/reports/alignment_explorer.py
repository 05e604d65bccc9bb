"""The alignment explorer: the transport plan of one sentence pair, live, as epsilon, iterations or the pair change.

Pick a language and an NTREX sentence pair (or type your own), slide epsilon and the number of Sinkhorn
iterations: the transport-plan heatmap and the table of strongest token pairs update. "before" aligns with the
untrained student (= the teacher), "after" with the distilled student. Token embeddings are cached per
(encoder, sentence), so moving a slider only re-runs Sinkhorn. Shared helpers:
:mod:`optical_lab.reports.widget_common`; the package's entry point: :mod:`optical_lab.reports.widgets`.
"""

from __future__ import annotations

import html
from typing import Callable, Mapping, Sequence

import matplotlib.pyplot as plt

from ..data.languages import NAMES
from ..data.ntrex import NtrexCorpus, load_ntrex
from ..models.encoder import Encoder
from .alignment import DEFAULT_EPSILON, DEFAULT_ITERS, Alignment, TokenView, plan_from_views, token_view
from .plots import alignments_table, plot_transport_plan
from .widget_common import (
    ExplorerBase,
    StudentSource,
    W,
    _preview,
    _reports_errors,
    _student_for,
    _student_name,
    clip_text,
    figure_png,
    message_html,
    no_student_note,
)

CUSTOM = -1  # value of the pair dropdown when the text boxes were edited by hand


class AlignmentExplorer(ExplorerBase):
    """Transport plan of one sentence pair, recomputed as epsilon / iterations / the pair change.

    Parameters
    ----------
    teacher : the frozen English encoder (rows of the plan).
    students : lang -> distilled student (a dict or a function); languages without one offer only
        "before" (the untrained student, i.e. the teacher itself).
    langs : languages offered in the dropdown.
    sentence_ids : NTREX line numbers offered as pairs (default: the first ``n_pairs`` lines of
        ``doc_ids`` when given, else of the corpus). Prefer held-out (evaluation) documents.
    student_labels : lang -> what the page calls that language's student (e.g. the folder it was
        loaded from); default the encoder's name.
    """

    def __init__(
        self,
        teacher: Encoder,
        students: StudentSource = None,
        langs: Sequence[str] = ("hau", "swa"),
        sentence_ids: Sequence[int] | None = None,
        doc_ids: set[str] | None = None,
        n_pairs: int = 25,
        epsilon: float = DEFAULT_EPSILON,
        n_iters: int = DEFAULT_ITERS,
        top_k: int = 8,
        corpus_loader: Callable[[str], NtrexCorpus] = load_ntrex,
        max_tokens: int = 40,
        dpi: int = 80,
        auto_update: bool = True,
        student_labels: Mapping[str, str] | None = None,
    ) -> None:
        self._hold(teacher, students, langs, corpus_loader, doc_ids, student_labels)
        self.n_pairs = n_pairs
        self._sentence_ids = list(sentence_ids) if sentence_ids is not None else None
        self.max_tokens = max_tokens
        self.dpi = dpi
        self._views: dict[tuple[int, str], TokenView] = {}
        self.alignment: Alignment | None = None
        self._filling = False

        self.pair = W.Dropdown(description="pair", layout=W.Layout(width="95%"))
        self.english = W.Textarea(
            description="English", layout=W.Layout(width="95%", height="3.2em"), continuous_update=False
        )
        self.foreign = W.Textarea(
            description="foreign", layout=W.Layout(width="95%", height="3.2em"), continuous_update=False
        )
        self.stage = W.ToggleButtons(
            options=["before", "after"],
            value="after",
            description="student",
            tooltips=["untrained student (= teacher)", "distilled student"],
        )
        self.epsilon = W.FloatLogSlider(
            value=epsilon,
            base=10,
            min=-3,
            max=0.5,
            step=0.05,
            description="ε",
            readout_format=".3f",
            continuous_update=False,
        )
        self.n_iters = W.IntSlider(
            value=n_iters, min=1, max=500, step=1, description="iterations", continuous_update=False
        )
        self.top_k = W.IntSlider(value=top_k, min=1, max=30, description="top pairs", continuous_update=False)
        self.image = W.Image(format="png", layout=W.Layout(max_width="720px"))
        self.table = W.HTML()
        self.status = W.HTML()
        self.models = W.HTML()  # which encoder gives the rows and which the columns
        self.message = W.HTML()  # errors and notes, above the heatmap where they are seen
        self.widget = W.VBox(
            [
                self.models,
                W.HBox([self.lang, self.stage]),
                self.pair,
                self.english,
                self.foreign,
                W.HBox([self.epsilon, self.n_iters, self.top_k]),
                self.message,
                W.HBox([self.image, W.VBox([self.table, self.status])]),
            ]
        )
        for name in (
            "widget",
            "models",
            "lang",
            "stage",
            "pair",
            "english",
            "foreign",
            "epsilon",
            "n_iters",
            "top_k",
            "message",
            "image",
            "table",
            "status",
        ):
            getattr(self, name).add_class(f"optical-align-{name.replace('_', '-')}")

        self.lang.observe(self._on_lang, "value")
        self.pair.observe(self._on_pair, "value")
        for w in (self.english, self.foreign):
            w.observe(self._on_text, "value")
        for w in (self.stage, self.epsilon, self.n_iters, self.top_k):
            w.observe(self._on_setting, "value")
        self._fill_pairs()
        if auto_update:
            self.update()

    # ------------------------------------------------------------------ state -> choices
    def sentence_ids(self, lang: str) -> list[int]:
        if self._sentence_ids is not None:
            return self._sentence_ids
        corpus = self.corpus(lang)
        keep = [i for i, d in enumerate(corpus.doc_ids) if self.doc_ids is None or d in self.doc_ids]
        return keep[: self.n_pairs]

    def student(self) -> Encoder:
        """The encoder for the columns: the distilled student ("after") or the teacher ("before")."""
        trained = _student_for(self.students, self.lang.value)
        return trained if (self.stage.value == "after" and trained is not None) else self.teacher

    def _models_html(self) -> str:
        lang = self.lang.value
        trained = _student_for(self.students, lang)
        if self.stage.value == "after" and trained is not None:
            cols = f"distilled student <b>{html.escape(_student_name(trained, self.student_labels, lang))}</b>"
        else:
            cols = f"untrained student = the teacher <b>{html.escape(self.teacher.name or 'teacher')}</b>"
        return (
            f"<small>rows: English tokens, teacher <b>{html.escape(self.teacher.name or 'teacher')}</b> · "
            f"columns: {html.escape(NAMES.get(lang, lang))} tokens, {cols}</small>"
        )

    def _fill_pairs(self) -> None:
        corpus = self.corpus(self.lang.value)
        options = [(f"#{i + 1}: {_preview(corpus.english[i])}", i) for i in self.sentence_ids(self.lang.value)]
        options.append(("(your own sentences: edit the boxes below)", CUSTOM))
        has_student = _student_for(self.students, self.lang.value) is not None
        self._filling = True
        try:
            self.stage.options = ["before", "after"] if has_student else ["before"]
            self.stage.value = "after" if has_student else "before"
            self.pair.options = options
            self.pair.value = options[0][1]
            self._fill_texts()
        finally:
            self._filling = False

    def _fill_texts(self) -> None:
        if self.pair.value is None or self.pair.value == CUSTOM:
            return
        corpus = self.corpus(self.lang.value)
        was = self._filling
        self._filling = True
        try:
            self.english.value = corpus.english[self.pair.value]
            self.foreign.value = corpus.target[self.pair.value]
        finally:
            self._filling = was

    # ------------------------------------------------------------------ callbacks
    @_reports_errors
    def _on_lang(self, change) -> None:
        self._fill_pairs()
        self.update()

    @_reports_errors
    def _on_pair(self, change) -> None:
        if self._filling:
            return
        self._fill_texts()
        self.update()

    @_reports_errors
    def _on_text(self, change) -> None:
        if self._filling:
            return
        corpus = self.corpus(self.lang.value)
        i = self.pair.value
        if i not in (None, CUSTOM) and (self.english.value, self.foreign.value) != (
            corpus.english[i],
            corpus.target[i],
        ):
            self._filling = True
            try:
                self.pair.value = CUSTOM
            finally:
                self._filling = False
        self.update()

    def set_pair(self, english: str, foreign: str) -> Alignment | None:
        """Align your own sentences (what typing in the two boxes does)."""
        self._filling = True
        try:
            self.pair.value = CUSTOM
            self.english.value = english
            self.foreign.value = foreign
        finally:
            self._filling = False
        return self.update()

    # ------------------------------------------------------------------ pure computation
    def _view(self, encoder: Encoder, text: str, what: str) -> TokenView:
        """Token embeddings of ``text`` (cached), at most ``max_tokens`` of them; a long text adds a note."""
        text, note = clip_text(text, encoder.tokenizer, self.max_tokens, what)
        if note:
            self.notes.append(note + " The heatmap stays legible with short sentences.")
        key = (id(encoder), text)
        if key not in self._views:
            if len(self._views) > 512:  # a long typing session must not grow memory without bound
                self._views.clear()
            view = token_view(encoder, text)
            if len(view) > self.max_tokens:  # keep the heatmap legible
                view = TokenView(
                    view.text, view.tokens[: self.max_tokens], view.embeddings[: self.max_tokens], view.encoder_name
                )
            self._views[key] = view
        return self._views[key]

    def compute(self) -> Alignment:
        """The plan for the current widget values (no drawing); long texts leave notes in ``self.notes``."""
        self.notes = []
        rows = self._view(self.teacher, self.english.value, "English")
        cols = self._view(self.student(), self.foreign.value, NAMES.get(self.lang.value, self.lang.value))
        return plan_from_views(rows, cols, epsilon=self.epsilon.value, n_iters=self.n_iters.value)

    def render(self, alignment: Alignment) -> bytes:
        n, m = alignment.shape
        fig, ax = plt.subplots(figsize=(min(2.2 + 0.3 * m, 11), min(1.6 + 0.28 * n, 9)), layout="constrained")
        plot_transport_plan(
            alignment.plan,
            alignment.row_tokens,
            alignment.col_tokens,
            ax=ax,
            col_label=f"{self.stage.value} student tokens ({self.lang.value})",
            title=f"ε={alignment.epsilon:.3g}, {alignment.n_iters} it., ⟨P,C⟩={alignment.transport_cost:.3f}, "
            f"sharpness={alignment.sharpness():.2f}",
        )
        return figure_png(fig, self.dpi)

    @_reports_errors
    def update(self) -> Alignment | None:
        """Recompute the plan and refresh the heatmap, the table and the status line.

        Bad input (an empty box, bad parameters) raises ValueError inside; :func:`_reports_errors`
        turns it into the red message line and leaves ``self.alignment`` at the last good plan.
        """
        if self._filling:
            return self.alignment
        self.models.value = self._models_html()
        has_student = _student_for(self.students, self.lang.value) is not None
        alignment = self.compute()
        self.error = None
        notes = self.notes + ([] if has_student else [no_student_note(self.lang.value)])
        self.message.value = "".join(message_html(n, "note") for n in notes)
        self.alignment = alignment
        self.image.value = self.render(alignment)
        table = alignments_table(alignment.top(self.top_k.value), "English token", f"{self.lang.value} token")
        self.table.value = table.to_html(float_format=lambda v: f"{v:.4f}", border=0)
        converged = "converged" if alignment.extra.get("converged") else "not converged (raise iterations)"
        self.status.value = (
            f"<small>{alignment.shape[0]}×{alignment.shape[1]} tokens, "
            f"marginal error {alignment.extra.get('marginal_error', float('nan')):.1e} ({converged})</small>"
        )
        return alignment

    @property
    def top_pairs(self) -> list[tuple[str, str, float]]:
        return self.alignment.top(self.top_k.value) if self.alignment else []

    def _ipython_display_(self) -> None:  # display(explorer) shows the widget
        from IPython.display import display

        display(self.widget)
