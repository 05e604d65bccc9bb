"""Leak guard: does a training/dev bitext contain the texts a run will be evaluated on?

A student that saw an evaluation sentence (or its translation) during training is scored on
memory, not on transfer. Before training, a run compares every text of its training and dev
bitext (both sides) with every evaluation text (queries, documents, sentences; both languages)
and counts the evaluation texts found there, per evaluation set:

* **exact**: the same string (surrounding whitespace ignored);
* **normalised**: the same after Unicode NFKC, case folding, punctuation -> space, and collapsing
  whitespace (:func:`normalise_text`), which catches re-cased, re-punctuated or re-spaced copies.

An evaluation text that normalises to nothing (only punctuation) is never counted. The counts go
into the results folder as JSON (:meth:`LeakReport.write_json`) and :meth:`LeakReport.check`
refuses the run when more than ``allow_overlap`` evaluation texts (normalised, over all sets) leak.
"""

from __future__ import annotations

import functools
import json
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..io import write_text
from .bitext import Bitext
from .errors import DataError

MAX_EXAMPLES = 5


@functools.lru_cache(maxsize=1 << 18)
def normalise_text(text: str) -> str:
    """NFKC, case-folded, punctuation turned into spaces, whitespace collapsed. Memoised: the same
    evaluation texts (a passage pool shared by several languages, a task's sentences) are compared with
    one training bitext after another, and this per-character pass is what such a survey costs."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    return " ".join(text.split())


@dataclass
class SetOverlap:
    """How many texts of one evaluation set occur in the training texts."""

    name: str
    n_texts: int
    exact: int
    normalised: int
    examples: list[str] = field(default_factory=list)  # a few leaked evaluation texts, for the reader


@dataclass
class LeakReport:
    """Overlap of one training text pool with each evaluation set."""

    train: str
    n_train_texts: int
    sets: list[SetOverlap]

    @property
    def leaked(self) -> int:
        """Evaluation texts found in training (normalised, which includes exact), over all sets."""
        return sum(s.normalised for s in self.sets)

    def to_dict(self) -> dict:
        return {
            "train": self.train,
            "n_train_texts": self.n_train_texts,
            "leaked": self.leaked,
            "normalisation": "NFKC + casefold + punctuation->space + collapsed whitespace",
            "sets": [asdict(s) for s in self.sets],
        }

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", path)
        return path

    def check(self, allow_overlap: int = 0) -> "LeakReport":
        """Raise a :class:`DataError` when more than ``allow_overlap`` evaluation texts leak."""
        if self.leaked > allow_overlap:
            worst = ", ".join(
                f"{s.name}: {s.normalised} of {s.n_texts} ({s.exact} exact)" for s in self.sets if s.normalised
            )
            example = next(s.examples[0] for s in self.sets if s.examples)
            raise DataError(
                f"{self.leaked} evaluation texts also occur in the training/dev bitext {self.train} ({worst}); "
                f"e.g. {example[:80]!r}",
                fix=f"train on bitext that excludes the evaluation texts, or accept the overlap knowingly with "
                f"--allow-overlap {self.leaked}",
            )
        return self


def _texts(train: Bitext | Sequence[Bitext]) -> list[str]:
    bitexts = [train] if isinstance(train, Bitext) else list(train)
    return [text for b in bitexts for text in (*b.english, *b.foreign)]


def measure_overlap(
    train: Bitext | Sequence[Bitext], evaluation: Mapping[str, Iterable[str]], train_name: str = ""
) -> LeakReport:
    """Count, per evaluation set, the texts that occur in ``train`` (both sides), exactly and normalised."""
    texts = _texts(train)
    exact = {t.strip() for t in texts}
    normalised = {normalise_text(t) for t in texts} - {""}
    name = train_name or "+".join(
        dict.fromkeys(b.source or b.lang for b in ([train] if isinstance(train, Bitext) else train))
    )
    sets = []
    for set_name, eval_texts in evaluation.items():
        eval_texts = list(eval_texts)
        n_exact = n_norm = 0
        examples: list[str] = []
        for text in eval_texts:
            key = normalise_text(text)
            hit_norm = bool(key) and key in normalised
            n_exact += bool(key) and text.strip() in exact
            n_norm += hit_norm
            if hit_norm and len(examples) < MAX_EXAMPLES:
                examples.append(text)
        sets.append(SetOverlap(set_name, len(eval_texts), n_exact, n_norm, examples))
    return LeakReport(name, len(texts), sets)


def guard_overlap(
    train: Bitext | Sequence[Bitext],
    evaluation: Mapping[str, Iterable[str]],
    *,
    allow_overlap: int = 0,
    write_to: str | Path | None = None,
    train_name: str = "",
) -> LeakReport:
    """Measure, record (``write_to``: a JSON file), then refuse above ``allow_overlap``: the runner's one call."""
    report = measure_overlap(train, evaluation, train_name)
    if write_to is not None:
        report.write_json(write_to)
    return report.check(allow_overlap)
