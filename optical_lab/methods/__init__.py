"""Training methods compared against OPTICAL, behind one objective interface and one trainer.

``registry.build_objective(method, config, train_bitext)`` gives the loss; ``trainer.Trainer``
runs it. See :mod:`optical_lab.methods.registry` for the list of methods.

Names are loaded on first use (PEP 562, as :mod:`optical_lab`): the settings (``config``,
``settings``, ``registry``) import without torch, so the command line builds its help from them.
"""

from __future__ import annotations

from optical_lab import lazy_exports

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
    "TrainResult": "optical_lab.methods.train_state",
}
__all__ = list(EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, EXPORTS, globals())
