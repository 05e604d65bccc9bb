"""What a comparison runs: :class:`ComparePlan` (everything that decides its numbers), its validation, and
which bitext a fold trains on (:func:`training_bitext`).

A plan is final when it is validated: :meth:`ComparePlan.validate` runs in ``__post_init__``, and code
that needs another plan (the runner's resolved precision, a re-read ``config.json``) builds a new one
(``dataclasses.replace``, validated again) instead of changing a validated one.
The cells a plan runs, their folders and their identity: :mod:`.identity`; running them: :mod:`.runner`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..data.bitext import Bitext
from ..data.collections import LEGACY_FOLD_SCHEME
from ..data.errors import DataError
from ..data.mafand import load_mafand
from ..methods.config import PRESETS, TrainConfig
from ..methods.registry import BY_NAME, REFERENCE
from ..models.registry import DEFAULT_MODEL, check_model_name
from ..tasks.base import TaskFold
from ..tasks.registry import TASKS
from .suite import DEFAULT_ALLOWED_OVERLAP, load_user_bitext, split_user_bitext


@dataclass
class ComparePlan:
    """Everything that decides the numbers of a comparison (saved as ``<out>/config.json``)."""

    langs: list[str]
    methods: list[str]
    folds: int = 2
    seeds: int = 1
    task: str = "ntrex"
    task_options: dict[str, Any] = field(default_factory=dict)  # the task's own settings (e.g. a TREC collection)
    model: str = DEFAULT_MODEL
    bitext: str = (
        "ntrex"  # "ntrex": the fold's other documents; "mafand": MAFAND-MT train/dev (every language needs a pair);
    )
    # "user": the user's files in bitext_files (one TSV, or English + foreign line-aligned files)
    preset: str = "default"
    train: TrainConfig = field(default_factory=TrainConfig)
    eval_max_length: int | None = None  # None: the model's own limit (256 for minilm)
    eval_batch_size: int = 32
    fold_seed: int = 0
    threads: int = 0  # torch threads; 0 = auto, re-decided before every cell from the machine's load
    size_curve: list[int | None] | None = None  # None entry = every training pair
    eval_tasks: list[str] = field(default_factory=list)  # further tasks every student is scored on ([] = the task only)
    bitext_files: list[str] = field(default_factory=list)  # bitext == "user": the files
    fold_scheme: str = "held-out-dev"  # NTREX document folds (data.collections.FOLD_SCHEMES); absent in old configs
    allow_overlap: int = DEFAULT_ALLOWED_OVERLAP  # leak guard: evaluation texts a (language, fold) may train on
    # per-method overrides of ``train`` (protocol v2: chosen on dev bitext by `optical-lab sweep`,
    # its chosen.json); settings the methods of a fold share (the teacher's targets) cannot differ
    method_config: dict[str, dict[str, Any]] = field(default_factory=dict)

    SHARED_SETTINGS = (
        "max_length",
        "use_prefixes",
        "mixed_precision",
        "teacher_cache",
        "max_dev_pairs",
        "freeze_word_embeddings",  # a training regime every arm shares (protocol v2)
        "dev_distractors",  # dev selection: the untrained student's score is computed once per fold
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse a plan no run can use, before the model is loaded or a file written (the training
        settings check themselves: :meth:`TrainConfig.validate`)."""

        def need(ok: bool, problem: str, fix: str) -> None:
            if not ok:
                raise DataError(problem, fix=fix)

        def count(name: str, low: int, example: int) -> None:
            value = getattr(self, name)
            need(
                isinstance(value, int) and not isinstance(value, bool) and value >= low,
                f"{name} = {value!r}: must be an integer >= {low}",
                f"e.g. --{name.replace('_', '-')} {example}",
            )

        need(bool(self.langs), "no language to run", "e.g. --langs hau,swa")
        need(bool(self.methods), "no method to run", "e.g. --methods all, or --methods zero-shot,optical")
        unknown = [m for m in self.methods if m not in BY_NAME]
        need(not unknown, f"unknown method(s) {', '.join(unknown)}", f"use some of {', '.join(BY_NAME)}")
        count("folds", 1, 2)
        count("seeds", 1, 1)
        count("eval_batch_size", 1, 32)
        count("fold_seed", 0, 0)
        count("threads", 0, 0)
        if self.eval_max_length is not None:
            count("eval_max_length", 3, 256)
        need(self.task in TASKS, f"unknown task {self.task!r}", f"use --task {' or --task '.join(TASKS)}")
        need(
            self.bitext in ("ntrex", "mafand", "user"),
            f"unknown bitext source {self.bitext!r}",
            "use --bitext ntrex, --bitext mafand or --bitext FILE.tsv",
        )
        if self.fold_scheme == "all-eval":
            need(
                self.folds == 1 and self.bitext != "ntrex",
                f"fold scheme all-eval evaluates every document, so the students need other bitext and one fold "
                f"(got --bitext {self.bitext}, --folds {self.folds})",
                "use --folds 1 with --bitext mafand or a file",
            )
        need(self.preset in PRESETS, f"unknown preset {self.preset!r}", f"use --preset {' or --preset '.join(PRESETS)}")
        bad = [s for s in self.size_curve or [] if s is not None and (not isinstance(s, int) or s < 1)]
        need(not bad, f"size-curve sizes {bad}: must be positive integers or 'all'", "e.g. --size-curve 100,300,all")
        for method, overrides in self.method_config.items():
            shared = sorted(set(overrides) & set(self.SHARED_SETTINGS))
            need(
                not shared,
                f"method_config for {method} overrides {', '.join(shared)}, which every method of a fold shares",
                "set them for the whole comparison (--max-length, --preset, ...)",
            )
            self.train_config(method)  # TrainConfig.validate() refuses a bad per-method value
        trained = [m for m in self.methods if m != "zero-shot"] + ([REFERENCE] if self.size_curve is not None else [])
        need(
            all(self.train_config(m).steps > 0 for m in trained) or not trained,
            f"steps = {self.train.steps} trains nothing: {', '.join(trained)} would be the untrained teacher under "
            "another name",
            "give --steps a positive number, or use --methods zero-shot for the untrained model",
        )
        check_model_name(self.model)

    def seed_list(self) -> list[int]:
        return list(range(self.seeds))

    def train_config(self, method: str) -> TrainConfig:
        """The training settings of ``method``: ``train`` with the method's own overrides."""
        return self.train.replace(**self.method_config.get(method, {}))


def plan_from_saved(saved: dict[str, Any]) -> ComparePlan:
    """The plan of a saved ``config.json``. A config written before fold schemes existed ran the
    ``per-fold-dev`` scheme, so that is what its missing field means."""
    names = set(ComparePlan.__dataclass_fields__) - {"train"}
    fields = {k: v for k, v in saved.items() if k in names}
    fields.setdefault("fold_scheme", LEGACY_FOLD_SCHEME)
    return ComparePlan(**fields, train=TrainConfig.from_dict(saved["train"]))


def training_bitext(plan: ComparePlan, lang: str, fold: TaskFold) -> tuple[Bitext, Bitext, str]:
    """(train, dev, source name) for a fold: NTREX documents outside the fold, MAFAND-MT, or the user's files."""
    if plan.bitext == "user":
        train, dev = split_user_bitext(load_user_bitext(tuple(plan.bitext_files), lang), plan.fold_seed)
        return train, dev, train.source
    if plan.bitext == "mafand":  # the pairs are the data folder's; a language without one is an error, never a switch
        return load_mafand(lang, "train"), load_mafand(lang, "dev"), "mafand-mt"
    if plan.bitext != "ntrex":
        raise DataError(
            f"unknown bitext source {plan.bitext!r}", fix="use --bitext ntrex, --bitext mafand or --bitext FILE.tsv"
        )
    if len(fold.train) == 0:
        raise DataError(
            f"no training bitext for {lang}: fold scheme {plan.fold_scheme} keeps every {plan.task} "
            f"document for evaluation and {plan.bitext} has no {lang}",
            fix=f"drop {lang} from --langs, or use --fold-scheme held-out-dev",
        )
    return fold.train, fold.dev, fold.train.source or plan.task
