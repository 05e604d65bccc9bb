"""What both explorers share: student lookup, error and note lines in the page, text clipping, PNG rendering.

Every widget callback of :mod:`optical_lab.reports.alignment_explorer` and
:mod:`optical_lab.reports.retrieval_explorer` runs under :func:`_reports_errors`: an exception becomes a red
``message`` line in the page (a reader of the web app cannot see a traceback) and the traceback goes to the log;
:func:`message_html` writes those lines, :func:`clip_text` and :data:`MAX_CHARS` keep a huge paste from
stalling the page, :func:`no_student_note` says what to do for a language without a student.
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

from ..data.languages import NAMES
from ..data.ntrex import NtrexCorpus
from ..models.encoder import Encoder

StudentSource = Mapping[str, Encoder] | Callable[[str], Encoder | None] | None
MAX_CHARS = 20_000  # longer pastes are cut before tokenizing (a tokenizer on megabytes stalls the page)
log = logging.getLogger("optical_lab.reports.widgets")  # the explorers' log, under the name it always had


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


class ExplorerBase:
    """What both explorers hold: the teacher, the students (per language), their labels, the corpus of each
    language (loaded once), the documents allowed, the page's error and notes, and the language menu."""

    def _hold(
        self,
        teacher: Encoder,
        students: StudentSource,
        langs: Sequence[str],
        corpus_loader: Callable[[str], NtrexCorpus],
        doc_ids: set[str] | None,
        student_labels: Mapping[str, str] | None,
    ) -> None:
        if not langs:
            raise ValueError("give at least one language")
        self.teacher = teacher
        self.students = students
        self.student_labels = student_labels
        self.corpus = _CorpusCache(corpus_loader)
        self.doc_ids = doc_ids
        self.error: str | None = None
        self.notes: list[str] = []
        self.lang = W.Dropdown(
            options=[(f"{NAMES.get(l, l)} ({l})", l) for l in langs], value=langs[0], description="language"
        )

    @_reports_errors
    def _on_setting(self, change) -> None:
        """A setting changed: redraw."""
        self.update()
