"""When one method beats another: the single tie rule, significance level, power and reference arm of every
table, figure and text (the defaults of ``evaluation/stats.py``; each is also an argument there).

**Tie rule.** Two means tie when they differ by at most :data:`TIE_ATOL` = 1e-12, i.e. when they
are equal up to floating-point rounding. Two students that rank every query the same way (e.g. two
methods whose dev-set selection both kept the untrained student) get *exactly* equal means; any
other difference is a measured one, and whether it matters is the randomization test's call
(:data:`ALPHA`), not a threshold's.

The summary tables (``summary.py``) used this rule; the generated answer text (``answer.py``) used a
typed-in 5e-4. On the committed results (``results/compare-*``) both rules classify every pair the
same way and the re-generated ``summary.md``/``winners.csv``/``answer.md`` are byte-identical under
either (checked by regenerating them), so the choice is made on principle: 1e-12 invents no
threshold, while 5e-4 would call measured differences ties (e.g. minilm swa nDCG@10,
translate-train vs optical+aug, 1.5e-4 apart).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

ALPHA = 0.05  # significance level of the Holm-adjusted paired randomization tests
POWER = 0.8  # power at which a minimum detectable effect is stated
REFERENCE = "optical"  # the arm every other one is tested against (methods/registry.py re-exports it)
TIE_ATOL = 1e-12
DIFFERENCE = "reference_minus_method"  # the one sign convention of every table: positive = the reference is better


def is_tie(a: float, b: float) -> bool:
    """Whether two means are the same number up to floating-point rounding."""
    return abs(float(a) - float(b)) <= TIE_ATOL


def is_significant(p: float | None, alpha: float = ALPHA) -> bool:
    """A (Holm-adjusted) p-value below ``alpha``; a missing test is never significant."""
    return p is not None and not (isinstance(p, float) and math.isnan(p)) and p < alpha


def ranking(means: Mapping[str, float], reference: str | None = None) -> list[str]:
    """Methods by decreasing mean (ties keep the given order); a ``reference`` that ties for the top
    leads the ranking, because a tie is not a loss."""
    ranked = sorted(means, key=lambda m: -means[m])
    if reference in means and ranked and is_tie(means[reference], means[ranked[0]]):
        ranked.remove(reference)
        ranked.insert(0, reference)
    return ranked


def tied_with(means: Mapping[str, float], method: str, others: Sequence[str]) -> list[str]:
    """The ``others`` whose mean ties ``method``'s."""
    return [m for m in others if is_tie(means[m], means[method])]
