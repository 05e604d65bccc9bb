"""Token-level transport plans for real sentence pairs — the one implementation behind the
notebooks, the widget explorers and ``optical-lab figures``.

Pipeline (the very function the OPTICAL loss calls, :func:`optical_lab.ot.token_plan`):

    English sentence --teacher--> token embeddings X (n, d)   (rows)
    foreign sentence --student--> token embeddings Y (m, d)   (columns)
    token_plan(X, Y, spec): C = cost(X, Y), a, b uniform over the real tokens,
    plan = Sinkhorn(C, a, b; spec.epsilon, spec.n_iters)       (n, m), sums to 1

Figures solve each plan to convergence in float64: :data:`FIGURE_SPEC` is the training
:class:`~optical_lab.ot.SinkhornSpec` with 100 iterations instead of 50.

Special tokens ([CLS]/[SEP]/<s>/</s>) and padding are excluded before the cost is built, so
every row and column of the plan is a token a reader can see. Token embeddings are computed
once per sentence (:func:`token_view`) and reused while epsilon / iterations change
(:func:`plan_from_views`), which is what keeps the explorer's sliders responsive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from ..models.encoder import Encoder, Role
from ..ot import SinkhornSpec, token_plan

FIGURE_SPEC = SinkhornSpec(n_iters=100)
DEFAULT_EPSILON = FIGURE_SPEC.epsilon
DEFAULT_ITERS = FIGURE_SPEC.n_iters


@dataclass
class TokenView:
    """The real (non-special, non-padding) tokens of one sentence and their contextual embeddings."""

    text: str
    tokens: list[str]
    embeddings: torch.Tensor  # (n, d), float32, CPU, no grad
    encoder_name: str = ""

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass
class Alignment:
    """A transport plan between the teacher's tokens (rows) and the student's tokens (columns).

    >>> from optical_lab import Encoder, alignment_plan
    >>> teacher = Encoder.load("minilm", device="cpu")
    >>> alignment = alignment_plan(teacher, teacher, "good morning", "habari ya asubuhi")
    >>> alignment.row_tokens, round(float(alignment.plan.sum()), 6)
    (['good', 'morning'], 1.0)
    >>> len(alignment.top(3)), type(alignment.plot()).__name__  # the heatmap, on a matplotlib Axes
    (3, 'Axes')
    """

    plan: np.ndarray  # (n, m), non-negative, sums to 1
    cost: np.ndarray  # (n, m), the cost matrix the plan was computed from
    row_tokens: list[str]
    col_tokens: list[str]
    epsilon: float
    n_iters: int
    transport_cost: float  # <plan, cost>
    english: str = ""
    foreign: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.plan.shape

    def top(self, k: int = 10) -> list[tuple[str, str, float]]:
        """The ``k`` strongest (teacher token, student token, mass) pairs."""
        from .plots import top_alignments

        return top_alignments(self.plan, self.row_tokens, self.col_tokens, k)

    def sharpness(self) -> float:
        """1 - H(plan) / log(n*m): 0 for the uniform (most diffuse) plan, larger when mass concentrates
        on few cells. A one-number summary of the effect of epsilon."""
        p = self.plan[self.plan > 0]
        size = self.plan.size
        if size <= 1:
            return 1.0
        entropy = float(-(p * np.log(p)).sum())
        return 1.0 - entropy / math.log(size)

    def row_argmax(self) -> list[tuple[str, str]]:
        """For every teacher token, the student token receiving most of its mass."""
        best = self.plan.argmax(axis=1)
        return [(self.row_tokens[i], self.col_tokens[j]) for i, j in enumerate(best)]

    def plot(self, ax=None, title: str | None = None, **kwargs):
        """Heatmap of the plan (see :func:`optical_lab.reports.plots.plot_transport_plan`)."""
        from .plots import plot_transport_plan

        if title is None:
            title = f"ε={self.epsilon:g}, {self.n_iters} iterations, ⟨P,C⟩={self.transport_cost:.3f}"
        return plot_transport_plan(self.plan, self.row_tokens, self.col_tokens, ax=ax, title=title, **kwargs)


@torch.no_grad()
def token_view(encoder: Encoder, text: str, role: Role = None) -> TokenView:
    """Contextual embeddings of ``text``'s real tokens (eval mode: no dropout, deterministic)."""
    if not text or not text.strip():
        raise ValueError("empty sentence: type some text to align")
    was_training = encoder.training
    encoder.eval()
    try:
        batch = encoder.tokens([text], role)
    finally:
        encoder.train(was_training)
    keep = batch.mask[0] & ~batch.special[0]
    ids = batch.input_ids[0][keep].tolist()
    tokens = list(encoder.tokenizer.convert_ids_to_tokens(ids))
    if not tokens:
        raise ValueError(f"no real tokens in {text!r}")
    return TokenView(text, tokens, batch.embeddings[0][keep].detach().float().cpu(), encoder.name)


def plan_from_views(
    teacher_view: TokenView,
    student_view: TokenView,
    epsilon: float = DEFAULT_EPSILON,
    n_iters: int = DEFAULT_ITERS,
    cost: str = "cosine",
) -> Alignment:
    """Entropic OT plan between two token views with uniform marginals over their tokens."""
    spec = FIGURE_SPEC.replace(epsilon=float(epsilon), n_iters=int(n_iters), cost=cost)  # validates both
    x = teacher_view.embeddings.unsqueeze(0).double()  # float64: the plan sums to 1 to ~1e-12
    y = student_view.embeddings.unsqueeze(0).double()
    with torch.no_grad():  # the views hold real tokens only: every mask is all-true
        solved = token_plan(
            x, torch.ones(x.shape[:2], dtype=torch.bool), y, torch.ones(y.shape[:2], dtype=torch.bool), spec
        )
    out = solved.output
    plan = out.plan[0].double().cpu().numpy()
    C0 = solved.cost[0].double().cpu().numpy()
    return Alignment(
        plan=plan,
        cost=C0,
        row_tokens=list(teacher_view.tokens),
        col_tokens=list(student_view.tokens),
        epsilon=float(epsilon),
        n_iters=int(n_iters),
        transport_cost=float((plan * C0).sum()),
        english=teacher_view.text,
        foreign=student_view.text,
        extra={
            "marginal_error": float(out.marginal_error[0]),
            "converged": bool(out.converged[0]),
            "method": out.method,
        },
    )


def alignment_plan(
    teacher: Encoder,
    student: Encoder,
    english: str,
    foreign: str,
    epsilon: float = DEFAULT_EPSILON,
    n_iters: int = DEFAULT_ITERS,
    cost: str = "cosine",
    role: Role = None,
) -> Alignment:
    """Plan aligning the teacher's tokens of ``english`` with the student's tokens of ``foreign``.

    Before distillation pass the teacher as ``student`` too (the student starts as its copy).
    Example: :class:`Alignment`.
    """
    return plan_from_views(
        token_view(teacher, english, role), token_view(student, foreign, role), epsilon, n_iters, cost
    )


def plans_at(
    teacher_view: TokenView, student_view: TokenView, epsilons: Sequence[float], n_iters: int = DEFAULT_ITERS
) -> list[Alignment]:
    """The same pair at several epsilons (sharp vs diffuse)."""
    return [plan_from_views(teacher_view, student_view, eps, n_iters) for eps in epsilons]
