"""Method name -> training objective. The comparison harness only ever goes through here.

==================  ============================================================================
``zero-shot``       no training: the teacher encodes documents too (returns ``None``)
``sentence-kd``     :class:`.sentence_kd.SentenceKDLoss` (Reimers & Gurevych 2020)
``translate-train`` :class:`.translate_train.TranslateTrainLoss` (InfoNCE, in-batch negatives)
``code-switch``     :class:`.code_switch.CodeSwitchLoss` (CoSDA-ML, IBM-1 dictionary from the bitext)
``optical``         :class:`.optical.OpticalLoss` (OT token distillation, Huang et al. 2023)
``optical+aug``     :class:`.combined.CombinedLoss` of ``optical`` and ``config.aug_method``
==================  ============================================================================
"""
from __future__ import annotations

from typing import Callable

from ..data.bitext import Bitext
from ..ot import OTDistillationLoss
from .base import Objective
from .code_switch import CodeSwitchLoss
from .combined import CombinedLoss
from .config import TrainConfig
from .dictionary import induce_dictionary
from .optical import OpticalLoss
from .sentence_kd import SentenceKDLoss
from .translate_train import TranslateTrainLoss

Factory = Callable[[TrainConfig, Bitext], Objective]


def _sentence_kd(config: TrainConfig, bitext: Bitext) -> Objective:
    return SentenceKDLoss(english_weight=config.english_weight)


def _translate_train(config: TrainConfig, bitext: Bitext) -> Objective:
    return TranslateTrainLoss(config.temperature, config.symmetric)


def _code_switch(config: TrainConfig, bitext: Bitext) -> Objective:
    # the dictionary comes from the training bitext handed to us, never from evaluation text
    dictionary = induce_dictionary(bitext, config.dict_iterations, config.dict_min_prob, config.dict_min_count,
                                   config.dict_max_translations)
    return CodeSwitchLoss(dictionary, config.code_switch_ratio, config.temperature, config.symmetric)


def _optical(config: TrainConfig, bitext: Bitext) -> Objective:
    ot = OTDistillationLoss(epsilon=config.epsilon, n_iters=config.n_iters, cost=config.ot_cost,
                            grad=config.ot_grad, exclude_special=config.exclude_special)
    return OpticalLoss(ot, english_weight=config.english_weight)


def _optical_aug(config: TrainConfig, bitext: Bitext) -> Objective:
    return CombinedLoss(_optical(config, bitext), FACTORIES[config.aug_method](config, bitext), config.aug_weight)


FACTORIES: dict[str, Factory] = {
    "sentence-kd": _sentence_kd,
    "translate-train": _translate_train,
    "code-switch": _code_switch,
    "optical": _optical,
    "optical+aug": _optical_aug,
}
METHODS: tuple[str, ...] = ("zero-shot", *FACTORIES)
AUGMENTATIONS: tuple[str, ...] = ("translate-train", "code-switch")


def build_objective(method: str, config: TrainConfig, train_bitext: Bitext) -> Objective | None:
    """The objective for ``method`` (``None`` for zero-shot, which trains nothing)."""
    if method == "zero-shot":
        return None
    if method not in FACTORIES:
        raise ValueError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    return FACTORIES[method](config, train_bitext)


def parse_methods(text: str) -> list[str]:
    """``"all"`` or a comma-separated list, validated, in canonical order."""
    if text.strip() == "all":
        return list(METHODS)
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}: use 'all' or some of {', '.join(METHODS)}")
    return [m for m in METHODS if m in names]
