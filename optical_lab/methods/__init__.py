"""Training methods compared against OPTICAL, behind one objective interface and one trainer.

``registry.build_objective(method, config, train_bitext)`` gives the loss; ``trainer.Trainer``
runs it. See :mod:`optical_lab.methods.registry` for the list of methods.

Names are loaded on first use (PEP 562, as :mod:`optical_lab`): the settings (``config``,
``settings``, ``registry``) import without torch, so the command line builds its help from them.
"""

from __future__ import annotations

import importlib

# public name -> the module that defines it
EXPORTS: dict[str, str] = {
    "PRESETS": "optical_lab.methods.config",
    "TrainConfig": "optical_lab.methods.config",
    "preset": "optical_lab.methods.config",
    "AUGMENTATIONS": "optical_lab.methods.registry",
    "METHODS": "optical_lab.methods.registry",
    "build_objective": "optical_lab.methods.registry",
    "parse_methods": "optical_lab.methods.registry",
    "FrozenTeacher": "optical_lab.methods.teacher",
    "Trainer": "optical_lab.methods.trainer",
    "TrainResult": "optical_lab.methods.trainer",
}
__all__ = list(EXPORTS)


def __getattr__(name: str):
    """Import a public name's module on first use, then keep the name here."""
    if name not in EXPORTS:
        raise AttributeError(f"module 'optical_lab.methods' has no attribute {name!r}")
    value = getattr(importlib.import_module(EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *EXPORTS])
