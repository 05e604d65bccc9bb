"""The sentence-transformers folder format, read and written, so encoders travel both ways.

A sentence-transformers model folder (https://sbert.net/docs/sentence_transformer/usage/custom_models.html)
lists its modules in ``modules.json``: a ``Transformer`` (the Hugging Face model, usually the folder
itself), a ``Pooling`` (``1_Pooling/config.json``: which pooling), optionally ``Normalize`` (unit-length
embeddings), and ``config_sentence_transformers.json`` holds the retrieval prompts (``"query": "query: "``,
``"document": "passage: "``) that :meth:`SentenceTransformer.encode_query` / ``encode_document`` put
before a text. :func:`read_settings` turns that into what :class:`~optical_lab.models.encoder.Encoder`
needs; :func:`write_settings` writes the same files for an encoder (``Encoder.save``), so
``SentenceTransformer(folder)`` encodes as ``Encoder.encode`` does.

Both the classic keys (``pooling_mode_mean_tokens: true``, sentence-transformers 2-5) and the newer
``"pooling_mode": "mean"`` (6.x) are read; the classic ones are written (every version reads them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..data.errors import DataError
from ..io import write_json

MODULES_FILE = "modules.json"
PROMPTS_FILE = "config_sentence_transformers.json"
SBERT_FILE = "sentence_bert_config.json"
# the classic 1_Pooling/config.json flag of each pooling mode
POOLING_FLAGS = {
    "cls": "pooling_mode_cls_token",
    "mean": "pooling_mode_mean_tokens",
    "max": "pooling_mode_max_tokens",
    "mean_sqrt_len_tokens": "pooling_mode_mean_sqrt_len_tokens",
    "weightedmean": "pooling_mode_weightedmean_tokens",
    "lasttoken": "pooling_mode_lasttoken",
}
QUERY_PROMPTS = ("query",)  # prompt names read as the query prefix
PASSAGE_PROMPTS = ("document", "passage", "corpus")  # ... and as the passage (document) prefix


@dataclass(frozen=True)
class StSettings:
    """What a sentence-transformers folder prescribes."""

    pooling: str  # a key of POOLING_FLAGS
    normalize: bool  # a Normalize module follows the pooling
    query_prefix: str = ""
    passage_prefix: str = ""
    max_length: int | None = None  # sentence_bert_config.json's max_seq_length, when given
    transformer_path: str = ""  # the Transformer module's folder inside the model folder ("" = the folder itself)
    ignored: tuple[str, ...] = ()  # modules the encoder does not apply (Dense, LayerNorm, ...)


def _file(name_or_path: str, filename: str) -> Path | None:
    """``filename`` of a local folder, or of a hub model (from the local hub cache when offline); None if absent."""
    local = Path(name_or_path)
    if local.is_dir():
        return local / filename if (local / filename).is_file() else None
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(name_or_path, filename))
    except Exception:  # no such file, not cached while offline, not a hub id: the model has no such setting
        return None


def _json(name_or_path: str, filename: str) -> dict | list | None:
    path = _file(name_or_path, filename)
    if path is None:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(
            f"unreadable sentence-transformers file: {exc}",
            path=path,
            fix="repair or delete the file (the model then loads with the default settings)",
        ) from exc


def pooling_mode(config: dict, where: str) -> str:
    """The pooling a ``Pooling`` config names: ``"pooling_mode": "mean"`` or the classic boolean flags."""
    if isinstance(config.get("pooling_mode"), str):
        mode = config["pooling_mode"]
    else:
        modes = [mode for mode, flag in POOLING_FLAGS.items() if config.get(flag)]
        if len(modes) != 1:
            raise DataError(
                f"{where}: {len(modes)} pooling modes set ({', '.join(modes) or 'none'}); the encoder pools one way",
                fix="choose one with --pooling (mean, cls or max)",
            )
        mode = modes[0]
    return {"mean_tokens": "mean", "cls_token": "cls", "max_tokens": "max"}.get(mode, mode)


def read_settings(name_or_path: str) -> StSettings | None:
    """The sentence-transformers settings of a local folder or hub id; None when it has no ``modules.json``."""
    modules = _json(name_or_path, MODULES_FILE)
    if not isinstance(modules, list):
        return None
    kinds = {str(m.get("type", "")).rsplit(".", 1)[-1]: m for m in modules}
    if "Transformer" not in kinds or "Pooling" not in kinds:
        raise DataError(
            f"{name_or_path}: modules.json has {', '.join(kinds) or 'no modules'}; the encoder needs a "
            "Transformer followed by a Pooling",
            fix="pass the plain Hugging Face model folder instead",
        )
    pool_dir = kinds["Pooling"].get("path", "")
    pool_config = _json(name_or_path, f"{pool_dir}/config.json" if pool_dir else "config.json") or {}
    prompts = (_json(name_or_path, PROMPTS_FILE) or {}).get("prompts") or {}
    sbert = _json(name_or_path, SBERT_FILE) or {}
    return StSettings(
        pooling=pooling_mode(pool_config, f"{name_or_path}/{pool_dir}"),
        normalize="Normalize" in kinds,
        query_prefix=next((prompts[k] for k in QUERY_PROMPTS if k in prompts), ""),
        passage_prefix=next((prompts[k] for k in PASSAGE_PROMPTS if k in prompts), ""),
        max_length=int(sbert["max_seq_length"]) if sbert.get("max_seq_length") else None,
        transformer_path=kinds["Transformer"].get("path", ""),
        ignored=tuple(k for k in kinds if k not in ("Transformer", "Pooling", "Normalize")),
    )


def write_settings(
    folder: str | Path,
    *,
    dim: int,
    pooling: str,
    normalize: bool,
    query_prefix: str,
    passage_prefix: str,
    max_length: int,
) -> None:
    """Write the sentence-transformers files of an encoder whose Hugging Face model is saved in ``folder``."""
    folder = Path(folder)
    modules = [("Transformer", ""), ("Pooling", "1_Pooling")] + ([("Normalize", "2_Normalize")] if normalize else [])
    write_json(
        [
            {"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
            for i, (kind, path) in enumerate(modules)
        ],
        folder / MODULES_FILE,
    )
    write_json({"max_seq_length": max_length, "do_lower_case": False}, folder / SBERT_FILE)
    (folder / "1_Pooling").mkdir(exist_ok=True)
    write_json(
        {"word_embedding_dimension": dim, "include_prompt": True}
        | {flag: mode == pooling for mode, flag in POOLING_FLAGS.items()},
        folder / "1_Pooling" / "config.json",
    )
    if normalize:
        (folder / "2_Normalize").mkdir(exist_ok=True)
    prompts = {k: v for k, v in (("query", query_prefix), ("document", passage_prefix)) if v}
    similarity = "cosine" if normalize else "dot"
    write_json(
        {"prompts": prompts, "default_prompt_name": None, "similarity_fn_name": similarity}, folder / PROMPTS_FILE
    )
