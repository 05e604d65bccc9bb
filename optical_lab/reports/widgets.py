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

Modules: :mod:`~optical_lab.reports.alignment_explorer`, :mod:`~optical_lab.reports.retrieval_explorer`, and
what they share, :mod:`~optical_lab.reports.widget_common`; this module is the entry point the notebooks and
:mod:`optical_lab.reports.explore` import from.
"""

from __future__ import annotations

from .alignment_explorer import CUSTOM, AlignmentExplorer
from .retrieval_explorer import RetrievalExplorer
from .widget_common import MAX_CHARS, clip_text, figure_png, message_html, no_student_note

__all__ = [
    "AlignmentExplorer",
    "RetrievalExplorer",
    "CUSTOM",
    "MAX_CHARS",
    "clip_text",
    "figure_png",
    "message_html",
    "no_student_note",
]
