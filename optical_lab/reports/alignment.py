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

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from ..io import read_jsonl
from ..models.encoder import Encoder, Role
from ..ot import SinkhornSpec, token_plan

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ..methods import TrainConfig
    from ..tasks.base import TaskFold

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
    """A transport plan between the teacher's tokens (rows) and the student's tokens (columns)."""

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
        solved = token_plan(x, torch.ones(x.shape[:2], dtype=torch.bool), y, torch.ones(y.shape[:2], dtype=torch.bool), spec)
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
        extra={"marginal_error": float(out.marginal_error[0]), "converged": bool(out.converged[0]), "method": out.method},
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
    """
    return plan_from_views(token_view(teacher, english, role), token_view(student, foreign, role), epsilon, n_iters, cost)


def plans_at(teacher_view: TokenView, student_view: TokenView, epsilons: Sequence[float],
             n_iters: int = DEFAULT_ITERS) -> list[Alignment]:
    """The same pair at several epsilons (sharp vs diffuse)."""
    return [plan_from_views(teacher_view, student_view, eps, n_iters) for eps in epsilons]


# =============================================================================== students to align with
SMALL_ENV = "OPTICAL_LAB_SMALL"


def small_mode() -> bool:
    """``OPTICAL_LAB_SMALL=1``: the small configuration (few steps, few documents) used by the
    notebook tests; unset or ``0`` runs the notebooks at the comparison's default size."""
    return os.environ.get(SMALL_ENV, "").strip().lower() not in ("", "0", "false", "no")


def notebook_config(**overrides) -> "TrainConfig":
    """Training settings for notebooks and figures: the comparison's defaults, or a few steps on a
    few hundred pairs in small mode (about half a minute on 2 CPU cores)."""
    from ..methods import TrainConfig

    small = dict(steps=12, batch_size=8, warmup_steps=2, max_train_pairs=240, max_dev_pairs=64, eval_every=6,
                 checkpoint_every=0, n_iters=30) if small_mode() else {}  # n_iters: TrainConfig.sinkhorn's
    return TrainConfig(progress=False, checkpoint_every=0).replace(**{**small, **overrides})


def read_train_log(folder: str | Path) -> "pd.DataFrame":
    """The trainer's ``train_log.jsonl`` as a DataFrame (train steps and dev evaluations)."""
    import pandas as pd

    return pd.DataFrame(read_jsonl(Path(folder) / "train_log.jsonl"))


@dataclass
class DistilledStudent:
    """A trained student with what produced it."""

    student: Encoder
    lang: str
    method: str
    fold: "TaskFold"
    config: "TrainConfig"
    folder: Path  # train_log.jsonl, train_summary.json, (cached) student.pt
    result: dict

    @property
    def log(self) -> "pd.DataFrame":
        return read_train_log(self.folder)


def student_folder(teacher: Encoder, lang: str, method: str, config: "TrainConfig", fold: int = 0, n_folds: int = 2) -> Path:
    """Where :func:`distilled_student` keeps a student: ``<cache>/students/<key>/`` (outside the repository)."""
    from ..data.paths import cache_dir

    key = f"{lang}-{method}-fold{fold}of{n_folds}-{teacher.name or 'teacher'}-{config.fingerprint()}"
    return cache_dir() / "students" / key


def save_student(student: Encoder, folder: str | Path) -> Path:
    """Write the student's weights to ``folder/student.pt`` atomically (what the cache reads)."""
    from ..methods.trainer import atomic_torch_save

    path = Path(folder) / "student.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(student.state_dict(), path)
    return path


def distilled_student(
    teacher: Encoder,
    lang: str,
    method: str = "optical",
    config: "TrainConfig | None" = None,
    fold: int = 0,
    n_folds: int = 2,
    cache: bool = True,
    force: bool = False,
    folder: str | Path | None = None,
) -> DistilledStudent:
    """Train (or load from the cache) a student for ``lang`` with the project's trainer.

    Exactly what a comparison cell does (same folds, same training-pair subsample, same trainer),
    so with the comparison's config this rebuilds that cell's student. It trains on fold
    ``fold``'s training documents only: align and retrieve on the fold's evaluation documents
    (``result.fold.eval_key``), which it never saw. Students are cached (:func:`student_folder`)
    so the notebooks, explorers and figures share one training run; ``force`` retrains. Processes that
    ask for the same student at the same time (two notebooks, the figures command, an explorer) take turns
    on the folder's lock: the first trains, the others wait and load its result.
    """
    from ..experiments.records import FolderLock

    config = config or notebook_config()
    folder = Path(folder) if folder is not None else student_folder(teacher, lang, method, config, fold, n_folds)
    with FolderLock(folder, wait=STUDENT_LOCK_WAIT):
        return _distilled_student(teacher, lang, method, config, fold, n_folds, cache, force, folder)


STUDENT_LOCK_WAIT = 3600.0  # seconds a process waits for another that trains the same student


def _distilled_student(teacher: Encoder, lang: str, method: str, config: "TrainConfig", fold: int,
                       n_folds: int, cache: bool, force: bool, folder: Path) -> DistilledStudent:
    from ..methods import Trainer, build_objective
    from ..tasks.registry import get_task

    task_fold = get_task("ntrex").folds(lang, n_folds, seed=0)[fold]
    weights = folder / "student.pt"
    student = teacher.copy()
    if cache and not force and weights.exists() and (folder / "train_summary.json").exists():
        student.load_state_dict(torch.load(weights, map_location=student.device, weights_only=True))
        student.eval()
        return DistilledStudent(student, lang, method, task_fold, config, folder,
                                json.loads((folder / "train_summary.json").read_text()))
    train = task_fold.train.subsample(config.max_train_pairs, config.seed)  # the comparison cell's pairs
    objective = build_objective(method, config, train)
    if objective is None:
        raise ValueError(f"{method!r} trains nothing: use the teacher itself")
    result = Trainer(student, teacher, objective, train, task_fold.dev, config, out_dir=folder,
                     desc=f"{method} {lang}").train()
    if cache:
        save_student(student, folder)
    student.eval()
    return DistilledStudent(student, lang, method, task_fold, config, folder, asdict(result))


def short_pairs(corpus, doc_ids: set[str] | None, tokenizer, min_tokens: int = 6, max_tokens: int = 14,
                max_foreign_tokens: int = 22, min_word_share: float = 0.8) -> list[int]:
    """NTREX line numbers (in ``doc_ids`` when given) whose English side has ``min_tokens``..``max_tokens``
    word pieces, whose foreign side has at most ``max_foreign_tokens``, and where at least
    ``min_word_share`` of the pieces on each side are words (not punctuation / [UNK]): pairs whose
    heatmap stays legible and says something about words."""

    def word_share(pieces: list[str]) -> float:
        words = [p for p in pieces if any(ch.isalnum() for ch in p) and p != tokenizer.unk_token]
        return len(words) / max(1, len(pieces))

    out = []
    for i, doc in enumerate(corpus.doc_ids):
        if doc_ids is not None and doc not in doc_ids:
            continue
        en, fo = tokenizer.tokenize(corpus.english[i]), tokenizer.tokenize(corpus.target[i])
        if (min_tokens <= len(en) <= max_tokens and len(fo) <= max_foreign_tokens
                and word_share(en) >= min_word_share and word_share(fo) >= min_word_share):
            out.append(i)
    return out


# =============================================================================== notebook helpers
def notebook_setup(dpi: int = 80) -> bool:
    """Quiet, small, reproducible notebook outputs; returns :func:`small_mode`.

    Offline Hugging Face, no weight-loading progress bars, torch threads chosen for the machine's
    current load, and a modest figure dpi so executed notebooks stay well under 1 MB.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    from ..methods.runtime import set_threads

    set_threads(0)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": dpi, "savefig.dpi": dpi})
    torch.manual_seed(0)
    return small_mode()


def before_after_table(corpus, teacher: Encoder, students: "dict[str, Encoder]", eval_docs: set[str] | None,
                       ) -> "pd.DataFrame":
    """Known-item CLIR (MRR@10, R@10) and sentence retrieval (acc@1, MRR) on ``eval_docs`` for each
    named document encoder (queries always by the teacher): one row per encoder."""
    import pandas as pd

    from ..tasks.ntrex import evaluate_ntrex

    rows = {}
    for name, encoder in students.items():
        results = evaluate_ntrex(corpus, teacher, encoder, eval_docs=eval_docs)
        clir, sent = results["clir"].summary, results["sentence"].summary
        rows[name] = {"CLIR MRR@10": clir["MRR@10"], "CLIR R@10": clir["R@10"], "sentence acc@1": sent["acc@1"],
                      "sentence MRR": sent["MRR"], "queries": len(results["clir"].per_query),
                      "sentences": len(results["sentence"].per_query)}
    table = pd.DataFrame(rows).T
    table[["queries", "sentences"]] = table[["queries", "sentences"]].astype(int)
    return table
