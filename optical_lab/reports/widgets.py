"""ipywidgets explorers for JupyterLab (``notebooks/04_explorer.ipynb``).

Each explorer is a class whose widgets are attributes and whose callbacks are plain methods, so
a test (or a script) drives it exactly as a researcher would: set ``explorer.epsilon.value`` and
read ``explorer.alignment`` / ``explorer.image.value`` / ``explorer.results`` afterwards.

* :class:`AlignmentExplorer` — pick a language and an NTREX sentence pair (or type your own),
  slide epsilon and the number of Sinkhorn iterations: the transport-plan heatmap and the table
  of strongest token pairs update. "before" aligns with the untrained student (= the teacher),
  "after" with the distilled student.
* :class:`RetrievalExplorer` — type an English query (or pick an NTREX known-item query), pick a
  language: the top documents retrieved by the teacher (zero-shot) and by the student appear
  side by side, the gold document marked when the query is a known-item query.

Heavy work is cached: token embeddings per (encoder, sentence), document embeddings per
(encoder, language), so moving a slider only re-runs Sinkhorn or a matrix product.
"""
from __future__ import annotations

import html
import io
from typing import Callable, Mapping, Sequence

import ipywidgets as W
import matplotlib.pyplot as plt
import torch

from ..data.collections import known_item_collection
from ..data.languages import NAMES
from ..data.ntrex import NtrexCorpus, load_ntrex
from ..models.encoder import Encoder
from .alignment import DEFAULT_EPSILON, DEFAULT_ITERS, Alignment, TokenView, plan_from_views, token_view
from .plots import alignments_table, plot_transport_plan

StudentSource = Mapping[str, Encoder] | Callable[[str], Encoder | None] | None
CUSTOM = -1  # value of the pair dropdown when the text boxes were edited by hand


def _student_for(students: StudentSource, lang: str) -> Encoder | None:
    if students is None:
        return None
    if callable(students) and not isinstance(students, Mapping):
        return students(lang)
    return students.get(lang)


def figure_png(fig, dpi: int = 90) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it (no pyplot state leaks between updates)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _preview(text: str, n: int = 70) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


class _CorpusCache:
    def __init__(self, loader: Callable[[str], NtrexCorpus]) -> None:
        self.loader = loader
        self._corpora: dict[str, NtrexCorpus] = {}

    def __call__(self, lang: str) -> NtrexCorpus:
        if lang not in self._corpora:
            self._corpora[lang] = self.loader(lang)
        return self._corpora[lang]


# =============================================================================== alignment explorer
class AlignmentExplorer:
    """Transport plan of one sentence pair, recomputed as epsilon / iterations / the pair change.

    Parameters
    ----------
    teacher : the frozen English encoder (rows of the plan).
    students : lang -> distilled student (a dict or a function); languages without one offer only
        "before" (the untrained student, i.e. the teacher itself).
    langs : languages offered in the dropdown.
    sentence_ids : NTREX line numbers offered as pairs (default: the first ``n_pairs`` lines of
        ``doc_ids`` when given, else of the corpus). Prefer held-out (evaluation) documents.
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
    ) -> None:
        if not langs:
            raise ValueError("give at least one language")
        self.teacher = teacher
        self.students = students
        self.corpus = _CorpusCache(corpus_loader)
        self.doc_ids = doc_ids
        self.n_pairs = n_pairs
        self._sentence_ids = list(sentence_ids) if sentence_ids is not None else None
        self.max_tokens = max_tokens
        self.dpi = dpi
        self._views: dict[tuple[int, str], TokenView] = {}
        self.alignment: Alignment | None = None
        self.error: str | None = None
        self._filling = False

        self.lang = W.Dropdown(options=[(f"{NAMES.get(l, l)} ({l})", l) for l in langs], value=langs[0],
                               description="language")
        self.pair = W.Dropdown(description="pair", layout=W.Layout(width="95%"))
        self.english = W.Textarea(description="English", layout=W.Layout(width="95%", height="3.2em"),
                                  continuous_update=False)
        self.foreign = W.Textarea(description="foreign", layout=W.Layout(width="95%", height="3.2em"),
                                  continuous_update=False)
        self.stage = W.ToggleButtons(options=["before", "after"], value="after", description="student",
                                     tooltips=["untrained student (= teacher)", "distilled student"])
        self.epsilon = W.FloatLogSlider(value=epsilon, base=10, min=-3, max=0.5, step=0.05, description="ε",
                                        readout_format=".3f", continuous_update=False)
        self.n_iters = W.IntSlider(value=n_iters, min=1, max=500, step=1, description="iterations",
                                   continuous_update=False)
        self.top_k = W.IntSlider(value=top_k, min=1, max=30, description="top pairs", continuous_update=False)
        self.image = W.Image(format="png", layout=W.Layout(max_width="720px"))
        self.table = W.HTML()
        self.status = W.HTML()
        self.widget = W.VBox([
            W.HBox([self.lang, self.stage]), self.pair, self.english, self.foreign,
            W.HBox([self.epsilon, self.n_iters, self.top_k]),
            W.HBox([self.image, W.VBox([self.table, self.status])]),
        ])

        self.lang.observe(self._on_lang, "value")
        self.pair.observe(self._on_pair, "value")
        for w in (self.english, self.foreign):
            w.observe(self._on_text, "value")
        for w in (self.stage, self.epsilon, self.n_iters, self.top_k):
            w.observe(lambda change: self.update(), "value")
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
    def _on_lang(self, change) -> None:
        self._fill_pairs()
        self.update()

    def _on_pair(self, change) -> None:
        if self._filling:
            return
        self._fill_texts()
        self.update()

    def _on_text(self, change) -> None:
        if self._filling:
            return
        corpus = self.corpus(self.lang.value)
        i = self.pair.value
        if i not in (None, CUSTOM) and (self.english.value, self.foreign.value) != (corpus.english[i], corpus.target[i]):
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
    def _view(self, encoder: Encoder, text: str) -> TokenView:
        key = (id(encoder), text)
        if key not in self._views:
            view = token_view(encoder, text)
            if len(view) > self.max_tokens:  # keep the heatmap legible
                view = TokenView(view.text, view.tokens[: self.max_tokens], view.embeddings[: self.max_tokens], view.encoder_name)
            self._views[key] = view
        return self._views[key]

    def compute(self) -> Alignment:
        """The plan for the current widget values (no drawing)."""
        rows = self._view(self.teacher, self.english.value)
        cols = self._view(self.student(), self.foreign.value)
        return plan_from_views(rows, cols, epsilon=self.epsilon.value, n_iters=self.n_iters.value)

    def render(self, alignment: Alignment) -> bytes:
        n, m = alignment.shape
        fig, ax = plt.subplots(figsize=(min(2.2 + 0.3 * m, 11), min(1.6 + 0.28 * n, 9)), layout="constrained")
        plot_transport_plan(alignment.plan, alignment.row_tokens, alignment.col_tokens, ax=ax,
                            col_label=f"{self.stage.value} student tokens ({self.lang.value})",
                            title=f"ε={alignment.epsilon:.3g}, {alignment.n_iters} it., ⟨P,C⟩={alignment.transport_cost:.3f}, "
                                  f"sharpness={alignment.sharpness():.2f}")
        return figure_png(fig, self.dpi)

    def update(self) -> Alignment | None:
        """Recompute the plan and refresh the heatmap, the table and the status line."""
        if self._filling:
            return self.alignment
        try:
            alignment = self.compute()
        except ValueError as exc:  # empty text box, bad parameters: say so instead of raising in a callback
            self.error = str(exc)
            self.status.value = f"<span style='color:#b00'>{html.escape(str(exc))}</span>"
            return None
        self.error = None
        self.alignment = alignment
        self.image.value = self.render(alignment)
        table = alignments_table(alignment.top(self.top_k.value), "English token", f"{self.lang.value} token")
        self.table.value = table.to_html(float_format=lambda v: f"{v:.4f}", border=0)
        converged = "converged" if alignment.extra.get("converged") else "not converged (raise iterations)"
        self.status.value = (f"<small>{alignment.shape[0]}×{alignment.shape[1]} tokens, "
                             f"marginal error {alignment.extra.get('marginal_error', float('nan')):.1e} ({converged})</small>")
        return alignment

    @property
    def top_pairs(self) -> list[tuple[str, str, float]]:
        return self.alignment.top(self.top_k.value) if self.alignment else []

    def _ipython_display_(self) -> None:  # display(explorer) shows the widget
        from IPython.display import display

        display(self.widget)


# =============================================================================== retrieval explorer
class RetrievalExplorer:
    """English query -> top documents in one language, teacher (zero-shot) vs distilled student.

    Documents are NTREX known-item documents (a document's sentences after the first, in the
    target language); restrict them with ``doc_ids`` to the documents the student never trained on.
    """

    def __init__(
        self,
        teacher: Encoder,
        students: StudentSource = None,
        langs: Sequence[str] = ("hau", "swa"),
        doc_ids: set[str] | None = None,
        max_docs: int | None = None,
        k: int = 5,
        corpus_loader: Callable[[str], NtrexCorpus] = load_ntrex,
        snippet_chars: int = 160,
        auto_update: bool = True,
    ) -> None:
        if not langs:
            raise ValueError("give at least one language")
        self.teacher = teacher
        self.students = students
        self.corpus = _CorpusCache(corpus_loader)
        self.doc_ids = doc_ids
        self.max_docs = max_docs
        self.snippet_chars = snippet_chars
        self._doc_cache: dict[tuple[int, str], tuple[list[str], torch.Tensor]] = {}
        self.results: dict[str, list[tuple[str, float, str]]] = {}
        self.gold: str | None = None

        self.lang = W.Dropdown(options=[(f"{NAMES.get(l, l)} ({l})", l) for l in langs], value=langs[0],
                               description="language")
        self.examples = W.Dropdown(description="example", layout=W.Layout(width="95%"))
        self.query = W.Text(description="query", placeholder="type an English query and press Enter",
                            layout=W.Layout(width="95%"), continuous_update=False)
        self.k = W.IntSlider(value=k, min=1, max=20, description="top k", continuous_update=False)
        self.output = W.HTML()
        self.widget = W.VBox([W.HBox([self.lang, self.k]), self.examples, self.query, self.output])

        self._filling = False
        self.lang.observe(self._on_lang, "value")
        self.examples.observe(self._on_example, "value")
        self.query.observe(lambda change: self.update(), "value")
        self.k.observe(lambda change: self.update(), "value")
        self._fill_examples()
        if auto_update:
            self.update()

    # ------------------------------------------------------------------ documents
    def collection(self, lang: str):
        corpus = self.corpus(lang)
        collection = known_item_collection(corpus)
        keep = [d for d in corpus.documents() if self.doc_ids is None or d in self.doc_ids]
        if self.max_docs is not None:
            keep = keep[: self.max_docs]
        return collection.restrict(set(keep))

    def encoders(self) -> dict[str, Encoder]:
        """Column title -> document encoder (the teacher always; the student when there is one)."""
        out = {"teacher (zero-shot)": self.teacher}
        student = _student_for(self.students, self.lang.value)
        if student is not None:
            out["student (distilled)"] = student
        return out

    def _doc_embeddings(self, encoder: Encoder, lang: str) -> tuple[list[str], torch.Tensor]:
        key = (id(encoder), lang)
        if key not in self._doc_cache:
            collection = self.collection(lang)
            ids = list(collection.documents)
            self._doc_cache[key] = (ids, encoder.encode([collection.documents[d] for d in ids], role="passage", batch_size=16))
        return self._doc_cache[key]

    # ------------------------------------------------------------------ callbacks
    def _fill_examples(self) -> None:
        collection = self.collection(self.lang.value)
        options = [("(type your own query below)", "")] + [(f"{q}: {_preview(t)}", q) for q, t in collection.queries.items()]
        self._filling = True
        try:
            previous = self.examples.value
            self.examples.options = options
            self.examples.value = previous if previous in dict((v, l) for l, v in options) else ""
        finally:
            self._filling = False

    def _on_lang(self, change) -> None:
        self._fill_examples()
        self.update()

    def _on_example(self, change) -> None:
        if self._filling or not change["new"]:
            return
        collection = self.collection(self.lang.value)
        self.query.value = collection.queries[change["new"]]  # triggers update

    def search(self, query: str, lang: str, k: int) -> dict[str, list[tuple[str, float, str]]]:
        """Pure: column title -> [(doc id, cosine score, snippet)] for the top ``k`` documents."""
        collection = self.collection(lang)
        q = self.teacher.encode([query], role="query")[0]
        out = {}
        for title, encoder in self.encoders().items():
            ids, docs = self._doc_embeddings(encoder, lang)
            scores = docs @ q
            top = torch.topk(scores, min(k, len(ids)))
            out[title] = [(ids[j], float(s), _preview(collection.documents[ids[j]], self.snippet_chars))
                          for s, j in zip(top.values.tolist(), top.indices.tolist())]
        return out

    def gold_document(self, query: str, lang: str) -> str | None:
        """The relevant document when ``query`` is one of the known-item queries."""
        collection = self.collection(lang)
        for qid, text in collection.queries.items():
            if text.strip() == query.strip():
                return next(iter(collection.qrels[qid]))
        return None

    def update(self) -> dict[str, list[tuple[str, float, str]]]:
        if self._filling:
            return self.results
        query = self.query.value.strip()
        if not query:
            self.results, self.gold = {}, None
            self.output.value = "<i>type an English query or pick an example</i>"
            return self.results
        self.results = self.search(query, self.lang.value, self.k.value)
        self.gold = self.gold_document(query, self.lang.value)
        self.output.value = self.to_html()
        return self.results

    def rank_of_gold(self, title: str) -> int | None:
        """1-based rank of the gold document in column ``title`` (None when absent or no gold)."""
        for rank, (doc, _, _) in enumerate(self.results.get(title, []), start=1):
            if doc == self.gold:
                return rank
        return None

    def to_html(self) -> str:
        columns = []
        for title, hits in self.results.items():
            rows = []
            for rank, (doc, score, snippet) in enumerate(hits, start=1):
                mark = " style='background:#e3f4e1'" if doc == self.gold else ""
                star = " ✔" if doc == self.gold else ""
                rows.append(f"<tr{mark}><td>{rank}</td><td>{score:.3f}</td><td><b>{html.escape(doc)}</b>{star}<br>"
                            f"<small>{html.escape(snippet)}</small></td></tr>")
            columns.append(f"<td style='vertical-align:top;width:50%'><h4>{html.escape(title)}</h4>"
                           f"<table><tr><th>#</th><th>cos</th><th>document</th></tr>{''.join(rows)}</table></td>")
        note = "" if self.gold is None else f"<small>gold document: <b>{html.escape(self.gold)}</b> (✔)</small>"
        return f"{note}<table style='width:100%'><tr>{''.join(columns)}</tr></table>"

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
