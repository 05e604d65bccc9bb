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

Both explorers also run as a web page (``optical-lab explore``: Voilà serves
``optical_lab/reports/app/app_explorer.ipynb``, see :mod:`optical_lab.reports.explore`), where a reader cannot
see a Python traceback. So every callback reports what went wrong *in the page* (the red
``message`` line) and logs the traceback for the developer; bad input (an empty box, a
2,000-token paste, a language without a saved student) gets a plain sentence saying what to do.
Widgets carry CSS classes (``optical-align-*``, ``optical-search-*``) so a browser test can find them.
"""

from __future__ import annotations

import functools
import html
import io
import logging
from typing import Callable, Mapping, Sequence

try:
    import ipywidgets as W
except ModuleNotFoundError as exc:  # an optional dependency (pyproject.toml: the `app` and `notebooks` extras)
    raise ModuleNotFoundError("the explorers need ipywidgets: pip install 'optical_lab[app]'", name=exc.name) from exc
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
MAX_CHARS = 20_000  # longer pastes are cut before tokenizing (a tokenizer on megabytes stalls the page)
log = logging.getLogger(__name__)


def message_html(text: str, kind: str = "error") -> str:
    """One visible line in the page: ``error`` (red) for what stopped an update, ``note`` (amber) for
    what the reader should know (a text was cut, a language has no student). Escaped: user text is shown."""
    colour = {"error": "#b00020", "note": "#8a5a00"}[kind]
    return f"<div class='optical-{kind}' style='color:{colour}'>{html.escape(text)}</div>"


def _reports_errors(method):
    """Run a widget callback; on any exception show it in ``self.message`` instead of raising.

    An exception raised inside an ipywidgets observer never reaches the reader (it goes to the
    kernel log) and leaves the page silently stale; here it becomes a red line in the page and the
    traceback goes to the log.
    """

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - everything must reach the page, not the kernel log
            log.exception("explorer callback %s failed", method.__name__)
            self.error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)
            self.message.value = message_html(self.error)
            return None

    return wrapper


def _student_name(encoder: Encoder | None, labels: Mapping[str, str] | None, lang: str) -> str:
    if encoder is None:
        return ""
    return (labels or {}).get(lang) or encoder.name or "student"


def no_student_note(lang: str) -> str:
    """What the page says for a language without a distilled student."""
    return (
        f"No saved student for {NAMES.get(lang, lang)} ({lang}): only the teacher is shown. "
        f"To compare, start the app with --student {lang}=PATH (a folder written by Encoder.save or a student.pt)."
    )


def clip_text(text: str, tokenizer, limit: int, what: str) -> tuple[str, str | None]:
    """(the text to encode, a note for the page or None) when ``text`` is longer than ``limit`` word
    pieces (the encoder truncates, the heatmap keeps ``limit`` tokens) or than :data:`MAX_CHARS`."""
    cut = text[:MAX_CHARS]
    n = len(tokenizer.tokenize(cut))
    parts = []
    if len(text) > len(cut):
        parts.append(f"{len(text):,} characters pasted, only the first {MAX_CHARS:,} read")
    if n > limit:
        parts.append(f"{n:,} tokens, only the first {limit} used")
    return cut, (f"{what}: {'; '.join(parts)}." if parts else None)


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
        if not langs:
            raise ValueError("give at least one language")
        self.teacher = teacher
        self.students = students
        self.student_labels = student_labels
        self.corpus = _CorpusCache(corpus_loader)
        self.doc_ids = doc_ids
        self.n_pairs = n_pairs
        self._sentence_ids = list(sentence_ids) if sentence_ids is not None else None
        self.max_tokens = max_tokens
        self.dpi = dpi
        self._views: dict[tuple[int, str], TokenView] = {}
        self.alignment: Alignment | None = None
        self.error: str | None = None
        self.notes: list[str] = []
        self._filling = False

        self.lang = W.Dropdown(
            options=[(f"{NAMES.get(l, l)} ({l})", l) for l in langs], value=langs[0], description="language"
        )
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
    def _on_setting(self, change) -> None:
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
        student_labels: Mapping[str, str] | None = None,
    ) -> None:
        if not langs:
            raise ValueError("give at least one language")
        self.teacher = teacher
        self.students = students
        self.student_labels = student_labels
        self.corpus = _CorpusCache(corpus_loader)
        self.doc_ids = doc_ids
        self.max_docs = max_docs
        self.snippet_chars = snippet_chars
        self._doc_cache: dict[tuple[int, str], tuple[list[str], torch.Tensor]] = {}
        self.results: dict[str, list[tuple[str, float, str]]] = {}
        self.gold: str | None = None
        self.error: str | None = None
        self.notes: list[str] = []

        self.lang = W.Dropdown(
            options=[(f"{NAMES.get(l, l)} ({l})", l) for l in langs], value=langs[0], description="language"
        )
        self.examples = W.Dropdown(description="example", layout=W.Layout(width="95%"))
        self.query = W.Text(
            description="query",
            placeholder="type an English query and press Enter",
            layout=W.Layout(width="95%"),
            continuous_update=False,
        )
        self.k = W.IntSlider(value=k, min=1, max=20, description="top k", continuous_update=False)
        self.output = W.HTML()
        self.message = W.HTML()
        self.widget = W.VBox([W.HBox([self.lang, self.k]), self.examples, self.query, self.message, self.output])
        for name in ("widget", "lang", "k", "examples", "query", "message", "output"):
            getattr(self, name).add_class(f"optical-search-{name}")

        self._filling = False
        self.lang.observe(self._on_lang, "value")
        self.examples.observe(self._on_example, "value")
        self.query.observe(self._on_setting, "value")
        self.k.observe(self._on_setting, "value")
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

    def model_names(self) -> dict[str, str]:
        """Column title -> the model it shows (the teacher's name; the student's label or name)."""
        lang = self.lang.value
        return {
            title: (self.teacher.name or "teacher")
            if encoder is self.teacher
            else _student_name(encoder, self.student_labels, lang)
            for title, encoder in self.encoders().items()
        }

    def _doc_embeddings(self, encoder: Encoder, lang: str) -> tuple[list[str], torch.Tensor]:
        key = (id(encoder), lang)
        if key not in self._doc_cache:
            collection = self.collection(lang)
            ids = list(collection.documents)
            self._doc_cache[key] = (
                ids,
                encoder.encode([collection.documents[d] for d in ids], role="passage", batch_size=16),
            )
        return self._doc_cache[key]

    # ------------------------------------------------------------------ callbacks
    def _fill_examples(self) -> None:
        collection = self.collection(self.lang.value)
        options = [("(type your own query below)", "")] + [
            (f"{q}: {_preview(t)}", q) for q, t in collection.queries.items()
        ]
        self._filling = True
        try:
            previous = self.examples.value
            self.examples.options = options
            self.examples.value = previous if previous in dict((v, l) for l, v in options) else ""
        finally:
            self._filling = False

    @_reports_errors
    def _on_lang(self, change) -> None:
        self._fill_examples()
        self.update()

    @_reports_errors
    def _on_setting(self, change) -> None:
        self.update()

    @_reports_errors
    def _on_example(self, change) -> None:
        if self._filling or not change["new"]:
            return
        collection = self.collection(self.lang.value)
        self.query.value = collection.queries[change["new"]]  # triggers update

    def search(self, query: str, lang: str, k: int) -> dict[str, list[tuple[str, float, str]]]:
        """Pure: column title -> [(doc id, cosine score, snippet)] for the top ``k`` documents."""
        collection = self.collection(lang)
        q = self.teacher.encode([query[:MAX_CHARS]], role="query")[0]
        out = {}
        for title, encoder in self.encoders().items():
            ids, docs = self._doc_embeddings(encoder, lang)
            scores = docs @ q
            top = torch.topk(scores, min(k, len(ids)))
            out[title] = [
                (ids[j], float(s), _preview(collection.documents[ids[j]], self.snippet_chars))
                for s, j in zip(top.values.tolist(), top.indices.tolist())
            ]
        return out

    def gold_document(self, query: str, lang: str) -> str | None:
        """The relevant document when ``query`` is one of the known-item queries."""
        collection = self.collection(lang)
        for qid, text in collection.queries.items():
            if text.strip() == query.strip():
                return next(iter(collection.qrels[qid]))
        return None

    @_reports_errors
    def update(self) -> dict[str, list[tuple[str, float, str]]]:
        """Search the current query; notes (long query, no student) go to the message line."""
        if self._filling:
            return self.results
        self.error = None
        query = self.query.value.strip()
        lang = self.lang.value
        self.notes = [] if _student_for(self.students, lang) is not None else [no_student_note(lang)]
        if not query:
            self.results, self.gold = {}, None
            self.message.value = "".join(message_html(n, "note") for n in self.notes)
            self.output.value = "<i>type an English query or pick an example</i>"
            return self.results
        _, note = clip_text(query, self.teacher.tokenizer, self.teacher.max_length, "query")
        if note:
            self.notes.insert(0, note)
        self.message.value = "".join(message_html(n, "note") for n in self.notes)
        if any((id(e), lang) not in self._doc_cache for e in self.encoders().values()):
            self.output.value = "<i>encoding the documents (once per language and model)…</i>"
        self.results = self.search(query, lang, self.k.value)
        self.gold = self.gold_document(query, lang)
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
        names = self.model_names()
        for title, hits in self.results.items():
            rows = []
            for rank, (doc, score, snippet) in enumerate(hits, start=1):
                mark = " style='background:#e3f4e1'" if doc == self.gold else ""
                star = " ✔" if doc == self.gold else ""
                rows.append(
                    f"<tr{mark}><td>{rank}</td><td>{score:.3f}</td><td><b>{html.escape(doc)}</b>{star}<br>"
                    f"<small>{html.escape(snippet)}</small></td></tr>"
                )
            slug = title.split()[0]  # teacher / student: a stable class for the page and its tests
            columns.append(
                f"<td class='optical-search-{slug}' style='vertical-align:top;width:50%'>"
                f"<h4>{html.escape(title)}: {html.escape(names.get(title, ''))}</h4>"
                f"<table><tr><th>#</th><th>cos</th><th>document</th></tr>{''.join(rows)}</table></td>"
            )
        note = "" if self.gold is None else f"<small>gold document: <b>{html.escape(self.gold)}</b> (✔)</small>"
        return f"{note}<table style='width:100%'><tr>{''.join(columns)}</tr></table>"

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
