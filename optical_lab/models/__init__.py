"""Encoders: token embeddings + pooled sentence embeddings over any transformers backbone.

Names are loaded on first use (PEP 562, as :mod:`optical_lab`): ``optical_lab.models.registry`` (the
backbone names and ``DEFAULT_MODEL`` the command line offers) imports without torch.
"""

from __future__ import annotations

from optical_lab import lazy_exports

# public name -> the module that defines it
EXPORTS: dict[str, str] = {
    "Encoder": "optical_lab.models.encoder",
    "TokenBatch": "optical_lab.models.encoder",
    "default_device": "optical_lab.models.encoder",
    "mean_pool": "optical_lab.models.encoder",
    "BackboneSpec": "optical_lab.models.registry",
    "resolve_backbone": "optical_lab.models.registry",
}
__all__ = list(EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, EXPORTS, globals())
