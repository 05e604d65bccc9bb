"""Method name -> :class:`MethodSpec`: the one list of methods. The comparison harness, the command
line help, the plots' colours and the generated answer text all read it.

==================  ============================================================================
``zero-shot``       no training: the teacher encodes documents too (no objective)
``sentence-kd``     :class:`.sentence_kd.SentenceKDLoss` (Reimers & Gurevych 2020)
``translate-train`` :class:`.translate_train.TranslateTrainLoss` (InfoNCE, in-batch negatives)
``code-switch``     :class:`.code_switch.CodeSwitchLoss` (CoSDA-ML, IBM-1 dictionary from the bitext)
``optical``         :class:`.optical.OpticalLoss` (OT token distillation, Huang et al. 2023), cost ``ot_variant``
``optical-plain``   the same objective with the paper's plain cosine cost only (``ot_variant`` must be ``plain``)
``optical+aug``     :class:`.combined.CombinedLoss` of ``optical`` and ``config.aug_method``
==================  ============================================================================

Adding a method: write its objective module (an :class:`.base.Objective`) and add one
:class:`MethodSpec` line to :data:`SPECS` (position = order in every table and figure); every list of
method names is derived from it (:func:`derived_lists`) or frozen as a protocol's registered arms
(docs/architecture.md, "Recipe: add a method"; ``tests/test_registry_lists.py``). Settings of its own go in a
dataclass of :mod:`.settings`, named in ``MethodSpec.settings`` (which mixes it into ``TrainConfig``).
Torch-free: each factory imports its objective module when called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..data.bitext import Bitext
from ..data.errors import DataError
from ..data.params import param
from ..evaluation.verdict import REFERENCE  # noqa: F401  (re-exported: every other method is tested against it)
from .settings import CodeSwitchConfig, ContrastiveConfig, DistillConfig, OpticalConfig

if TYPE_CHECKING:
    from .base import Objective

# (config, training bitext) -> objective; ``config`` is a TrainConfig, an instance of every settings class.
# The objective modules import torch, so each factory imports its own: the registry (the list of methods,
# their settings, the command line's help) stays light.
Factory = Callable[[Any, Bitext], "Objective"]


@dataclass(frozen=True)
class MethodSpec:
    """Everything the library knows about a method besides its loss module."""

    name: str  # the key used on the command line and in result folders
    factory: Factory | None  # objective for (config, training bitext); None = trains nothing
    display: str  # how prose names it ("OPTICAL")
    help: str  # one line for the command line
    color: str  # the same colour in every figure
    augmentation: bool = False  # a data-augmentation baseline (the rivals of OT distillation)
    oracle: str = ""  # why its result is an upper bound rather than a fair rival (said wherever it is named)
    settings: tuple[type, ...] = ()  # the settings classes its objective reads (methods/settings.py)


@dataclass
class AugConfig:
    """optical+aug: which registered augmentation joins OPTICAL, and its weight.

    Rule (fixed before any result, never chosen on evaluation documents): translate-train, because it
    learns from the same parallel sentences OPTICAL does, whereas code-switching sees only a dictionary
    induced from them. Change it here (or --aug-method), never per language or result."""

    aug_method: str = param(
        "translate-train",
        "augmentation joined to OPTICAL in optical+aug and drawn in the size curve",
        choices=lambda: AUGMENTATIONS,
        group="OPTICAL+aug",
        flag=True,
    )
    aug_weight: float = param(
        1.0, "weight of the augmentation loss in optical+aug", low=0.0, group="OPTICAL+aug", flag=True
    )


def _sentence_kd(config: DistillConfig, bitext: Bitext) -> Objective:
    from .sentence_kd import SentenceKDLoss

    return SentenceKDLoss(english_weight=config.english_weight)


def _translate_train(config: ContrastiveConfig, bitext: Bitext) -> Objective:
    from .translate_train import TranslateTrainLoss

    return TranslateTrainLoss(config.temperature, config.symmetric)


def _code_switch(config: Any, bitext: Bitext) -> Objective:
    from .code_switch import CodeSwitchLoss
    from .dictionary import induce_dictionary

    # the dictionary comes from the training bitext handed to us, never from evaluation text
    dictionary = induce_dictionary(
        bitext, config.dict_iterations, config.dict_min_prob, config.dict_min_count, config.dict_max_translations
    )
    return CodeSwitchLoss(dictionary, config.code_switch_ratio, config.temperature, config.symmetric)


def _optical(config: Any, bitext: Bitext) -> Objective:
    from ..ot.loss import OTDistillationLoss
    from .optical import OpticalLoss

    return OpticalLoss(
        OTDistillationLoss(config.sinkhorn, exclude_special=config.exclude_special),
        english_weight=config.english_weight,
        variant=config.ot_variant,
    )


def _optical_plain(config: Any, bitext: Bitext) -> Objective:
    # the method as published: its cost is not a setting (a config asking for another one is refused, so a
    # result folder never says "centred" about a plain-cost student)
    if config.ot_variant != "plain":
        raise DataError(
            f"optical-plain trains the paper's plain cosine cost, the config asks for ot_variant {config.ot_variant!r}",
            fix="leave ot_variant at plain for optical-plain (the project's cost variants are the optical arm's)",
        )
    return _optical(config, bitext)


def _optical_aug(config: Any, bitext: Bitext) -> Objective:
    from .combined import CombinedLoss

    return CombinedLoss(_optical(config, bitext), build_objective(config.aug_method, config, bitext), config.aug_weight)


# OT distillation in blues, data augmentation in warm colours, the untrained teacher in grey
SPECS: tuple[MethodSpec, ...] = (
    MethodSpec("zero-shot", None, "zero-shot", "the teacher on both sides, no training", "#9e9e9e"),
    MethodSpec(
        "sentence-kd",
        _sentence_kd,
        "sentence-KD",
        "MSE between pooled embeddings",
        "#8e6bbf",
        settings=(DistillConfig,),
    ),
    MethodSpec(
        "translate-train",
        _translate_train,
        "translate-train",
        "InfoNCE on the bitext",
        "#e6862e",
        augmentation=True,
        oracle="oracle: trains on the human translations of the bitext, not machine translations",
        settings=(ContrastiveConfig,),
    ),
    MethodSpec(
        "code-switch",
        _code_switch,
        "code-switch",
        "CoSDA-ML code-switching with an IBM-1 dictionary",
        "#d4b52a",
        augmentation=True,
        settings=(ContrastiveConfig, CodeSwitchConfig),
    ),
    MethodSpec(
        "optical", _optical, "OPTICAL", "OT token distillation", "#1f5fa8", settings=(DistillConfig, OpticalConfig)
    ),
    MethodSpec(
        "optical-plain",
        _optical_plain,
        "OPTICAL-plain",
        "OT token distillation, the paper's plain cost",
        "#0b3a6e",
        settings=(DistillConfig, OpticalConfig),
    ),
    MethodSpec(
        "optical+aug",
        _optical_aug,
        "OPTICAL+aug",
        "OPTICAL + the --aug-method loss",
        "#6aaed6",
        settings=(DistillConfig, OpticalConfig, AugConfig),  # and the --aug-method's own
    ),
)


def derived_lists(specs: Sequence[MethodSpec]) -> dict[str, Any]:
    """The lookups and name lists every other module reads, derived from ``specs`` (never typed again):
    ``BY_NAME``, ``METHODS`` (all, in order), ``AUGMENTATIONS`` (``augmentation=True``) and ``TRAINED``
    (every method with an objective: all but zero-shot). ``tests/test_registry_lists.py`` lists every
    other list of method names in the package and what it must equal."""
    return {
        "BY_NAME": {spec.name: spec for spec in specs},
        "METHODS": tuple(spec.name for spec in specs),
        "AUGMENTATIONS": tuple(spec.name for spec in specs if spec.augmentation),
        "TRAINED": tuple(spec.name for spec in specs if spec.factory is not None),
    }


_LISTS = derived_lists(SPECS)
BY_NAME: dict[str, MethodSpec] = _LISTS["BY_NAME"]
METHODS: tuple[str, ...] = _LISTS["METHODS"]
AUGMENTATIONS: tuple[str, ...] = _LISTS["AUGMENTATIONS"]
TRAINED: tuple[str, ...] = _LISTS["TRAINED"]


def method_spec(name: str) -> MethodSpec:
    if name not in BY_NAME:
        raise ValueError(f"unknown method {name!r}: use one of {', '.join(METHODS)}")
    return BY_NAME[name]


def method_order(methods) -> list[str]:
    """Known methods in registry order, then the others in their given order."""
    methods = list(dict.fromkeys(methods))
    return [m for m in METHODS if m in methods] + [m for m in methods if m not in BY_NAME]


def methods_help() -> str:
    """``name (what it trains)`` for every method, for ``--help``."""
    return "; ".join(f"{spec.name} ({spec.help})" for spec in SPECS)


def build_objective(method: str, config: Any, train_bitext: Bitext) -> Objective | None:
    """The objective for ``method`` (``None`` for zero-shot, which trains nothing)."""
    spec = method_spec(method)
    return None if spec.factory is None else spec.factory(config, train_bitext)


def parse_methods(text: str) -> list[str]:
    """``"all"`` or a comma-separated list, validated, in canonical order."""
    if text.strip() == "all":
        return list(METHODS)
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}: use 'all' or some of {', '.join(METHODS)}")
    return [m for m in METHODS if m in names]
