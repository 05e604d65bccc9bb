"""Encoders: token embeddings + pooled sentence embeddings over any transformers backbone."""

from .encoder import Encoder, TokenBatch, default_device, mean_pool
from .registry import BackboneSpec, resolve_backbone

__all__ = ["Encoder", "TokenBatch", "default_device", "mean_pool", "BackboneSpec", "resolve_backbone"]
