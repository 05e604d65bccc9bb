"""Each objective's own settings, declared once (:func:`optical_lab.data.params.param`): default, range, help
and command-line flag.

===========================  ================================================================================
:class:`DistillConfig`       :mod:`.sentence_kd` and :mod:`.optical` (the English -> English term's weight)
:class:`ContrastiveConfig`   :mod:`.translate_train` and :mod:`.code_switch` (InfoNCE)
:class:`CodeSwitchConfig`    :mod:`.code_switch` (the switching ratio and the IBM-1 dictionary, :mod:`.dictionary`)
:class:`OpticalConfig`       :mod:`.optical` (the OT setting :class:`~optical_lab.ot.SinkhornSpec`, the cost variant)
``AugConfig``                :mod:`.combined` (optical+aug), in :mod:`.registry`: its choices are the registry's
===========================  ================================================================================

Each :class:`~optical_lab.methods.registry.MethodSpec` names the ones its objective reads (``settings``), and
its factory receives them. :class:`~optical_lab.methods.config.TrainConfig` is the trainer's settings with
these mixed in, so one saved ``config.json`` (flat keys: ``temperature``, ``ot_variant``, ...) and one
fingerprint still describe a run. They live here rather than in the objective modules because those import
torch, and the command line is built from these declarations without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..data.params import param
from ..ot.spec import SinkhornSpec

OPTICAL, CONTRASTIVE, CODE_SWITCH = "OPTICAL", "contrastive objectives", "code-switching"


@dataclass
class DistillConfig:
    """Distillation to the teacher's English embedding (sentence-KD, Reimers & Gurevych 2020; OPTICAL)."""

    english_weight: float = param(
        1.0,
        "weight of the student(English) -> teacher(English) term (optical, sentence-kd)",
        low=0.0,
        group=OPTICAL,
        flag=True,
    )


@dataclass
class ContrastiveConfig:
    """InfoNCE with in-batch negatives (translate-train, code-switch)."""

    temperature: float = param(0.05, "InfoNCE temperature", low=0.0, positive=True, group=CONTRASTIVE, flag=True)
    symmetric: bool = param(True, "InfoNCE in both directions (English->foreign and back), averaged", group=CONTRASTIVE)


@dataclass
class CodeSwitchConfig:
    """Code-switching (CoSDA-ML, Qin et al. IJCAI 2020) with an IBM-1 dictionary induced from the bitext."""

    code_switch_ratio: float = param(
        0.5, "probability that a dictionary word is replaced", low=0.0, high=1.0, group=CODE_SWITCH, flag=True
    )
    dict_iterations: int = param(5, "IBM Model 1 EM iterations", low=1, group=CODE_SWITCH)
    dict_min_prob: float = param(0.1, "keep translations t(f|e) above this", low=0.0, high=1.0, group=CODE_SWITCH)
    dict_min_count: int = param(2, "... for pairs co-occurring in at least this many pairs", low=1, group=CODE_SWITCH)
    dict_max_translations: int = param(3, "translations kept per English word", low=1, group=CODE_SWITCH)


@dataclass
class OpticalConfig:
    """OPTICAL (Huang, Yu & Allan, WSDM 2023): entropic OT between token sets.

    ``ot_variant`` — which token cost is minimised: ``plain`` = the paper's cosine cost; ``centred`` =
    cosine between mean-centred tokens (``SinkhornSpec.centre``: the collapse-to-the-mean direction
    removed); ``both`` = the sum of the two terms. Chosen on dev bitext (docs/protocol_v2.md)."""

    # epsilon, iterations, tolerance, cost, gradient, solver: optical_lab.ot.spec owns their declarations
    sinkhorn: SinkhornSpec = param(
        default_factory=SinkhornSpec,
        help="the OT problem and its solver",
        group=OPTICAL,
        fix="e.g. TrainConfig().replace(epsilon=0.05, n_iters=50)",
    )
    exclude_special: bool = param(True, "give [CLS]/[SEP] no transport mass", group=OPTICAL)
    ot_variant: Literal["plain", "centred", "both"] = param(
        "plain", "token cost OPTICAL minimises (plain, centred tokens, or both)", group=OPTICAL, flag=True
    )
