"""Training methods compared against OPTICAL, behind one objective interface and one trainer.

``registry.build_objective(method, config, train_bitext)`` gives the loss; ``trainer.Trainer``
runs it. See :mod:`optical_lab.methods.registry` for the list of methods.
"""

from .config import PRESETS, TrainConfig, preset
from .registry import AUGMENTATIONS, METHODS, build_objective, parse_methods
from .teacher import FrozenTeacher
from .train_state import TrainResult
from .trainer import Trainer

__all__ = [
    "PRESETS",
    "TrainConfig",
    "preset",
    "AUGMENTATIONS",
    "METHODS",
    "build_objective",
    "parse_methods",
    "FrozenTeacher",
    "Trainer",
    "TrainResult",
]
