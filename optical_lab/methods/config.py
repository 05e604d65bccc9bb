"""Every training hyper-parameter in one object, saved next to every result.

:class:`TrainConfig` declares the trainer's own settings (optimiser, schedule, data, model selection,
checkpoints) and takes each objective's from the registry (:data:`OBJECTIVE_SETTINGS`,
:mod:`.settings`); every field is declared once with :func:`~optical_lab.data.params.param`, and its
validation and command-line flag come from that declaration. Where a setting's value comes from is one
rule: explicit flag > method config file > preset > default (:func:`apply_precedence`, :func:`resolve`).
Importable without torch (the command line's ``--help`` is built from it).

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
from dataclasses import dataclass
from typing import Any, Literal

from ..data.bitext import Bitext
from ..data.errors import DataError
from ..data.params import Kind, ParamInfo, declared, flag_name, given, param, validate
from ..ot.spec import SinkhornSpec
from .registry import SPECS

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
    "dropout_draws": "hugging-face",
}
# SinkhornSpec fields beyond the legacy flat keys, in the fingerprint (and accepted flat) as ``ot_<field>``
OT_FIELDS = tuple(f.name for f in dataclasses.fields(SinkhornSpec) if f.name not in LEGACY_OT_KEYS.values())
# each objective's settings (methods/settings.py), as its MethodSpec names them: TrainConfig's bases, so a
# method's own settings need no edit here (one per class, the registry's first method's first)
OBJECTIVE_SETTINGS: tuple[type, ...] = tuple(dict.fromkeys(cls for spec in SPECS for cls in spec.settings))
OPTIMISATION, DATA, SELECTION, CHECKPOINTS, RUNTIME = (
    "training: optimisation",
    "training: data",
    "training: model selection (dev bitext)",
    "training: checkpoints",
    "training: runtime",
)


@dataclass
class TrainConfig(*reversed(OBJECTIVE_SETTINGS)):
    """Hyper-parameters of one training run (one language, method, fold and seed).

    The trainer's own settings are declared here (optimiser, schedule, data, model selection,
    checkpoints); each objective's are declared beside it and mixed in (:data:`OBJECTIVE_SETTINGS`, the
    classes the registry's ``MethodSpec.settings`` name: :mod:`.settings`' ``temperature``, ``ot_variant``,
    ``sinkhorn``, ...; ``aug_method``: :class:`.registry.AugConfig`).
    Every field is declared once with :func:`~optical_lab.data.params.param`; :meth:`validate` and the
    command line's training flags (``experiments/compare.add_training_options``) are derived from that.

    >>> from optical_lab import TrainConfig
    >>> config = TrainConfig(steps=100).replace(lr=1e-4)
    >>> config.steps, config.lr, config.max_train_pairs
    (100, 0.0001, 1000)
    """

    # --- optimisation (AdamW with linear warm-up then linear decay, gradient clipping)
    # lr: tuned on the dev bitext of Hausa fold 0 only (5e-5, 1e-4, 2e-4; 24 steps)
    lr: float = param(2e-4, "learning rate of AdamW", low=0.0, positive=True, group=OPTIMISATION, flag=True)
    weight_decay: float = param(0.01, "AdamW weight decay", low=0.0, group=OPTIMISATION)
    # steps may be 0 here (a trainer that only selects, used by tests and benchmarks); a comparison
    # refuses 0 steps for a trained method (experiments.runner.ComparePlan.validate)
    steps: int = param(
        24, "training steps (the cap when --patience stops earlier)", low=0, group=OPTIMISATION, flag=True
    )
    batch_size: int = param(16, "sentence pairs per step", low=1, group=OPTIMISATION, flag=True)
    warmup_steps: int = param(3, "linear warm-up steps", low=0, group=OPTIMISATION)
    grad_clip: float = param(1.0, "gradient-norm clip", low=0.0, group=OPTIMISATION)
    seed: int = param(0, "training seed (pair subsample, batches, initialisation)", low=0, group=OPTIMISATION)

    # --- data
    # training-time truncation (tokens); evaluation uses the model's own limit
    max_length: int = param(64, "training truncation in tokens", low=3, group=DATA, flag=True)
    # batches of similar-length pairs: less padding, same data
    group_by_length: bool = param(True, "batches of similar-length pairs", group=DATA)
    max_train_pairs: int | None = param(
        1000,
        "cap on training pairs per fold (sampled with the seed)",
        low=1,
        group=DATA,
        flag=True,
        none_word="all",
        none_means="no cap",
    )
    max_dev_pairs: int = param(200, "dev pairs used for model selection", low=2, group=DATA)

    # --- model selection on the dev bitext (never on evaluation documents)
    eval_every: int = param(8, "steps between dev evaluations (0: only at the end)", low=0, group=SELECTION, flag=True)
    # Train to a plateau: ``steps`` is the cap, and a run stops once ``patience`` dev evaluations in a row
    # did not beat the best dev MRR so far by more than ``min_delta`` (0: never stop before the cap). The
    # selected state is the best dev score whatever ``min_delta`` (a smaller gain is still kept, it just
    # does not count as progress). The same rule for every arm; ``TrainResult.selected_before_cap`` and
    # ``experiments.stopping`` report where the selected step fell.
    patience: int = param(
        0,
        "stop after this many dev evaluations without a gain above --min-delta (0 = train to --steps, the cap)",
        low=0,
        group=SELECTION,
        flag=True,
    )
    min_delta: float = param(
        0.0,
        "smallest dev MRR gain that counts as progress",
        low=0.0,
        high=1.0,
        group=SELECTION,
        flag=True,
        example=0.001,
    )
    select_initial: bool = param(True, "the untrained student (step 0) is a candidate too", group=SELECTION)
    dev_distractors: int = param(
        0,
        "English distractors in dev selection: 0 = each English dev query ranks its foreign sentence among the dev "
        "sample's (v1/v2); n > 0 = each foreign dev sentence ranks its English among the dev English plus n English "
        "sentences of the other family languages' MAFAND-MT dev (data.mafand.dev_distractor_pool; protocol v3)",
        low=0,
        group=SELECTION,
        example=5000,
    )

    # --- checkpoints (atomic; 0 disables them). See trainer.py: by wall clock, not every N steps
    checkpoint_every: int = param(8, "steps between checkpoints when checkpoint_seconds is 0", low=0, group=CHECKPOINTS)
    keep_checkpoint: bool = param(False, "keep checkpoint.pt after a run finished", group=CHECKPOINTS)
    # wall-clock seconds between checkpoints (a killed run loses at most this much work); 0 = every
    # ``checkpoint_every`` steps instead (deterministic, for tests). Not part of ``fingerprint()``.
    checkpoint_seconds: float = param(
        300.0, "wall-clock seconds between checkpoints", low=0.0, group=CHECKPOINTS, example=300
    )

    # --- runtime
    # "bf16" = autocast for training *and* evaluation encodes; "auto" = bf16 where the hardware has
    # native bf16 matmuls (AMX CPUs, recent GPUs), see runtime.py. The resolved value is saved.
    mixed_precision: Literal["auto", "no", "bf16"] = param(
        "auto", "bf16 autocast for training and evaluation (auto: where native)", group=RUNTIME, flag=True
    )
    # training and dev selection encode with the backbone's retrieval prefixes exactly as evaluation
    # does (e5: "query: " for the teacher's English queries, "passage: " for every text the student
    # learns to place as a document); no-op for backbones without prefixes (MiniLM)
    use_prefixes: bool = param(
        True,
        "train and select with the backbone's retrieval prefixes, as evaluation encodes (--no-prefixes "
        "reproduces the comparisons run before protocol v2, e.g. results/compare-me5-small)",
        group=RUNTIME,
        flag="--prefixes",
    )
    # keep the student's word-embedding table as the teacher's (every other weight trains). The table is
    # 52 % of MiniLM's weights (30k x 384) and 82 % of me5-small's (250k x 384): frozen, a step neither computes its
    # dense gradient nor updates it with AdamW (benchmarks/bench_train_step.py --freeze-word-embeddings
    # measures the saving). A different training regime, so part of the cell identity; off by default.
    freeze_word_embeddings: bool = param(
        False,
        "keep the student's word-embedding table as the teacher's (cheaper steps, most of all for me5-small; "
        "part of every cell's identity)",
        group=RUNTIME,
        flag=True,
    )
    # which dropout masks the student's unpadded forward draws (optical_lab/models/unpadded.py): Hugging Face's
    # (the same random stream as BertModel.forward: the same results, within float rounding, as before it
    # existed) or 31-bit masks drawn for the real tokens only (same Bernoulli(1 - p) masks, other draws, cheaper:
    # benchmarks/bench_train_step.py measures it). Other draws give another run, so part of the cell identity.
    dropout_draws: Literal["hugging-face", "fast"] = param(
        "hugging-face",
        "dropout masks of the student's unpadded forward: Hugging Face's random stream, or fast 31-bit draws for the "
        "real tokens only (cheaper steps; other draws, so part of every cell's identity)",
        group=RUNTIME,
        flag=True,
    )
    # precompute the frozen teacher's outputs on the training English once
    teacher_cache: bool = param(True, "cache the frozen teacher's outputs", group=RUNTIME)
    progress: bool = param(True, "progress bars", group=RUNTIME)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse a value no run can use, before anything is loaded or written (every way of building a
        config — a preset, ``replace``, the command line, a saved ``config.json`` — passes through here).

        Raises :class:`DataError` naming the setting, its command-line flag and a valid value, from each
        field's declaration (:func:`optical_lab.data.params.validate`). A negative ``steps`` or a zero
        ``batch_size`` used to run and label the untrained model as the method, or fail deep in the
        trainer with a ``ZeroDivisionError``."""
        validate(self)

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
        data["sinkhorn"] = spec.replace(**flat) if flat else spec
    except DataError:  # a value SinkhornSpec's declarations refuse: named with its flag already
        raise
    except TypeError as exc:  # e.g. a saved spec with an unknown field: one message, never a traceback
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


def training_flags() -> list[tuple[str, str, ParamInfo, Kind, Any]]:
    """``(flat key, field name, info, kind, default)`` of every training setting with a command-line flag,
    the OT ones of :class:`SinkhornSpec` included (under their flat keys: ``epsilon``, ``ot_grad``, ...):
    the command line's training options are built from this (``experiments/compare.add_training_options``)."""
    flat_name = {new: old for old, new in LEGACY_OT_KEYS.items()}
    found = []
    for field, info, kind in declared(TrainConfig):
        if field.name == "sinkhorn":
            for spec_field, spec_info, spec_kind in declared(SinkhornSpec):
                key = flat_name.get(spec_field.name, f"ot_{spec_field.name}")
                found.append((key, spec_field.name, spec_info, spec_kind, spec_field.default))
        else:
            found.append((field.name, field.name, info, kind, field.default))
    return [entry for entry in found if flag_name(entry[1], entry[2])]


def explicit_settings(values: dict[str, Any]) -> dict[str, Any]:
    """The training settings given explicitly on a command line (``vars(args)``; an option left out is None,
    ``--max-train-pairs all`` is None given on purpose), by flat key."""
    keys = [entry[0] for entry in training_flags()]
    return {key: given(values[key]) for key in keys if values.get(key) is not None}


def apply_precedence(
    method_config: dict[str, dict[str, Any]], explicit: dict[str, Any]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The one precedence rule: **explicit command-line flag > method config file > preset > default**.

    A comparison's ``train`` is the preset with the explicit flags applied
    (``preset(name).replace(**explicit)``) and each method's config is ``train.replace(**method_config[m])``
    (:meth:`optical_lab.experiments.runner.ComparePlan.train_config`), so a setting given explicitly is
    dropped from every method's entry of the method config file (``--method-config chosen.json``): the
    saved plan holds what ran. Returns that method config and one note per dropped setting."""
    kept, notes = {}, []
    for method, settings in method_config.items():
        kept[method] = {k: v for k, v in settings.items() if k not in explicit}
        notes += [
            f"{method}: {key} = {explicit[key]!r} (command line) overrides {value!r} of the method config"
            for key, value in settings.items()
            if key in explicit and value != explicit[key]
        ]
    return kept, notes


def resolve(
    preset_name: str = "default", method_settings: dict[str, Any] | None = None, **explicit: Any
) -> TrainConfig:
    """One method's settings by the precedence rule (:func:`apply_precedence`): ``TrainConfig``'s defaults,
    then the preset's, then the method config file's ``method_settings``, then the explicit ``explicit``."""
    return preset(preset_name).replace(**(method_settings or {})).replace(**explicit)


def preset(name: str, **overrides: Any) -> TrainConfig:
    """``TrainConfig`` for a named preset, with explicit overrides applied last (``None`` = keep);
    OT settings may be given as ``epsilon``, ``n_iters``, ``ot_cost``, ``ot_grad``."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: use one of {', '.join(PRESETS)}")
    return TrainConfig().replace(**PRESETS[name]).replace(**{k: v for k, v in overrides.items() if v is not None})
