"""Every training hyper-parameter in one object, saved next to every result.

The defaults are the budget the issue sets for 2 CPU cores (the full 7-language x 6-method x
2-fold comparison in <= 30 minutes, <= 4 GB): short sentences (``max_length``), small batches
and a few dozen steps, with model selection on the held-out dev bitext. ``PRESETS`` names
alternatives (``tiny``: tests; ``paper``: a GPU-sized run; ``make demo`` runs the default).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from ..data.bitext import Bitext
from ..data.errors import DataError
from ..ot import SinkhornSpec

AugMethod = Literal["translate-train", "code-switch"]
# results saved before SinkhornSpec existed hold these flat keys: the name each had in TrainConfig,
# and the SinkhornSpec field it is now
LEGACY_OT_KEYS = {"epsilon": "epsilon", "n_iters": "n_iters", "ot_cost": "cost", "ot_grad": "grad"}
# fields added after results were saved -> the value that reproduces those results. A saved config
# without the key reads as that value, and the fingerprint leaves the field out while it has that
# value, so committed results keep their fingerprints (and new settings get new ones). SinkhornSpec
# fields are named ``ot_<field>`` here, as in the fingerprint (issue #31 added the solved-Sinkhorn ones:
# protocols v1/v2 ran a fixed iteration budget from a cold start at the target epsilon).
ADDED_FIELDS: dict[str, Any] = {
    "ot_variant": "plain",
    "use_prefixes": False,
    "freeze_word_embeddings": False,
    "ot_early_exit": False,
    "ot_eps_scaling": None,
    "ot_warm_start": False,
    "min_delta": 0.0,
    "dev_distractors": 0,
}
# SinkhornSpec fields beyond the legacy flat keys, in the fingerprint (and accepted flat) as ``ot_<field>``
OT_FIELDS = tuple(f.name for f in dataclasses.fields(SinkhornSpec) if f.name not in LEGACY_OT_KEYS.values())


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (one language, method, fold and seed).

    >>> from optical_lab import TrainConfig
    >>> config = TrainConfig(steps=100).replace(lr=1e-4)
    >>> config.steps, config.lr, config.max_train_pairs
    (100, 0.0001, 1000)
    """

    # --- optimisation (AdamW with linear warm-up then linear decay, gradient clipping)
    lr: float = 2e-4  # tuned on the dev bitext of Hausa fold 0 only (5e-5, 1e-4, 2e-4; 24 steps)
    weight_decay: float = 0.01
    steps: int = 24
    batch_size: int = 16
    warmup_steps: int = 3
    grad_clip: float = 1.0
    max_length: int = 64  # training-time truncation (tokens); evaluation uses the model's own limit
    group_by_length: bool = True  # batches of similar-length pairs: less padding, same data
    seed: int = 0
    # "bf16" = autocast for training *and* evaluation encodes; "auto" = bf16 where the hardware has
    # native bf16 matmuls (AMX CPUs, recent GPUs), see runtime.py. The resolved value is saved.
    mixed_precision: Literal["auto", "no", "bf16"] = "auto"

    # --- data
    max_train_pairs: int | None = 1000  # cap on the fold's training bitext (sampled with ``seed``)
    max_dev_pairs: int = 200  # dev bitext used for model selection

    # --- model selection on the dev bitext (never on evaluation documents)
    eval_every: int = 8  # steps between dev evaluations (0: only at the end)
    # Train to a plateau: ``steps`` is the cap, and a run stops once ``patience`` dev evaluations in a row
    # did not beat the best dev MRR so far by more than ``min_delta`` (0: never stop before the cap). The
    # selected state is the best dev score whatever ``min_delta`` (a smaller gain is still kept, it just
    # does not count as progress). The same rule for every arm; ``TrainResult.selected_before_cap`` and
    # ``experiments.stopping`` report where the selected step fell.
    patience: int = 0
    min_delta: float = 0.0
    select_initial: bool = True  # the untrained student (step 0) is a candidate too
    # Dev selection among distractors (protocol v3): 0 = each English dev query ranks its foreign sentence among
    # the dev sample's foreign sentences (v1/v2); n > 0 = each foreign dev sentence ranks its English among the
    # dev sample's English plus n English distractors (MAFAND-MT dev English of the other family languages,
    # data.mafand.dev_distractor_pool), so the score is not at its ceiling (me5-small swa: 0.98 without them).
    dev_distractors: int = 0

    # --- checkpoints (atomic; 0 disables them). See trainer.py: by wall clock, not every N steps
    checkpoint_every: int = 8
    keep_checkpoint: bool = False  # keep ``checkpoint.pt`` after a run finished
    # wall-clock seconds between checkpoints (a killed run loses at most this much work); 0 = every
    # ``checkpoint_every`` steps instead (deterministic, for tests). Not part of ``fingerprint()``.
    checkpoint_seconds: float = 300.0

    # --- OPTICAL (Huang, Yu & Allan, WSDM 2023): entropic OT between token sets (epsilon, iterations,
    # tolerance, cost, gradient, solver: optical_lab.ot.SinkhornSpec owns their defaults)
    sinkhorn: SinkhornSpec = field(default_factory=SinkhornSpec)
    exclude_special: bool = True
    english_weight: float = 1.0  # weight of the student(English) -> teacher(English) term (optical, sentence-kd)
    # which token cost OPTICAL minimises: "plain" = the paper's cosine cost; "centred" = cosine between
    # mean-centred tokens (SinkhornSpec.centre: the collapse-to-the-mean direction removed); "both" =
    # the sum of the two terms. Chosen on dev bitext (docs/protocol_v2.md); diagnostics: optical.py.
    ot_variant: Literal["plain", "centred", "both"] = "plain"
    # training and dev selection encode with the backbone's retrieval prefixes exactly as evaluation
    # does (e5: "query: " for the teacher's English queries, "passage: " for every text the student
    # learns to place as a document); no-op for backbones without prefixes (MiniLM)
    use_prefixes: bool = True
    # keep the student's word-embedding table as the teacher's (every other weight trains). The table is
    # 52 % of MiniLM's weights (30k x 384) and 82 % of me5-small's (250k x 384): frozen, a step neither computes its
    # dense gradient nor updates it with AdamW (benchmarks/bench_train_step.py --freeze-word-embeddings
    # measures the saving). A different training regime, so part of the cell identity; off by default.
    freeze_word_embeddings: bool = False

    # --- contrastive objectives (translate-train, code-switch)
    temperature: float = 0.05
    symmetric: bool = True  # InfoNCE in both directions (English->foreign and back), averaged

    # --- code-switching (CoSDA-ML, Qin et al. IJCAI 2020) with an IBM-1 dictionary
    code_switch_ratio: float = 0.5  # probability that a dictionary word is replaced
    dict_iterations: int = 5  # IBM Model 1 EM iterations
    dict_min_prob: float = 0.1  # keep t(f|e) above this
    dict_min_count: int = 2  # ... for pairs that co-occur in at least this many training pairs
    dict_max_translations: int = 3  # per English word (most probable first)

    # --- optical+aug: which augmentation loss joins OPTICAL, and its weight.
    # Rule (fixed before any result, never chosen on evaluation documents): translate-train, because
    # it learns from the same parallel sentences OPTICAL does, whereas code-switching sees only a
    # dictionary induced from them. Change it here (or --aug-method), never per language or result.
    aug_method: AugMethod = "translate-train"
    aug_weight: float = 1.0

    # --- bookkeeping
    teacher_cache: bool = True  # precompute the frozen teacher's outputs on the training English once
    progress: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse a value no run can use, before anything is loaded or written (every way of building a
        config — a preset, ``replace``, the command line, a saved ``config.json`` — passes through here).

        Raises :class:`DataError` naming the setting, its command-line flag and a valid value. A
        negative ``steps`` or a zero ``batch_size`` used to run and label the untrained model as the
        method, or fail deep in the trainer with a ``ZeroDivisionError``."""
        for name, low, example in _AT_LEAST:
            value = getattr(self, name)
            if value is None and name in _OPTIONAL:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise DataError(
                    f"{name} = {value!r}: must be an integer >= {low}"
                    + (" (or None: no cap)" if name in _OPTIONAL else ""),
                    fix=_fix(name, example),
                )
        for name, low, high, example in _REAL_RANGES:
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or not low <= value <= high
                or (name in _POSITIVE and value <= 0)
            ):
                bounds = f"> {low}" if name in _POSITIVE else f"in [{low}, {high}]" if high < math.inf else f">= {low}"
                raise DataError(f"{name} = {value!r}: must be a finite number {bounds}", fix=_fix(name, example))
        if self.mixed_precision not in ("auto", "no", "bf16"):
            raise DataError(f"mixed_precision = {self.mixed_precision!r}", fix="use --mixed-precision auto, no or bf16")
        if self.ot_variant not in ("plain", "centred", "both"):
            raise DataError(f"ot_variant = {self.ot_variant!r}", fix="use plain, centred or both")
        if self.aug_method not in get_args(AugMethod):
            raise DataError(
                f"aug_method = {self.aug_method!r}", fix=f"use --aug-method {' or '.join(get_args(AugMethod))}"
            )
        if not isinstance(self.sinkhorn, SinkhornSpec):
            raise DataError(
                f"sinkhorn = {self.sinkhorn!r} is not a SinkhornSpec",
                fix="build it with TrainConfig.replace(epsilon=..., n_iters=...) or TrainConfig.from_dict",
            )

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with ``changes``; the OT keys ``epsilon``, ``n_iters``, ``ot_cost``, ``ot_grad`` and
        ``ot_<field>`` for the other :class:`SinkhornSpec` fields (``ot_early_exit``, ...) are accepted
        too and change :attr:`sinkhorn`. An unknown setting is a :class:`DataError` naming it."""
        known = {f.name for f in dataclasses.fields(self)} | set(LEGACY_OT_KEYS) | {f"ot_{name}" for name in OT_FIELDS}
        unknown = sorted(set(changes) - known)
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
            raise DataError(
                f"unknown training setting {unknown[0]!r}" + (f" (did you mean {close[0]}?)" if close else ""),
                fix="use a TrainConfig field name (methods/config.py), e.g. lr, epsilon, english_weight",
            )
        return dataclasses.replace(self, **_fold_ot_keys(changes, self.sinkhorn))

    @property
    def training_role(self) -> str | None:
        """The role every training text is encoded in (``None``: no prefix), see ``use_prefixes``."""
        return "passage" if self.use_prefixes else None

    def dev_roles(self) -> tuple[str | None, str | None]:
        """(English queries, foreign documents) roles of dev selection: those of evaluation."""
        return ("query", "passage") if self.use_prefixes else (None, None)

    def dev_sample(self, dev: Bitext) -> Bitext:
        """The dev pairs model selection scores: ``max_dev_pairs`` of them, drawn with seed 0 (the same
        for every method and seed of a language, so their dev scores are comparable)."""
        return dev.sample(self.max_dev_pairs, seed=0)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint_fields(self) -> dict[str, Any]:
        """The settings as flat fields, in the layout results were fingerprinted with before
        :class:`SinkhornSpec` existed (``epsilon``, ``n_iters``, ``ot_cost``, ``ot_grad``; ``ot_tol`` and
        ``ot_method`` only when not their defaults), so existing results keep their fingerprints."""
        data = self.to_dict()
        spec = data.pop("sinkhorn")
        data.update({old: spec[new] for old, new in LEGACY_OT_KEYS.items()})
        default = SinkhornSpec()
        for name in OT_FIELDS:  # the others only when not their default (ot_tol, ot_method, ot_centre)
            key = f"ot_{name}"
            if spec[name] != (ADDED_FIELDS[key] if key in ADDED_FIELDS else getattr(default, name)):
                data[key] = spec[name]
        for name, legacy in ADDED_FIELDS.items():
            if data.get(name, legacy) == legacy:
                data.pop(name, None)
        # how often a run is checkpointed changes no number (added after results were saved)
        del data["checkpoint_seconds"]
        return data

    def fingerprint(self, ignore: tuple[str, ...] = ("progress",)) -> str:
        """Short hash of the settings that change results (used to refuse mixing configs)."""
        data = {k: v for k, v in self.fingerprint_fields().items() if k not in ignore}
        return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """From a saved ``config.json`` (nested ``sinkhorn``, or the flat OT keys of older results);
        unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        spec_added = {k: v for k, v in ADDED_FIELDS.items() if k.startswith("ot_") and k[3:] in OT_FIELDS}
        legacy = {k: v for k, v in ADDED_FIELDS.items() if k not in spec_added}
        data = _fold_ot_keys({**legacy, **data}, SinkhornSpec(), missing={k[3:]: v for k, v in spec_added.items()})
        return cls(**{k: v for k, v in data.items() if k in names})


# (setting, smallest value, example) of the integer settings; None allowed for those in _OPTIONAL.
# steps may be 0 here (a trainer that only selects, used by tests and benchmarks); a comparison
# refuses 0 steps for a trained method (experiments.plan.ComparePlan.validate).
_AT_LEAST = (
    ("steps", 0, 24),
    ("batch_size", 1, 16),
    ("warmup_steps", 0, 3),
    ("max_length", 3, 64),
    ("seed", 0, 0),
    ("max_train_pairs", 1, 1000),
    ("max_dev_pairs", 2, 200),
    ("eval_every", 0, 8),
    ("patience", 0, 0),
    ("dev_distractors", 0, 5000),
    ("checkpoint_every", 0, 8),
    ("dict_iterations", 1, 5),
    ("dict_min_count", 1, 2),
    ("dict_max_translations", 1, 3),
)
_OPTIONAL = {"max_train_pairs"}
# (setting, low, high, example); those in _POSITIVE must be > low
_REAL_RANGES = (
    ("lr", 0.0, math.inf, 2e-4),
    ("weight_decay", 0.0, math.inf, 0.01),
    ("grad_clip", 0.0, math.inf, 1.0),
    ("english_weight", 0.0, math.inf, 1.0),
    ("temperature", 0.0, math.inf, 0.05),
    ("code_switch_ratio", 0.0, 1.0, 0.5),
    ("dict_min_prob", 0.0, 1.0, 0.1),
    ("aug_weight", 0.0, math.inf, 1.0),
    ("checkpoint_seconds", 0.0, math.inf, 300),
    ("min_delta", 0.0, 1.0, 0.001),
)
_POSITIVE = {"lr", "temperature"}
# offered as --<name>
_CLI = {"steps", "batch_size", "lr", "max_length", "eval_every", "max_train_pairs", "patience", "min_delta"}


def _fix(name: str, example: Any) -> str:
    """A valid value, written as the command line takes it (``--batch-size 16``) or as code."""
    return f"e.g. --{name.replace('_', '-')} {example}" if name in _CLI else f"e.g. TrainConfig({name}={example})"


def _fold_ot_keys(data: dict[str, Any], base: SinkhornSpec, missing: dict[str, Any] | None = None) -> dict[str, Any]:
    """``data`` with its ``sinkhorn`` entry (a spec or a dict) and its flat OT keys (``epsilon``, ...,
    ``ot_<field>``) merged into one :class:`SinkhornSpec` (starting from ``base`` when there is no
    ``sinkhorn`` entry). ``missing``: values for the spec fields a saved dict lacks (``from_dict``: the
    legacy values of :data:`ADDED_FIELDS`, not today's defaults)."""
    data = dict(data)
    spec = data.pop("sinkhorn", None)
    flat = {new: value for old, new in LEGACY_OT_KEYS.items() if (value := data.pop(old, None)) is not None}
    flat.update({name: data.pop(f"ot_{name}") for name in OT_FIELDS if f"ot_{name}" in data})
    if spec is None and not flat and not missing:
        return data
    try:
        if isinstance(spec, dict):
            fields = {k: v for k, v in spec.items() if k in SinkhornSpec.__dataclass_fields__}
            spec = SinkhornSpec(**{**(missing or {}), **fields})
        elif spec is None:
            spec = base.replace(**(missing or {}))
        data["sinkhorn"] = spec.replace(**flat)
    except (TypeError, ValueError) as exc:  # e.g. --epsilon inf: one message with the flag, never a traceback
        raise DataError(f"OT setting: {exc}", fix="e.g. --epsilon 0.05 --n-iters 50") from None
    return data


PRESETS: dict[str, dict[str, Any]] = {
    # the default comparison (what TrainConfig() holds)
    "default": {},
    # unit tests: seconds
    "tiny": {
        "steps": 3,
        "batch_size": 4,
        "max_length": 24,
        "warmup_steps": 1,
        "eval_every": 0,
        "checkpoint_every": 0,
        "max_train_pairs": 32,
        "max_dev_pairs": 16,
        "n_iters": 20,
        "progress": False,
    },
    # protocol v2 (docs/protocol_v2.md): 300 steps x 16 = 4,800 pairs seen by every method, 128-token
    # truncation (MAFAND foreign cut rate 0-9 %), dev selection every 50 steps on up to 1,000 dev pairs
    # and its OT solver: 50 fixed iterations from a cold start at the target epsilon (before issue #31)
    "v2": {
        "steps": 300,
        "batch_size": 16,
        "max_length": 128,
        "warmup_steps": 30,
        "eval_every": 50,
        "max_train_pairs": None,
        "max_dev_pairs": 1000,
        "n_iters": 50,
        "ot_early_exit": False,
        "ot_eps_scaling": None,
    },
    # protocol v3 (docs/protocol_v3.md): every arm trained to a dev plateau under a cap of `steps` (read it from
    # here, never copy it), dev MRR among 5,000 English distractors every 50 steps on up to 1,000 dev pairs, and
    # the solved Sinkhorn (SinkhornSpec's defaults: iteration cap, early exit at tolerance, epsilon scaling)
    # (deviation 1 of the protocol, dated, before any v3 number: cap 1,000 and batch 16, from the compute plan)
    "v3": {
        "steps": 1000,
        "warmup_steps": 100,
        "eval_every": 50,
        "patience": 6,
        "min_delta": 0.002,
        "batch_size": 16,
        "max_length": 128,
        "max_train_pairs": None,
        "max_dev_pairs": 1000,
        "dev_distractors": 5000,
    },
    # closer to the paper's budget, for a GPU
    "paper": {
        "steps": 1000,
        "batch_size": 32,
        "max_length": 128,
        "warmup_steps": 100,
        "eval_every": 100,
        "checkpoint_every": 200,
        "patience": 5,
        "max_train_pairs": None,
        "lr": 2e-5,
    },
}


def preset(name: str, **overrides: Any) -> TrainConfig:
    """``TrainConfig`` for a named preset, with explicit overrides applied last (``None`` = keep);
    OT settings may be given as ``epsilon``, ``n_iters``, ``ot_cost``, ``ot_grad``."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: use one of {', '.join(PRESETS)}")
    return TrainConfig().replace(**PRESETS[name]).replace(**{k: v for k, v in overrides.items() if v is not None})
