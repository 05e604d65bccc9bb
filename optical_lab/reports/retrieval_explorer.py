"""The retrieval explorer: an English query, the top documents in one language, teacher vs distilled student.

Type an English query (or pick an NTREX known-item query), pick a language: the top documents retrieved by the
teacher (zero-shot) and by the student appear side by side, the gold document marked when the query is a
known-item query. Document embeddings are cached per (encoder, language), so a new query costs one encode and
a matrix product. Shared helpers: :mod:`optical_lab.reports.widget_common`; the package's entry point:
:mod:`optical_lab.reports.widgets`.
"""

from __future__ import annotations

import html
from typing import Callable, Mapping, Sequence

import torch

from ..data.collections import known_item_collection
from ..data.ntrex import NtrexCorpus, load_ntrex
from ..models.encoder import Encoder
from .widget_common import (
    MAX_CHARS,
    ExplorerBase,
    StudentSource,
    W,
    _preview,
    _reports_errors,
    _student_for,
    _student_name,
    clip_text,
    message_html,
    no_student_note,
)


class RetrievalExplorer(ExplorerBase):
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
        self._hold(teacher, students, langs, corpus_loader, doc_ids, student_labels)
        self.max_docs = max_docs
        self.snippet_chars = snippet_chars
        self._doc_cache: dict[tuple[int, str], tuple[list[str], torch.Tensor]] = {}
        self.results: dict[str, list[tuple[str, float, str]]] = {}
        self.gold: str | None = None

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
